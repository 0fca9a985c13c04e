"""The model memory extraction asks: one turn (system text, user text) in, the model's text out.

One client per kind of peer, picked by `model_client`: an OpenAI-compatible chat-completions
server, Anthropic's Messages API, Bedrock's Converse through boto3. `ask_json` sits on top: it asks
until the answer parses as a given pydantic model, re-asking with the validation error quoted.

Every failure is a `ModelError`, mapped where each library is called (httpx2's in
`_HttpClient._post`, botocore's in `_BedrockClient._converse`) and made in `_fail` alone.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, TypeVar

import anyio
import anyio.to_thread
import httpx2
import orjson
from pydantic import BaseModel, ValidationError

__all__ = ["ModelClient", "ModelError", "ModelSettings", "ask_json", "model_client"]

log = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)

MAX_ANSWER_BYTES = 8 << 20  # (the most of an answer read; a completion is far smaller)

_HINTS = {
    401: "check the API key",
    403: "check the key's (or the AWS identity's) access to this model",
    404: "check the URL and the model id",
    408: "the model was slow; retry later or raise the timeout",
    429: "the provider is limiting the rate; retry later",
}


class ModelError(Exception):
    """The model could not be asked, refused, or gave no usable answer.

    Attributes:
        retryable: Whether asking again may help (a timeout, a 5xx, a 408 or 429, an unreachable
            server); a 4xx such as a bad key or an unknown model is not.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class ModelSettings:
    """Which model to ask, where, and how.

    Attributes:
        kind: The protocol: ``openai`` (chat completions), ``anthropic`` (Messages), ``bedrock``.
        model: The model id, as the provider names it.
        url: ``openai``: the base URL, ending in ``/v1`` (default OpenAI's); ``anthropic``: the base
            URL (default Anthropic's); ``bedrock``: an endpoint URL instead of boto3's.
        api_key: The key for ``openai`` and ``anthropic`` (Bedrock signs with AWS credentials).
        region: Bedrock's AWS region (default boto3's).
        timeout: Seconds one call may take in all, connecting and reading included.
        max_tokens: The most tokens the model may answer with.
    """

    kind: Literal["openai", "bedrock", "anthropic"]
    model: str
    url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    region: str | None = None
    timeout: float = 30.0
    max_tokens: int = 2048
    temperature: float = 0.0

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.max_tokens < 1:
            raise ValueError("a model's timeout and max_tokens must be positive")


class ModelClient(Protocol):
    """A model asked one turn at a time: `complete` answers ``prompt`` under the instructions
    ``system`` with the model's text (raising `ModelError`); `aclose` releases its connections."""

    settings: ModelSettings

    async def complete(self, system: str, prompt: str) -> str: ...

    async def aclose(self) -> None: ...


def _fail(s: ModelSettings, where: str, what: str, hint: str, *, retryable: bool = False) -> ModelError:
    """The one place a `ModelError` is made: who was asked where, what went wrong, what to check;
    the API key is scrubbed from it, whatever the provider echoed back."""
    message = f"model {s.model!r} ({s.kind}) at {where} {what}; {hint}"
    return ModelError(message.replace(s.api_key, "[redacted]") if s.api_key else message, retryable=retryable)


def _timed_out(s: ModelSettings, where: str) -> ModelError:
    what, hint = f"did not answer within {s.timeout:g} s", "check that the server is up, or raise the timeout"
    return _fail(s, where, what, hint, retryable=True)


def _refused(s: ModelSettings, where: str, status: int, detail: str) -> ModelError:
    retryable = status >= 500 or status in (408, 429)
    hint = _HINTS.get(status, "the provider failed; retry later" if retryable else "check the request")
    return _fail(s, where, f"answered HTTP {status}: {detail}", hint, retryable=retryable)


def _odd(s: ModelSettings, where: str, what: str) -> ModelError:
    return _fail(s, where, what, f"check that it speaks the {s.kind} API")


