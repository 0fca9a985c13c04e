"""The local model for queries: quantized to int8 and run by ONNX Runtime (ADR 0048).

A search embeds one short query while its caller waits. numpy's float32 forward pass takes about
7 ms for a twelve-piece query on this machine's core, and most of that is the matrix products,
already at some 60 GFLOP/s. With int8 weights (one scale per output channel) and int8
activations, ONNX Runtime's kernels do the same pass in about 1.4 ms.

The graph is written here, node by node, from the weights the float32 model holds: no file from
a model hub, and the same tokenizer, positions and pooling. A child process writes and quantizes
it (``memory._encoder_build``); this process only loads the result, and keeps its bytes in a
cache directory when given one, keyed by what they are made from, so a restart (or another
worker) loads them in milliseconds instead of building again. Only queries go through
it; the texts searched keep their float32 vectors. On tests/search/queries.json, int8 queries
over float32 tools rank about as float32 queries do (recall@5 fused 0.693 against 0.698, @1
0.410 against 0.390), where int8 on both sides loses two points (0.678).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float32]
OPSET = 17  # LayerNormalization's first
logger = logging.getLogger("memory")
PARTIAL_SECONDS = 3600.0  # a kept encoder's partial file this old is a dead writer's
BUILD_SECONDS = 300.0  # the child that builds the encoder (about 3 s here)


class QuantizedUnavailable(Exception):
    """The int8 encoder cannot be built here; the message says why (queries stay float32)."""


@dataclass(frozen=True, slots=True)
class Layer:
    """One encoder layer's weights, as both encoders read them (float32, laid out for ``x @ w``)."""

    qkv: Array  # (hidden, 3*hidden): query, key and value side by side
    qkv_bias: Array
    out: Array  # (hidden, hidden)
    out_bias: Array
    norm1: tuple[Array, Array]
    up: Array  # (hidden, intermediate)
    up_bias: Array
    down: Array  # (intermediate, hidden)
    down_bias: Array
    norm2: tuple[Array, Array]


class _Graph:
    """A BERT encoder's ONNX graph, written a node at a time."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.weights: list[Any] = []

    def constant(self, name: str, value: npt.ArrayLike) -> str:
        from onnx import numpy_helper

        self.weights.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, kind: str, *inputs: str, **attributes: Any) -> str:
        from onnx import helper

        out = f"{kind.lower()}{len(self.nodes)}"
        self.nodes.append(helper.make_node(kind, list(inputs), [out], **attributes))
        return out

    def linear(self, x: str, weight: Array, bias: Array, name: str) -> str:
        product = self.op("MatMul", x, self.constant(name + ".w", weight))
        return self.op("Add", product, self.constant(name + ".b", bias))

    def norm(self, x: str, weights: tuple[Array, Array], eps: float, name: str) -> str:
        scale, shift = self.constant(name + ".w", weights[0]), self.constant(name + ".b", weights[1])
        return self.op("LayerNormalization", x, scale, shift, epsilon=eps, axis=-1)


@dataclass(frozen=True, slots=True)
class Weights:
    """The whole encoder's: word and position embeddings (the one segment's row folded into the
    positions), their norm, the layers, the attention heads and the norms' epsilon."""

    words: Array
    positions: Array
    norm: tuple[Array, Array]
    layers: Sequence[Layer]
    heads: int
    eps: float


