"""SigV4 verification (gateway/agentcore/_sigv4.py) against botocore's own signer.

Requests are signed by `botocore.auth.SigV4Auth` and by real boto3 clients of both AgentCore
services (captured at `before-send`, nothing leaves the process), turned into what an ASGI server
receives, and verified; then tampered with, one thing at a time, and each refusal's code, status
and message checked. No request may fail with anything but a `SignatureError`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest, AWSResponse, HTTPHeaders
from botocore.credentials import Credentials

from gateway.agentcore._sigv4 import (
    CONTENT_SHA256_MISMATCH,
    INCOMPLETE_SIGNATURE,
    INVALID_SIGNATURE,
    MISSING_AUTHENTICATION_TOKEN,
    SERVICE,
    UNRECOGNIZED_CLIENT,
    Authorization,
    SignatureError,
    canonical_request,
    parse_authorization,
    verify,
    verify_async,
)

AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
REGION = "eu-west-1"
ARN = "arn:aws:bedrock-agentcore:eu-west-1:123456789012:runtime/abc-DEF_1"
BODY = json.dumps({"name": "agent", "description": "x" * 1000, "tags": {"team": "a b"}}).encode()


@dataclass(frozen=True)
class Wire:
    """A request as an ASGI server receives it."""

    method: str
    raw_path: bytes
    query_string: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes

    def header(self, name: str) -> str:
        (value,) = [v for k, v in self.headers if k == name.encode()]
        return value.decode("latin-1")

    def with_header(self, name: str, value: str | None) -> Wire:
        kept = tuple((k, v) for k, v in self.headers if k != name.encode())
        if value is None:
            return replace(self, headers=kept)
        # Latin-1 as http.client sends a str; what it cannot send, a raw client sends as UTF-8.
        encoded = value.encode("latin-1") if value.isascii() or max(value) <= "\xff" else value.encode()
        return replace(self, headers=(*kept, (name.encode(), encoded)))

    def with_authorization(self, edit: Callable[[str], str]) -> Wire:
        return self.with_header("authorization", edit(self.header("authorization")))

    def verify(self, **overrides: Any) -> Authorization:
        arguments: dict[str, Any] = {"secret": SECRET, **overrides}
        return verify(
            method=self.method,
            raw_path=self.raw_path,
            query_string=self.query_string,
            headers=self.headers,
            body=self.body,
            **arguments,
        )

    def signed_at(self) -> float:
        return datetime.strptime(self.header("x-amz-date"), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()


def _host(url: str) -> str:
    # What urllib3 sends as Host (and botocore signs): the port only when it is not the default.
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname or ""
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


def _wire(method: str, url: str, headers: Iterator[tuple[str, str | bytes]], body: bytes | None) -> Wire:
    parts = urlsplit(url)
    pairs = [(b"host", _host(url).encode())]
    for name, value in headers:
        pairs.append((name.lower().encode(), value if isinstance(value, bytes) else value.encode("latin-1")))
    return Wire(method, (parts.path or "/").encode(), parts.query.encode(), tuple(pairs), body or b"")


def _signed(
    method: str = "POST",
    url: str = "http://127.0.0.1:8080/runtimes/abc/invocations",
    headers: dict[str, str] | None = None,
    body: bytes = BODY,
    *,
    service: str = SERVICE,
    region: str = REGION,
    credentials: Credentials | None = None,
) -> tuple[Wire, AWSRequest, SigV4Auth]:
    request = AWSRequest(method, url, data=body, headers=headers or {})
    signer = SigV4Auth(credentials or Credentials(AKID, SECRET), service, region)
    signer.add_auth(request)
    return _wire(method, url, iter(request.headers.items()), body), request, signer


def sign(*args: Any, **kwargs: Any) -> Wire:
    return _signed(*args, **kwargs)[0]


BASE = {"Content-Type": "application/json", "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": "s" * 40}

# (method, url, headers, body): what rest-json clients send, and the corners of canonicalisation.
SIGNED_CASES = {
    "post json": ("POST", "http://127.0.0.1:8080/runtimes/abc/invocations", BASE, BODY),
    "get no body": ("GET", "http://127.0.0.1:8080/runtimes/", {}, b""),
    "root": ("GET", "http://127.0.0.1:8080/", {}, b""),
    "empty path": ("GET", "http://127.0.0.1:8080", {}, b""),
    "default port": ("GET", "http://localhost:80/runtimes/", {}, b""),
    "arn label": (
        "GET",
        "http://127.0.0.1:8080/tags/arn%3Aaws%3Abedrock-agentcore%3Aeu-west-1%3A1%3Aruntime%2Fabc",
        {},
        b"",
    ),
    "encoded slash, space, unicode, tilde": (
        "GET",
        "http://127.0.0.1:8080/a%2Fb/c%20d/%C3%BC%E2%82%AC/~x-_.y/",
        {},
        b"",
    ),
    "reserved in path": ("DELETE", "http://127.0.0.1:8080/p/a:b@c!$'()*+,;=/", {}, b""),
    "dot segments": ("GET", "http://127.0.0.1:8080/a/./b/../c/.hidden/..x/", {}, b""),
    "double slashes": ("GET", "http://127.0.0.1:8080//a//b///", {}, b""),
    "repeated keys and spaces": (
        "DELETE",
        "http://127.0.0.1:8080/tags/x?tagKeys=b%20key&tagKeys=a&tagKeys=b%20key&tagKeys=z%2F%C3%BC",
        {},
        b"",
    ),
    "query corners": (
        "GET",
        "http://127.0.0.1:8080/q?b=2&a=&flag&A=upper&a=%2B%3D%26&~t-_.=~v-_.&u=%C3%A9",
        {},
        b"",
    ),
    "header whitespace and latin-1": (
        "PUT",
        "http://127.0.0.1:8080/x",
        {"X-Spaced": "  a   b \t c  ", "X-Meta": "caf\u00e9", "Content-Type": "application/json"},
        BODY,
    ),
    "content sha256 sent": (
        "POST",
        "http://127.0.0.1:8080/x",
        {"X-Amz-Content-SHA256": hashlib.sha256(BODY).hexdigest()},
        BODY,
    ),
    "https": ("POST", "https://agentcore.example.com/runtimes/abc/invocations", BASE, BODY),
}


@pytest.mark.parametrize("case", SIGNED_CASES)
def test_botocore_signed_requests_verify(case: str) -> None:
    method, url, headers, body = SIGNED_CASES[case]
    wire, request, signer = _signed(method, url, dict(headers), body)
    auth = wire.verify()
    assert (auth.access_key_id, auth.region, auth.service) == (AKID, REGION, SERVICE)
    assert auth.signature in wire.header("authorization")
    # And the canonical request is botocore's own, byte for byte.
    del request.headers["Authorization"]
    payload_hash = request.headers.get("X-Amz-Content-SHA256") or signer.payload(request)
    ours = canonical_request(
        wire.method, wire.raw_path, wire.query_string, wire.headers, auth.signed_headers, payload_hash
    )
    assert ours == signer.canonical_request(request)


def test_duplicate_headers_are_joined_like_botocore() -> None:
    request = AWSRequest("GET", "http://127.0.0.1:8080/x", headers={})
    request.headers["X-Multi"] = " one  "
    request.headers["X-Multi"] = "two   three"
    signer = SigV4Auth(Credentials(AKID, SECRET), SERVICE, REGION)
    signer.add_auth(request)
    wire = _wire("GET", "http://127.0.0.1:8080/x", iter(request.headers.items()), b"")
    assert "x-multi" in wire.verify().signed_headers


class _Raw:
    def stream(self, **_: Any) -> Iterator[bytes]:
        yield b"{}"


@pytest.fixture(scope="module")
def clients() -> Iterator[dict[str, Any]]:
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ENDPOINT_URL"):
            patch.delenv(name, raising=False)
        patch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
        made = {
            name: boto3.client(
                name,
                endpoint_url=f"http://127.0.0.1:1/aws/{name}",
                region_name=REGION,
                aws_access_key_id=AKID,
                aws_secret_access_key=SECRET,
            )
            for name in ("bedrock-agentcore-control", "bedrock-agentcore")
        }
        yield made


def _capture(client: Any, operation: str, **params: Any) -> Wire:
    captured: list[Any] = []

    def before_send(request: Any, **_: Any) -> AWSResponse:
        captured.append(request)
        return AWSResponse(request.url, 200, HTTPHeaders(), _Raw())

    client.meta.events.register("before-send", before_send)
    try:
        getattr(client, operation)(**params)
    finally:
        client.meta.events.unregister("before-send", before_send)
    (request,) = captured
    return _wire(request.method, request.url, iter(request.headers.items()), request.body)


BOTO3_CASES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "arn label, GET": ("bedrock-agentcore-control", "list_tags_for_resource", {"resourceArn": ARN}),
    "repeated query keys with spaces": (
        "bedrock-agentcore-control",
        "untag_resource",
        {"resourceArn": ARN, "tagKeys": ["b key", "a", "b key", "z/\u00fc"]},
    ),
    "json body": (
        "bedrock-agentcore-control",
        "tag_resource",
        {"resourceArn": ARN, "tags": {"team": "a b", "\u00fc": "\u00df"}},
    ),
    "unicode label": ("bedrock-agentcore-control", "get_agent_runtime", {"agentRuntimeId": "rt \u00fc/../x"}),
    "query without body": (
        "bedrock-agentcore-control",
        "list_agent_runtimes",
        {"maxResults": 5, "nextToken": "a+b/c= d"},
    ),
    "data plane invoke": (
        "bedrock-agentcore",
        "invoke_agent_runtime",
        {"agentRuntimeArn": ARN, "qualifier": "DEFAULT", "runtimeSessionId": "s" * 33, "payload": BODY},
    ),
}


@pytest.mark.parametrize("case", BOTO3_CASES)
def test_boto3_client_requests_verify(clients: dict[str, Any], case: str) -> None:
    service_name, operation, params = BOTO3_CASES[case]
    wire = _capture(clients[service_name], operation, **params)
    assert wire.raw_path.startswith(f"/aws/{service_name}/".encode())
    auth = wire.verify(region=REGION)
    assert (auth.access_key_id, auth.service, auth.region) == (AKID, SERVICE, REGION)
    # A secret looked up by access key id works the same; another key's secret does not.
    assert wire.verify(secret={AKID: SECRET}.get) == auth
    with pytest.raises(SignatureError) as refused:
        wire.verify(secret="another-secret")
    assert refused.value.code == INVALID_SIGNATURE


def test_boto3_arn_label_is_double_encoded(clients: dict[str, Any]) -> None:
    wire = _capture(clients["bedrock-agentcore-control"], "list_tags_for_resource", resourceArn=ARN)
    assert b"arn%3Aaws%3A" in wire.raw_path and b"runtime%2Fabc" in wire.raw_path
    auth = wire.verify()
    canonical = canonical_request(
        wire.method, wire.raw_path, wire.query_string, wire.headers, auth.signed_headers, "-"
    )
    assert canonical.splitlines()[1].endswith("/tags/arn%253Aaws%253Abedrock-agentcore%253Aeu-west-1"
                                              "%253A123456789012%253Aruntime%252Fabc-DEF_1")  # fmt: skip


def test_clock_window_edges() -> None:
    wire = sign()
    at = wire.signed_at()
    for now in (at - 300, at + 300, at):
        wire.verify(now=now)
    wire.verify(now=datetime.fromtimestamp(at + 299, UTC))
    wire.verify(now=datetime.fromtimestamp(at + 60, UTC).replace(tzinfo=None))  # naive: UTC
    wire.verify(now=at + 3599, skew=3600.0)


def test_rotated_secret_is_not_served_from_the_key_cache() -> None:
    wire = sign()
    wire.verify()
    with pytest.raises(SignatureError) as refused:
        wire.verify(secret=SECRET + "x")
    assert refused.value.code == INVALID_SIGNATURE
    assert refused.value.canonical_request is not None
    assert refused.value.canonical_request.startswith("POST\n/runtimes/abc/invocations\n")


def test_async_lookup_and_its_order() -> None:
    wire = sign(headers=dict(BASE))
    asked: list[str] = []

    async def lookup(access_key_id: str) -> str | None:
        asked.append(access_key_id)
        return {AKID: SECRET}.get(access_key_id)

    def run(candidate: Wire, **overrides: Any) -> Authorization:
        return asyncio.run(
            verify_async(
                method=candidate.method,
                raw_path=candidate.raw_path,
                query_string=candidate.query_string,
                headers=candidate.headers,
                body=candidate.body,
                secret=lookup,
                **overrides,
            )
        )

    assert run(wire) == wire.verify()
    assert asked == [AKID]
    # The secret is looked up only for a request that passed every other check.
    for stale in (wire.signed_at() + 301, wire.signed_at() - 301):
        with pytest.raises(SignatureError, match="Signature"):
            run(wire, now=stale)
    with pytest.raises(SignatureError, match="correct service"):
        run(sign(service="s3"))
    assert asked == [AKID]
    with pytest.raises(SignatureError) as refused:
        run(wire.with_authorization(_scoped(_set(0, "AKIDOTHER"))))
    assert refused.value.code == UNRECOGNIZED_CLIENT and asked == [AKID, "AKIDOTHER"]
    with pytest.raises(SignatureError) as refused:
        run(replace(wire, body=b"{}"))
    assert refused.value.code == INVALID_SIGNATURE


def _scoped(credential_edit: Callable[[list[str]], None]) -> Callable[[str], str]:
    def edit(header: str) -> str:
        head, _, rest = header.partition("Credential=")
        credential, _, tail = rest.partition(",")
        parts = credential.split("/")
        credential_edit(parts)
        return f"{head}Credential={'/'.join(parts)},{tail}"

    return edit


def _signed_headers(value: str) -> Callable[[str], str]:
    def edit(header: str) -> str:
        head, _, rest = header.partition("SignedHeaders=")
        _, _, tail = rest.partition(",")
        return f"{head}SignedHeaders={value},{tail}"

    return edit


def _set(index: int, value: str) -> Callable[[list[str]], None]:
    def edit(parts: list[str]) -> None:
        parts[index] = value

    return edit


def _drop(index: int) -> Callable[[list[str]], None]:
    def edit(parts: list[str]) -> None:
        del parts[index]

    return edit


def _presigned() -> Wire:
    request = AWSRequest("GET", "http://127.0.0.1:8080/runtimes/", headers={})
    SigV4QueryAuth(Credentials(AKID, SECRET), SERVICE, REGION, expires=60).add_auth(request)
    assert request.url is not None
    return _wire("GET", request.url, iter(request.headers.items()), b"")


def _with_sha256(claimed: str) -> Wire:
    return sign(headers={"Content-Type": "application/json", "X-Amz-Content-SHA256": claimed})


SIG = "0" * 64
CRED = f"{AKID}/20240101/{REGION}/{SERVICE}/aws4_request"

# name: (the request, overrides to verify(), the code, a fragment the message must hold)
TAMPERED: dict[str, tuple[Callable[[Wire], Wire], dict[str, Any], str, str]] = {
    "wrong secret": (lambda good: good, {"secret": "not-the-secret"}, INVALID_SIGNATURE, "does not match"),
    "unknown access key": (
        lambda good: good,
        {"secret": {}.get},
        UNRECOGNIZED_CLIENT,
        f"'{AKID}' is not known",
    ),
    "changed body": (
        lambda good: replace(good, body=good.body + b" "),
        {},
        INVALID_SIGNATURE,
        "does not match",
    ),
    "changed path": (
        lambda good: replace(good, raw_path=b"/runtimes/abd/invocations"),
        {},
        INVALID_SIGNATURE,
        "does not match",
    ),
    "path decoded": (
        lambda _: replace(sign(url="http://127.0.0.1:8080/a%2Fb"), raw_path=b"/a/b"),
        {},
        INVALID_SIGNATURE,
        "does not match",
    ),
    "changed query": (
        lambda good: replace(good, query_string=b"a=1"),
        {},
        INVALID_SIGNATURE,
        "does not match",
    ),
    "changed method": (lambda good: replace(good, method="PUT"), {}, INVALID_SIGNATURE, "does not match"),
    "changed signed header": (
        lambda good: good.with_header("x-amzn-bedrock-agentcore-runtime-session-id", "t" * 40),
        {},
        INVALID_SIGNATURE,
        "does not match",
    ),
    "changed host": (
        lambda good: good.with_header("host", "evil:8080"),
        {},
        INVALID_SIGNATURE,
        "does not match",
    ),
    "host not signed": (
        lambda good: good.with_authorization(_signed_headers("content-type;x-amz-date")),
        {},
        INCOMPLETE_SIGNATURE,
        "'host' must be a 'SignedHeader'",
    ),
    "x-amz-date not signed": (
        lambda good: good.with_authorization(_signed_headers("content-type;host")),
        {},
        INCOMPLETE_SIGNATURE,
        "'x-amz-date' must be a 'SignedHeader'",
    ),
    "signed header missing": (
        lambda good: good.with_header("content-type", None),
        {},
        INCOMPLETE_SIGNATURE,
        "'content-type' is in SignedHeaders but not in the request",
    ),
    "missing x-amz-date": (
        lambda good: good.with_header("x-amz-date", None),
        {},
        INCOMPLETE_SIGNATURE,
        "'X-Amz-Date' header",
    ),
    "malformed x-amz-date": (
        lambda good: good.with_header("x-amz-date", "2024-01-01T00:00:00Z"),
        {},
        INCOMPLETE_SIGNATURE,
        "ISO-8601 basic format",
    ),
    "impossible x-amz-date": (
        lambda good: good.with_header("x-amz-date", "20241301T000000Z"),
        {},
        INCOMPLETE_SIGNATURE,
        "not a valid date",
    ),
    "expired": (
        lambda good: good,
        {"now_offset": 301},
        INVALID_SIGNATURE,
        "Signature expired: ",
    ),
    "not yet current": (
        lambda good: good,
        {"now_offset": -301},
        INVALID_SIGNATURE,
        "Signature not yet current: ",
    ),
    "scope date differs from x-amz-date": (
        lambda good: good.with_authorization(_scoped(_set(1, "20000101"))),
        {},
        INVALID_SIGNATURE,
        "Date in Credential scope does not match YYYYMMDD",
    ),
    "wrong service": (
        lambda _: sign(service="s3"),
        {},
        INVALID_SIGNATURE,
        "correct service: 'bedrock-agentcore'",
    ),
    "control-plane endpoint prefix as service": (
        lambda _: sign(service="bedrock-agentcore-control"),
        {},
        INVALID_SIGNATURE,
        "correct service",
    ),
    "bad region": (lambda _: sign(region="local"), {}, INVALID_SIGNATURE, "valid region, not 'local'"),
    "empty region": (
        lambda good: good.with_authorization(_scoped(_set(2, ""))),
        {},
        INVALID_SIGNATURE,
        "valid region, not ''",
    ),
    "other region than the one served": (
        lambda good: good,
        {"region": "us-east-1"},
        INVALID_SIGNATURE,
        f"valid region, not '{REGION}'",
    ),
    "wrong terminator": (
        lambda good: good.with_authorization(_scoped(_set(4, "aws5_request"))),
        {},
        INVALID_SIGNATURE,
        "valid terminator: 'aws4_request', not 'aws5_request'",
    ),
    "empty authorization": (
        lambda good: good.with_header("authorization", ""),
        {},
        INCOMPLETE_SIGNATURE,
        "empty",
    ),
    "algorithm only": (
        lambda good: good.with_header("authorization", "AWS4-HMAC-SHA256"),
        {},
        INCOMPLETE_SIGNATURE,
        "requires 'Credential' parameter. Authorization header requires 'Signature' parameter",
    ),
    "no signature": (
        lambda good: good.with_header(
            "authorization", f"AWS4-HMAC-SHA256 Credential={CRED}, SignedHeaders=host"
        ),
        {},
        INCOMPLETE_SIGNATURE,
        "requires 'Signature' parameter",
    ),
    "missing equal sign": (
        lambda good: good.with_authorization(lambda h: h.replace("Credential=", "Credential ")),
        {},
        INCOMPLETE_SIGNATURE,
        "missing equal-sign",
    ),
    "duplicate parameter": (
        lambda good: good.with_authorization(lambda h: f"{h}, Signature={SIG}"),
        {},
        INCOMPLETE_SIGNATURE,
        "more than one 'Signature'",
    ),
    "unknown parameter": (
        lambda good: good.with_authorization(lambda h: f"{h}, Extra=1"),
        {},
        INCOMPLETE_SIGNATURE,
        "Unknown parameter 'Extra'",
    ),
    "credential with four parts": (
        lambda good: good.with_authorization(_scoped(_drop(3))),
        {},
        INCOMPLETE_SIGNATURE,
        "is malformed",
    ),
    "credential without access key": (
        lambda good: good.with_authorization(_scoped(_set(0, ""))),
        {},
        INCOMPLETE_SIGNATURE,
        "no valid access key id",
    ),
    "uppercase signature": (
        lambda good: good.with_authorization(lambda h: h[:-64] + h[-64:].upper()),
        {},
        INCOMPLETE_SIGNATURE,
        "64 lowercase hexadecimal",
    ),
    "short signature": (
        lambda good: good.with_authorization(lambda h: h[:-1]),
        {},
        INCOMPLETE_SIGNATURE,
        "64 lowercase hexadecimal",
    ),
    "unsorted signed headers": (
        lambda good: good.with_authorization(_signed_headers("x-amz-date;host")),
        {},
        INCOMPLETE_SIGNATURE,
        "must be sorted",
    ),
    "uppercase signed header": (
        lambda good: good.with_authorization(_signed_headers("Host;x-amz-date")),
        {},
        INCOMPLETE_SIGNATURE,
        "lowercase header names",
    ),
    "ECDSA (SigV4a)": (
        lambda good: good.with_authorization(
            lambda h: h.replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256")
        ),
        {},
        INCOMPLETE_SIGNATURE,
        "Unsupported authorization algorithm 'AWS4-ECDSA-P256-SHA256'",
    ),
    "SigV2": (
        lambda good: good.with_header("authorization", f"AWS {AKID}:c2lnbmF0dXJl"),
        {},
        INCOMPLETE_SIGNATURE,
        "Unsupported authorization algorithm 'AWS'",
    ),
    "bearer token": (
        lambda good: good.with_header("authorization", "Bearer abc.def.ghi"),
        {},
        INCOMPLETE_SIGNATURE,
        "only AWS4-HMAC-SHA256",
    ),
    "two authorization headers": (
        lambda good: replace(good, headers=(*good.headers, (b"authorization", b"AWS4-HMAC-SHA256"))),
        {},
        INCOMPLETE_SIGNATURE,
        "more than one 'authorization' header",
    ),
    "no authorization": (
        lambda good: good.with_header("authorization", None),
        {},
        MISSING_AUTHENTICATION_TOKEN,
        "Missing Authentication Token",
    ),
    "session token": (
        lambda _: sign(credentials=Credentials(AKID, SECRET, "session-token")),
        {},
        UNRECOGNIZED_CLIENT,
        "session credentials (X-Amz-Security-Token) are not accepted",
    ),
    "session token in query": (
        lambda good: replace(good, query_string=b"X-Amz-Security-Token=abc"),
        {},
        UNRECOGNIZED_CLIENT,
        "session credentials",
    ),
    "presigned url": (lambda _: _presigned(), {}, INCOMPLETE_SIGNATURE, "only the Authorization header"),
    "content sha256 mismatch": (
        lambda _: _with_sha256(hashlib.sha256(b"another body").hexdigest()),
        {},
        CONTENT_SHA256_MISMATCH,
        "'x-amz-content-sha256' header does not match",
    ),
    "content sha256 mismatch, unsigned header": (
        lambda good: good.with_header("x-amz-content-sha256", hashlib.sha256(b"x").hexdigest()),
        {},
        CONTENT_SHA256_MISMATCH,
        "does not match what was computed",
    ),
    "unsigned payload": (
        lambda _: _with_sha256("UNSIGNED-PAYLOAD"),
        {},
        INCOMPLETE_SIGNATURE,
        "the payload must be signed",
    ),
}

STATUSES = {
    MISSING_AUTHENTICATION_TOKEN: 403,
    INCOMPLETE_SIGNATURE: 400,
    INVALID_SIGNATURE: 403,
    UNRECOGNIZED_CLIENT: 403,
    CONTENT_SHA256_MISMATCH: 400,
}


@pytest.mark.parametrize("case", TAMPERED)
def test_tampered_requests_are_refused(case: str) -> None:
    make, overrides, code, fragment = TAMPERED[case]
    wire = make(sign(headers=dict(BASE)))
    arguments = dict(overrides)
    if "now_offset" in arguments:
        arguments["now"] = wire.signed_at() + arguments.pop("now_offset")
    with pytest.raises(SignatureError) as refused:
        wire.verify(**arguments)
    error = refused.value
    assert (error.code, error.status) == (code, STATUSES[code]), error.message
    assert fragment in error.message
    assert str(error) == f"{code}: {error.message}"


def test_the_unaltered_request_verifies() -> None:
    # The table's base request is good: each refusal above is its one change's doing.
    assert sign(headers=dict(BASE)).verify().signed_headers == (
        "content-type",
        "host",
        "x-amz-date",
        "x-amzn-bedrock-agentcore-runtime-session-id",
    )


def test_parse_authorization() -> None:
    auth = parse_authorization(
        f"AWS4-HMAC-SHA256 Credential={CRED}, SignedHeaders=host;x-amz-date, Signature={SIG}",
        "20240101T120000Z",
    )
    assert auth == Authorization(
        access_key_id=AKID,
        date="20240101",
        region=REGION,
        service=SERVICE,
        terminator="aws4_request",
        signed_headers=("host", "x-amz-date"),
        signature=SIG,
        amz_date="20240101T120000Z",
        request_time=datetime(2024, 1, 1, 12, tzinfo=UTC),
    )
    assert auth.scope == f"20240101/{REGION}/{SERVICE}/aws4_request"
    # Commas alone, as some signers send them, separate the parameters too.
    assert (
        parse_authorization(
            f"AWS4-HMAC-SHA256 Credential={CRED},SignedHeaders=host;x-amz-date,Signature={SIG}",
            "20240101T120000Z",
        )
        == auth
    )


def _garbage(rng: random.Random) -> str:
    alphabet = "AWS4-HMAC-SHA256 Credential=SignedHeaders;Signature,/=\t\x00\xff\u00e9\u2028 0123456789abcdef"
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 120)))


def _mutate(rng: random.Random, text: str) -> str:
    chars = list(text)
    for _ in range(rng.randrange(1, 4)):
        position = rng.randrange(len(chars) + 1)
        action = rng.randrange(3)
        if action == 0 and position < len(chars):
            del chars[position]
        elif action == 1:
            chars.insert(position, chr(rng.randrange(0, 256)))
        elif position < len(chars):
            chars[position] = rng.choice("=,;/ \t")
    return "".join(chars)


def test_fuzzed_requests_only_raise_signature_errors() -> None:
    rng = random.Random(20240101)
    base = sign(headers=dict(BASE))
    good = base.header("authorization")
    for round_ in range(600):
        wire = base
        kind = round_ % 6
        if kind == 0:
            wire = wire.with_header("authorization", _garbage(rng))
        elif kind == 1:
            wire = wire.with_header("authorization", _mutate(rng, good))
        elif kind == 2:
            wire = wire.with_header("x-amz-date", _mutate(rng, wire.header("x-amz-date")))
        elif kind == 3:
            raw = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 60)))
            wire = replace(
                wire, headers=(*wire.headers, (rng.choice([b"authorization", b"x-amz-date"]), raw))
            )
        elif kind == 4:
            raw = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 60)))
            wire = replace(wire, raw_path=b"/" + raw, query_string=raw[::-1])
        else:
            raw = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 60)))
            wire = wire.with_header("x-amz-content-sha256", raw.decode("latin-1"))
        try:
            wire.verify()  # (a mutated separator may leave a header that still verifies)
        except SignatureError as error:
            assert error.status in (400, 403)