class _HttpClient(ABC):
    """What the two HTTP kinds share: one httpx2 pool, the whole-call deadline, the error mapping."""

    path: ClassVar[str]
    default_url: ClassVar[str]

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        self.url = (settings.url or self.default_url).rstrip("/") + self.path
        self._http = httpx2.AsyncClient(timeout=httpx2.Timeout(settings.timeout))

    async def complete(self, system: str, prompt: str) -> str:
        return self._text_of(await self._post(*self._request(system, prompt)))

    async def aclose(self) -> None:
        await self._http.aclose()

    @abstractmethod
    def _request(self, system: str, prompt: str) -> tuple[dict[str, str], dict[str, Any]]:
        """The headers and the JSON body that ask the model."""

    @abstractmethod
    def _text_of(self, answer: dict[str, Any]) -> str:
        """The model's text in the server's answer."""

    async def _post(self, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        """The JSON object the server answered ``body`` with, whole within the timeout."""
        settings, url = self.settings, self.url
        try:
            with anyio.fail_after(settings.timeout):
                async with self._http.stream("POST", url, json=body, headers=headers) as response:
                    content = bytearray()
                    async for chunk in response.aiter_bytes():
                        content += chunk
                        if len(content) > MAX_ANSWER_BYTES:
                            raise _odd(settings, url, f"answered more than {MAX_ANSWER_BYTES} bytes")
                    status = response.status_code
        except (TimeoutError, httpx2.TimeoutException):
            raise _timed_out(settings, url) from None
        except httpx2.HTTPError as exc:
            what = f"cannot be reached ({type(exc).__name__}: {exc})"
            raise _fail(settings, url, what, "check the URL and the server", retryable=True) from None
        try:
            answer = orjson.loads(content)
        except orjson.JSONDecodeError:
            answer = None
        if not 200 <= status < 300:
            raise _refused(settings, url, status, _provider_message(answer, bytes(content)))
        if not isinstance(answer, dict):
            raise _odd(settings, url, f"answered no JSON object: {bytes(content)[:200]!r}")
        return answer


def _provider_message(answer: Any, content: bytes) -> str:
    """The provider's own words for an error: OpenAI's and Anthropic's ``error.message``, a bare
    ``error``, ``message`` or ``detail``, else the start of the body."""
    if isinstance(answer, dict):
        error = answer.get("error")
        said = error.get("message") if isinstance(error, dict) else error
        said = said if isinstance(said, str) else answer.get("message") or answer.get("detail")
        if isinstance(said, str):
            return said
    return content[:300].decode("utf-8", "replace") or "(no body)"


class _OpenAIClient(_HttpClient):
    """An OpenAI-compatible server's ``POST {url}/chat/completions`` (no ``response_format``:
    many local servers lack it)."""

    path = "/chat/completions"
    default_url = "https://api.openai.com/v1"

    def _request(self, system: str, prompt: str) -> tuple[dict[str, str], dict[str, Any]]:
        s = self.settings
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": prompt})
        body = dict(model=s.model, messages=messages, max_tokens=s.max_tokens, temperature=s.temperature)
        return ({"Authorization": f"Bearer {s.api_key}"} if s.api_key else {}), body

    def _text_of(self, answer: dict[str, Any]) -> str:
        try:
            content = answer["choices"][0]["message"].get("content")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise _odd(self.settings, self.url, "answered without choices[0].message") from None
        if isinstance(content, list):  # (content parts, as some servers answer)
            return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        return content if isinstance(content, str) else ""


class _AnthropicClient(_HttpClient):
    """Anthropic's ``POST {url}/v1/messages``; the answer is its text blocks, concatenated."""

    path = "/v1/messages"
    default_url = "https://api.anthropic.com"

    def _request(self, system: str, prompt: str) -> tuple[dict[str, str], dict[str, Any]]:
        s = self.settings
        headers = {"anthropic-version": "2023-06-01", **({"x-api-key": s.api_key} if s.api_key else {})}
        body = {"model": s.model, "max_tokens": s.max_tokens, "temperature": s.temperature}
        messages = [{"role": "user", "content": prompt}]
        return headers, {**body, **({"system": system} if system else {}), "messages": messages}

    def _text_of(self, answer: dict[str, Any]) -> str:
        blocks = answer.get("content")
        if not isinstance(blocks, list):
            raise _odd(self.settings, self.url, "answered a message without content blocks")
        texts = (b.get("text") for b in blocks if isinstance(b, dict) and b.get("type") == "text")
        return "".join(str(t) for t in texts if t)


class _BedrockClient:
    """Bedrock's Converse through boto3, which blocks, so each call runs in a worker thread; the
    boto3 client is made on the first call (loading botocore's models is slow) and then reused."""

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        self.where = settings.url or f"bedrock-runtime ({settings.region or 'the default region'})"
        self._client: Any = None
        self._lock = threading.Lock()

    async def complete(self, system: str, prompt: str) -> str:
        await anyio.to_thread.run_sync(self._boto)  # (outside the deadline: it is not the model's time)
        converse = functools.partial(self._converse, system, prompt)
        try:
            with anyio.fail_after(self.settings.timeout):
                answer = await anyio.to_thread.run_sync(converse, abandon_on_cancel=True)
        except TimeoutError:
            raise _timed_out(self.settings, self.where) from None
        try:
            blocks = answer["output"]["message"]["content"]
        except (KeyError, TypeError):
            raise _odd(self.settings, self.where, "answered without output.message.content") from None
        return "".join(str(b["text"]) for b in blocks if isinstance(b, dict) and "text" in b)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await anyio.to_thread.run_sync(client.close)

    def _boto(self) -> Any:
        with self._lock, self._mapped():
            if self._client is None:
                import boto3.session
                from botocore.config import Config

                s = self.settings
                config = Config(  # (no retries of botocore's own: ask_json retries)
                    connect_timeout=s.timeout, read_timeout=s.timeout, retries={"total_max_attempts": 1}
                )
                self._client = boto3.session.Session().client(
                    "bedrock-runtime", region_name=s.region, endpoint_url=s.url, config=config
                )
            return self._client

    def _converse(self, system: str, prompt: str) -> Any:
        s = self.settings
        with self._mapped():
            return self._boto().converse(
                modelId=s.model,
                system=[{"text": system}] if system else [],
                messages=[{"role": "user", "content": [{"text": prompt}]}],
                inferenceConfig={"maxTokens": s.max_tokens, "temperature": s.temperature},
            )

    @contextmanager
    def _mapped(self) -> Iterator[None]:
        """botocore's exceptions, as `ModelError`s: the one place they are mapped."""
        from botocore import exceptions as boto

        s, where = self.settings, self.where
        try:
            yield
        except boto.ClientError as exc:
            error, meta = exc.response.get("Error", {}), exc.response.get("ResponseMetadata", {})
            detail = f"{error.get('Code', 'error')}: {error.get('Message', '')}"
            raise _refused(s, where, int(meta.get("HTTPStatusCode") or 400), detail) from None
        except (boto.ConnectTimeoutError, boto.ReadTimeoutError):
            raise _timed_out(s, where) from None
        except boto.NoCredentialsError:
            raise _fail(s, where, "has no AWS credentials to sign with", "check the env or profile") from None
        except (boto.ConnectionError, boto.HTTPClientError) as exc:
            raise _fail(s, where, f"cannot be reached ({exc})", "check the URL", retryable=True) from None
        except boto.BotoCoreError as exc:
            raise _fail(s, where, f"cannot be asked ({exc})", "check the settings") from None


_KINDS: dict[str, Callable[[ModelSettings], ModelClient]] = {
    "openai": _OpenAIClient,
    "anthropic": _AnthropicClient,
    "bedrock": _BedrockClient,
}


def model_client(settings: ModelSettings) -> ModelClient:
    """A client for the model ``settings`` names (``aclose`` it when done).

    Raises:
        ValueError: ``settings.kind`` is none of ``openai``, ``anthropic``, ``bedrock``.
    """
    try:
        make = _KINDS[settings.kind]
    except KeyError:
        raise ValueError(f"unknown model kind {settings.kind!r}; expected one of {sorted(_KINDS)}") from None
    return make(settings)


_FENCED = re.compile(r"```[a-zA-Z]*\s*\n?(.*?)```", re.DOTALL)
_STARTS = re.compile(r"[\[{]")
_TRIES = 50  # (candidate starts tried in prose before giving up)


def _json_in(text: str) -> Any:
    """The outermost JSON object or array in a model's answer (in its first ``` fence, if it has
    one), prose before and after ignored; ValueError if there is none."""
    fenced = _FENCED.search(text)
    decoder = json.JSONDecoder()
    for body in ([fenced.group(1)] if fenced else []) + [text]:
        for start in itertools.islice(_STARTS.finditer(body), _TRIES):
            try:
                return decoder.raw_decode(body, start.start())[0]
            except ValueError:
                continue
    raise ValueError("the answer holds no JSON object or array")


def _problem(exc: ValueError) -> str:
    """A short account of why an answer was refused, to quote back to the model."""
    if isinstance(exc, ValidationError):
        errors = exc.errors(include_url=False, include_input=False)
        said = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in errors[:5])
        return said + (f" (and {len(errors) - 5} more)" if len(errors) > 5 else "")
    return str(exc)


