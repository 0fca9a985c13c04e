"""memory's model client against real protocol peers on loopback: the scripted OpenAI-compatible
server, and scripted Anthropic Messages and Bedrock Converse servers."""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, asynccontextmanager
from typing import Any

import pytest
from pydantic import BaseModel, RootModel

from memory._llm import ModelClient, ModelError, ModelSettings, ask_json, model_client
from tests.support.llm_servers import Failure, Text, serve_anthropic, serve_bedrock, serve_openai

pytestmark = pytest.mark.anyio

KEY = "sk-test-7f3a9c1e5b"
SYSTEM = "Extract facts from the conversation as JSON."
PROMPT = "user: I live in Lisbon and prefer tea."
VALID = '{"facts": ["lives in Lisbon"], "preferences": ["tea"]}'


class Extracted(BaseModel):
    facts: list[str]
    preferences: list[str]


@pytest.fixture(autouse=True)
def aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake AWS credentials, and nothing read from this machine's AWS configuration."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTESTING")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in (
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_BEARER_TOKEN_BEDROCK",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)


@asynccontextmanager
async def asking(settings: ModelSettings) -> AsyncIterator[ModelClient]:
    client = model_client(settings)
    try:
        yield client
    finally:
        await client.aclose()


def settings_for(kind: str, url: str, **overrides: Any) -> ModelSettings:
    return ModelSettings(
        kind=kind,  # type: ignore[arg-type]
        model={"openai": "qwen2.5:7b", "anthropic": "claude-test", "bedrock": "anthropic.claude-test-v1:0"}[
            kind
        ],
        url=url,
        api_key=None if kind == "bedrock" else KEY,
        region="us-east-1" if kind == "bedrock" else None,
        **overrides,
    )


def user_prompt(kind: str, request: dict[str, Any]) -> str:
    """The user text a request carried, in each kind's shape."""
    message = request["messages"][-1]
    assert message["role"] == "user"
    content = message["content"]
    return str(content[0]["text"] if kind == "bedrock" else content)


SERVERS: dict[str, Callable[[list[Any]], AbstractContextManager[Any]]] = {
    "openai": serve_openai,
    "anthropic": serve_anthropic,
    "bedrock": serve_bedrock,
}


async def test_openai_kind_sends_system_prompt_model_and_bearer_key() -> None:
    with serve_openai([Text("hello")]) as peer:
        async with asking(settings_for("openai", peer.url, max_tokens=300)) as client:
            assert await client.complete(SYSTEM, PROMPT) == "hello"
    [request] = peer.requests
    assert request["model"] == "qwen2.5:7b"
    assert request["messages"] == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
    assert request["max_tokens"] == 300 and request["temperature"] == 0.0
    assert "response_format" not in request
    assert peer.headers[0]["authorization"] == f"Bearer {KEY}"


async def test_anthropic_kind_sends_messages_with_key_and_version() -> None:
    with serve_anthropic([Text("hello")]) as peer:
        async with asking(settings_for("anthropic", peer.url)) as client:
            assert await client.complete(SYSTEM, PROMPT) == "hello"
    [request] = peer.requests
    assert request == {
        "model": "claude-test",
        "max_tokens": 2048,
        "temperature": 0.0,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": PROMPT}],
    }
    assert peer.headers[0]["x-api-key"] == KEY
    assert peer.headers[0]["anthropic-version"] == "2023-06-01"


async def test_bedrock_kind_sends_converse_signed_with_the_aws_credentials() -> None:
    with serve_bedrock([Text("hello")]) as peer:
        async with asking(settings_for("bedrock", peer.url, max_tokens=100, temperature=0.2)) as client:
            assert await client.complete(SYSTEM, PROMPT) == "hello"
    [request] = peer.requests
    assert request == {
        "modelId": "anthropic.claude-test-v1:0",
        "system": [{"text": SYSTEM}],
        "messages": [{"role": "user", "content": [{"text": PROMPT}]}],
        "inferenceConfig": {"maxTokens": 100, "temperature": 0.2},
    }
    assert "Credential=AKIDTESTING/" in peer.headers[0]["authorization"]
    assert "/us-east-1/bedrock/aws4_request" in peer.headers[0]["authorization"]