def _encoder_graph(w: Weights) -> Any:
    """The float32 model as ONNX: ``input_ids`` (batch, width), ``position_ids`` (width) and
    ``key_bias`` (batch, 1, 1, width: 0 for a piece, -1e9 for padding) in, the last hidden
    states (batch, width, hidden) out."""
    from onnx import TensorProto, helper

    hidden = w.words.shape[1]
    head = hidden // w.heads
    g = _Graph()
    split = g.constant("split", np.array([0, 0, w.heads, head], dtype=np.int64))
    merge = g.constant("merge", np.array([0, 0, hidden], dtype=np.int64))
    scale = g.constant("scale", np.float32(1 / math.sqrt(head)))
    half, one = g.constant("half", np.float32(0.5)), g.constant("one", np.float32(1.0))
    root_half = g.constant("root_half", np.float32(1 / math.sqrt(2)))
    x = g.op(
        "Add",
        g.op("Gather", g.constant("words", w.words), "input_ids"),
        g.op("Gather", g.constant("positions", w.positions), "position_ids"),
    )
    x = g.norm(x, w.norm, w.eps, "embeddings")
    for i, layer in enumerate(w.layers):
        parts = []
        for n, (name, perm) in enumerate((("q", [0, 2, 1, 3]), ("k", [0, 2, 3, 1]), ("v", [0, 2, 1, 3]))):
            columns = slice(n * hidden, (n + 1) * hidden)
            flat = g.linear(x, layer.qkv[:, columns], layer.qkv_bias[columns], f"{i}.{name}")
            parts.append(g.op("Transpose", g.op("Reshape", flat, split), perm=perm))
        q, k, v = parts
        scores = g.op("Add", g.op("Mul", g.op("MatMul", q, k), scale), "key_bias")
        context = g.op("MatMul", g.op("Softmax", scores, axis=-1), v)
        context = g.op("Reshape", g.op("Transpose", context, perm=[0, 2, 1, 3]), merge)
        attended = g.linear(context, layer.out, layer.out_bias, f"{i}.out")
        x = g.norm(g.op("Add", attended, x), layer.norm1, w.eps, f"{i}.n1")
        inner = g.linear(x, layer.up, layer.up_bias, f"{i}.up")
        erf = g.op("Erf", g.op("Mul", inner, root_half))
        inner = g.op("Mul", g.op("Mul", inner, half), g.op("Add", erf, one))  # (gelu, exact)
        out = g.linear(inner, layer.down, layer.down_bias, f"{i}.down")
        x = g.norm(g.op("Add", out, x), layer.norm2, w.eps, f"{i}.n2")
    g.nodes.append(helper.make_node("Identity", [x], ["hidden"]))
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "width"]),
        helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["width"]),
        helper.make_tensor_value_info("key_bias", TensorProto.FLOAT, ["batch", 1, 1, "width"]),
    ]
    output = helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "width", hidden])
    graph = helper.make_graph(g.nodes, "encoder", inputs, [output], g.weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def quantized(weights: Weights) -> bytes:
    """The int8 encoder as ONNX bytes. Costly (about 2 s, mostly in Python, and some 300 MB at
    its peak): :func:`build` runs it in a process of its own."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.quant_utils import add_pre_process_metadata

    model = _encoder_graph(weights)
    add_pre_process_metadata(model)  # (its advice to pre-process: nothing changes here, same vectors)
    with tempfile.TemporaryDirectory(prefix="switchboard-encoder-") as tmp:
        path = Path(tmp) / "encoder-int8.onnx"
        quantize_dynamic(model, path, per_channel=True, weight_type=QuantType.QInt8)
        return path.read_bytes()


def build(model_dir: Path, cache: Path | None = None) -> tuple[QuantizedEncoder, bool]:
    """The int8 encoder of the model in ``model_dir``, built by a child process
    (``memory._encoder_build``) that hands its bytes back: the building holds neither this
    process's interpreter (the event loop would stall for seconds) nor its memory. With a
    ``cache`` directory, bytes kept there for the same model files, onnx, onnxruntime and this
    code are loaded instead, and bytes built are kept there (the older ones removed); whether
    they came from the cache.

    Raises:
        QuantizedUnavailable: onnxruntime is missing, or the build failed (its last words said).
    """
    try:
        import onnxruntime  # noqa: F401  (checked here: the child would only fail later)
    except ImportError as exc:
        raise QuantizedUnavailable(f"{exc.name} is not installed (make install)") from exc
    kept = _kept(model_dir, cache) if cache is not None else None
    if kept is not None:
        try:
            return QuantizedEncoder(kept.read_bytes()), True
        except FileNotFoundError:
            pass
        except (OSError, QuantizedUnavailable) as exc:  # (a file cut short, say): built again
            logger.warning(
                "the int8 encoder kept in %s could not be loaded (%s); building it again", kept, exc
            )
    made = _built(model_dir)
    encoder = QuantizedEncoder(made)
    if kept is not None:
        _keep(kept, made)
    return encoder, False


def _kept(model_dir: Path, cache: Path) -> Path | None:
    """Where the encoder of ``model_dir`` is kept in ``cache`` (None, said in the log, when
    that cannot be told: it is built, as without a cache)."""
    try:
        return cache / f"query-encoder-{_made_of(model_dir)}.onnx"
    except Exception as exc:  # noqa: BLE001 - the cache is a saving: without it, the encoder is built
        logger.warning("the int8 encoder's cache in %s cannot be used (%s): it is built", cache, exc)
        return None


def _made_of(model_dir: Path) -> str:
    """A digest of what the encoder's bytes are made from: the model's directory and files
    (names, sizes, times), onnx's and onnxruntime's versions, and the code that reads the
    weights (``_embed``) and writes and quantizes the graph."""
    import onnx
    import onnxruntime

    made = hashlib.sha256(f"{model_dir.resolve()}\n".encode())
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        facts = path.stat()
        made.update(f"{path.relative_to(model_dir)}\0{facts.st_size}\0{facts.st_mtime_ns}\n".encode())
    made.update(f"onnx=={onnx.__version__}\nonnxruntime=={onnxruntime.__version__}\n".encode())
    here = Path(__file__).resolve()
    for source in (here, here.with_name("_encoder_build.py"), here.with_name("_embed.py")):
        made.update(hashlib.sha256(source.read_bytes()).digest())
    return made.hexdigest()[:24]


def _keep(kept: Path, made: bytes) -> None:
    """Write ``made`` at ``kept`` whole (another process reads either the old file or the new),
    and remove the encoders kept for what is no longer installed."""
    partial = kept.with_name(f".{kept.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        kept.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(made)
        os.replace(partial, kept)
        for old in kept.parent.glob("query-encoder-*.onnx"):
            if old != kept:
                old.unlink(missing_ok=True)
        for left in kept.parent.glob(".query-encoder-*"):  # (a writer that died meanwhile)
            if time.time() - left.stat().st_mtime > PARTIAL_SECONDS:
                left.unlink(missing_ok=True)
    except OSError as exc:
        logger.warning(
            "the int8 encoder could not be kept in %s (%s): it is built again at each start", kept.parent, exc
        )
    finally:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)  # (a disk that filled: no 23 MB left behind)


def _built(model_dir: Path) -> bytes:
    """The encoder's bytes, from a child process."""
    command = [sys.executable, "-m", "memory._encoder_build", str(model_dir)]
    paths = [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    try:
        done = subprocess.run(command, capture_output=True, env=env, timeout=BUILD_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise QuantizedUnavailable(f"its build could not run ({type(exc).__name__}: {exc})") from exc
    if done.returncode != 0 or not done.stdout:
        said = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise QuantizedUnavailable(f"its build failed ({said[0][:300]})")
    return done.stdout


class QuantizedEncoder:
    """The int8 encoder, from its ONNX bytes (:func:`build`)."""

    def __init__(self, model: bytes) -> None:
        """Raises:
        QuantizedUnavailable: onnxruntime is missing, or refused the model."""
        try:
            import onnxruntime
        except ImportError as exc:
            raise QuantizedUnavailable(f"{exc.name} is not installed (make install)") from exc
        options = onnxruntime.SessionOptions()
        # One thread, the caller's (as numpy's BLAS: a worker thread beside the event loop), and
        # none of the runtime's own, whose pools would take the other core and meet fork().
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        try:
            self.session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # (onnxruntime raises its own, or plain ones)
            raise QuantizedUnavailable(f"ONNX Runtime refused it ({type(exc).__name__}: {exc})") from exc

    def forward(self, tokens: npt.NDArray[np.int64], mask: Array) -> Array:
        """The last hidden states of a padded batch (``_Model.states``'s)."""
        key_bias = ((mask - np.float32(1.0)) * np.float32(1e9))[:, None, None, :]
        positions = np.arange(tokens.shape[1], dtype=np.int64)
        feeds = {"input_ids": tokens, "position_ids": positions, "key_bias": key_bias}
        (states,) = self.session.run(["hidden"], feeds)
        return np.asarray(states, dtype=np.float32)