async def ask_json(
    client: ModelClient,
    system: str,
    prompt: str,
    schema: type[T],
    *,
    attempts: int = 3,
    backoff: float = 0.5,
) -> T:
    """The model's answer to ``prompt``, parsed as JSON and validated as ``schema``.

    An answer that does not parse or validate is asked again (the prompt plus a note quoting the
    problem); a timeout, a 5xx, a 408 or 429 or an unreachable server is asked again after a wait
    of ``backoff`` seconds, doubled each time. Other refusals (a bad key, an unknown model) are
    not asked again.

    Raises:
        ModelError: a refusal that asking again cannot mend, or no valid answer in ``attempts``.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    settings, asked, problem = client.settings, prompt, ""
    for attempt in range(1, attempts + 1):
        try:
            text: str | None = await client.complete(system, asked)
        except ModelError as exc:
            if not exc.retryable:
                raise
            problem, text = str(exc), None
        if text is not None:
            try:
                return schema.model_validate(_json_in(text))
            except ValueError as exc:  # (ValidationError is one)
                problem = _problem(exc)
            shape = orjson.dumps(schema.model_json_schema()).decode()
            asked = (
                f"{prompt}\n\nYour previous answer was not valid: {problem}. Answer with JSON only, "
                f"matching this JSON schema: {shape}"
            )
        log.warning("model %r, attempt %d of %d failed: %s", settings.model, attempt, attempts, problem)
        if text is None and attempt < attempts:
            await anyio.sleep(backoff * 2 ** (attempt - 1))
    what = f"gave no valid {schema.__name__} in {attempts} attempt{'s' if attempts > 1 else ''}"
    raise _fail(settings, settings.url or "its default endpoint", what, f"the last problem: {problem}")