@pytest.mark.parametrize("kind", sorted(SERVERS))
async def test_ask_json_takes_the_json_out_of_a_fenced_answer(kind: str) -> None:
    fenced = f"Here is what I found:\n```json\n{VALID}\n```\nLet me know if you need more."
    with SERVERS[kind]([Text(fenced)]) as peer:
        async with asking(settings_for(kind, peer.url)) as client:
            got = await ask_json(client, SYSTEM, PROMPT, Extracted)
    assert got == Extracted(facts=["lives in Lisbon"], preferences=["tea"])
    assert len(peer.requests) == 1


@pytest.mark.parametrize("kind", sorted(SERVERS))
async def test_an_invalid_answer_is_asked_again_once_with_the_problem_quoted(kind: str) -> None:
    with SERVERS[kind]([Text('{"facts": "Lisbon"}'), Text(VALID)]) as peer:
        async with asking(settings_for(kind, peer.url)) as client:
            got = await ask_json(client, SYSTEM, PROMPT, Extracted, backoff=0)
    assert got.preferences == ["tea"]
    first, second = (user_prompt(kind, r) for r in peer.requests)
    assert first == PROMPT
    assert second.startswith(PROMPT + "\n\nYour previous answer was not valid: ")
    assert "facts: Input should be a valid list" in second and "preferences: Field required" in second
    assert "Answer with JSON only" in second and '"preferences"' in second  # (the schema, quoted)


async def test_garbage_every_time_fails_after_the_attempts_naming_the_last_problem() -> None:
    with serve_openai([Text("I cannot help with that.")] * 4) as peer:
        async with asking(settings_for("openai", peer.url)) as client:
            with pytest.raises(ModelError) as caught:
                await ask_json(client, SYSTEM, PROMPT, Extracted, attempts=4, backoff=0)
    assert len(peer.requests) == 4
    message = str(caught.value)
    assert "'qwen2.5:7b'" in message and "no valid Extracted in 4 attempts" in message
    assert "no JSON object or array" in message
    assert not caught.value.retryable


def never_answers(release: threading.Event) -> Callable[[dict[str, Any]], Text]:
    def step(request: dict[str, Any]) -> Text:
        release.wait(30)
        return Text("too late")

    return step


@pytest.mark.parametrize("kind", ["anthropic", "bedrock"])
async def test_a_model_that_never_answers_times_out(kind: str) -> None:
    release = threading.Event()
    with SERVERS[kind]([never_answers(release)]) as peer:
        try:
            async with asking(settings_for(kind, peer.url, timeout=0.5)) as client:
                with pytest.raises(ModelError, match=r"did not answer within 0\.5 s") as caught:
                    await client.complete(SYSTEM, PROMPT)
        finally:
            release.set()
    assert peer.url in str(caught.value) and caught.value.retryable


async def test_a_timeout_and_a_5xx_count_as_failed_attempts_and_are_retried() -> None:
    release = threading.Event()
    script: list[Any] = [never_answers(release), Failure(529, "Overloaded"), Text(VALID)]
    with serve_anthropic(script) as peer:
        try:
            async with asking(settings_for("anthropic", peer.url, timeout=0.5)) as client:
                got = await ask_json(client, SYSTEM, PROMPT, Extracted, backoff=0.01)
        finally:
            release.set()
    assert got.facts == ["lives in Lisbon"]
    assert [user_prompt("anthropic", r) for r in peer.requests] == [PROMPT] * 3


@pytest.mark.parametrize(
    ("kind", "failure", "said"),
    [
        ("anthropic", Failure(401, "invalid x-api-key"), "HTTP 401: invalid x-api-key; check the API key"),
        (
            "bedrock",
            Failure(403, "not authorized to invoke"),
            "HTTP 403: AccessDeniedException: not authorized",
        ),
        ("bedrock", Failure(400, "model id is wrong"), "HTTP 400: ValidationException: model id is wrong"),
    ],
)
async def test_a_4xx_is_not_retried_and_its_message_is_in_the_error(
    kind: str, failure: Failure, said: str
) -> None:
    with SERVERS[kind]([failure, Text(VALID)]) as peer:
        async with asking(settings_for(kind, peer.url)) as client:
            with pytest.raises(ModelError) as caught:
                await ask_json(client, SYSTEM, PROMPT, Extracted, backoff=0)
    assert len(peer.requests) == 1
    assert said in str(caught.value) and peer.url in str(caught.value)


async def test_a_429_is_retried() -> None:
    with serve_bedrock([Failure(429, "slow down"), Text(VALID)]) as peer:
        async with asking(settings_for("bedrock", peer.url)) as client:
            got = await ask_json(client, SYSTEM, PROMPT, Extracted, backoff=0.01)
    assert got.preferences == ["tea"] and len(peer.requests) == 2


async def test_the_api_key_never_appears_in_an_error_even_when_the_provider_echoes_it() -> None:
    script: list[Any] = [Failure(401, f"Incorrect API key provided: {KEY}")]
    with serve_anthropic(script) as peer:
        settings = settings_for("anthropic", peer.url)
        async with asking(settings) as client:
            with pytest.raises(ModelError) as caught:
                await client.complete(SYSTEM, PROMPT)
    assert "Incorrect API key provided: [redacted]" in str(caught.value)
    assert KEY not in str(caught.value) and KEY not in repr(caught.value) and KEY not in repr(settings)


async def test_an_unreachable_server_is_a_retryable_error_naming_the_url() -> None:
    with socket.socket() as sock:  # (a port nothing listens on)
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    async with asking(settings_for("openai", url)) as client:
        with pytest.raises(ModelError, match="cannot be reached") as caught:
            await ask_json(client, SYSTEM, PROMPT, Extracted, attempts=2, backoff=0)
    assert "in 2 attempts" in str(caught.value) and url in str(caught.value)


async def test_bedrock_without_a_region_or_credentials_says_what_to_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with asking(ModelSettings(kind="bedrock", model="m")) as client:
        with pytest.raises(ModelError, match=r"cannot be asked .*region.*; check the settings"):
            await client.complete(SYSTEM, PROMPT)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with serve_bedrock([Text("unsigned")]) as peer:
        async with asking(settings_for("bedrock", peer.url)) as client:
            with pytest.raises(ModelError, match="has no AWS credentials to sign with") as caught:
                await ask_json(client, SYSTEM, PROMPT, Extracted, backoff=0)
    assert not caught.value.retryable and peer.requests == []


class Canned:
    """A model that answers from a list, for the JSON-finding cases (no protocol involved)."""

    def __init__(self, *answers: str) -> None:
        self.settings = ModelSettings(kind="openai", model="canned")
        self.answers = list(answers)

    async def complete(self, system: str, prompt: str) -> str:
        return self.answers.pop(0)

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize(
    "answer",
    [
        VALID,
        f"Sure! {VALID}",
        f"{VALID}\nNote: I ignored {{the greeting}}.",
        f"Step [1] done. ```\n{VALID}\n```",
        f"```JSON\n{VALID}```",
    ],
)
async def test_the_json_is_found_among_prose_and_fences(answer: str) -> None:
    got = await ask_json(Canned(answer), SYSTEM, PROMPT, Extracted, attempts=1)
    assert got.facts == ["lives in Lisbon"]


async def test_an_array_is_found_for_a_root_model() -> None:
    got = await ask_json(
        Canned('The facts: ["a", "b"] (two).'), SYSTEM, PROMPT, RootModel[list[str]], attempts=1
    )
    assert got.root == ["a", "b"]


def test_model_client_refuses_an_unknown_kind_and_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="unknown model kind 'gemini'"):
        model_client(ModelSettings(kind="gemini", model="m"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        ModelSettings(kind="openai", model="m", timeout=0)
