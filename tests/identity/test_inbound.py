"""JwtVerifier against a real OIDC issuer on loopback: what passes, and every refusal."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx2
import orjson
import pytest

from identity.inbound import (
    ApiKeyVerifier,
    ClaimRule,
    InsufficientScope,
    JwtVerifier,
    Refused,
    _issuer_of,
    new_key,
)
from tests.fixtures.oidc_server import Issuer

pytestmark = pytest.mark.anyio
AUD = "http://127.0.0.1:8080/mcp"


def verifier(issuer: Issuer, **options: Any) -> JwtVerifier:
    return JwtVerifier(
        audiences=[AUD], discovery_url=f"{issuer.url}/.well-known/openid-configuration", **options
    )


def claims(issuer: Issuer, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": issuer.url,
        "sub": "alice",
        "aud": AUD,
        "azp": "agent",
        "scope": "tools:call tools:list",
        "groups": ["eng", "oncall"],
        "iat": now,
        "exp": now + 300,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def unsigned(payload: dict[str, Any], alg: str = "none") -> str:
    def b64(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()

    return f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(payload)}."


async def test_a_good_token_becomes_a_caller(issuer: Issuer) -> None:
    v = verifier(
        issuer, scopes=["tools:call"], clients=["agent"], claim_rules=[ClaimRule("groups", contains="eng")]
    )
    caller = await v.verify(issuer.sign(claims(issuer)))
    assert (caller.tenant, caller.subject, caller.client_id) == ("default", "alice", "agent")
    assert caller.scopes == {"tools:call", "tools:list"}
    await v.aclose()


async def test_a_token_from_the_token_endpoint_verifies(issuer: Issuer) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            f"{issuer.url}/token",
            data={"grant_type": "client_credentials", "resource": AUD, "scope": "tools:call"},
            auth=("agent", "agent-secret"),
        )
    token = response.json()["access_token"]
    v = verifier(issuer)
    caller = await v.verify(token)
    assert caller.subject == "client:agent" and caller.client_id == "agent"
    await v.aclose()


REFUSALS: list[tuple[str, Any, dict[str, Any], type[Refused], str]] = [
    # (case, token maker, verifier options, error, words in the message)
    ("alg none", lambda i: unsigned(claims(i)), {}, Refused, "signed with 'none' are refused"),
    ("HMAC", lambda i: unsigned(claims(i), "HS256") + "c2ln", {}, Refused, "signed with 'HS256' are refused"),
    ("expired", lambda i: i.sign(claims(i, exp=int(time.time()) - 600)), {}, Refused, "expired"),
    ("no expiry", lambda i: i.sign(claims(i, exp=None)), {}, Refused, "no expiry"),
    ("not yet valid", lambda i: i.sign(claims(i, nbf=int(time.time()) + 600)), {}, Refused, "not valid yet"),
    (
        "wrong audience",
        lambda i: i.sign(claims(i, aud="https://other.example/mcp")),
        {},
        Refused,
        "not for this",
    ),
    ("no audience", lambda i: i.sign(claims(i, aud=None)), {}, Refused, "no audience"),
    ("wrong issuer", lambda i: i.sign(claims(i, iss="https://evil.example")), {}, Refused, "issuer"),
    ("client", lambda i: i.sign(claims(i, azp="other")), {"clients": ["agent"]}, Refused, "client 'other'"),
    ("scope", lambda i: i.sign(claims(i)), {"scopes": ["admin"]}, InsufficientScope, "lacks scope admin"),
    (
        "claim rule",
        lambda i: i.sign(claims(i)),
        {"claim_rules": [ClaimRule("groups", contains_any=("sre", "security"))]},
        InsufficientScope,
        "groups contains any of",
    ),
    (
        "claim equals",
        lambda i: i.sign(claims(i)),
        {"claim_rules": [ClaimRule("azp", equals="ci")]},
        InsufficientScope,
        "azp == 'ci'",
    ),
    ("no subject", lambda i: i.sign(claims(i, sub=None)), {}, Refused, "no subject"),
    ("garbage", lambda i: "not-a-jwt", {}, Refused, "not a JWT"),
    ("bad signature", lambda i: i.sign(claims(i))[:-6] + "AAAAAA", {}, Refused, "signature"),
    ("tenant claim", lambda i: i.sign(claims(i)), {"tenant_claim": "org"}, Refused, "no tenant claim 'org'"),
]


@pytest.mark.parametrize(
    ("case", "make", "options", "error", "words"), REFUSALS, ids=[r[0] for r in REFUSALS]
)
async def test_refusals(
    issuer: Issuer, case: str, make: Any, options: dict[str, Any], error: type, words: str
) -> None:
    v = verifier(issuer, **options)
    with pytest.raises(error) as caught:
        await v.verify(make(issuer))
    assert type(caught.value) is error
    assert words in caught.value.description
    await v.aclose()


@pytest.mark.parametrize("named", ["https://idp.example.com", "", None])
async def test_a_discovery_document_naming_another_issuer_is_refused(
    issuer: Issuer, named: str | None
) -> None:
    issuer.advertised = named if named is not None else f"{issuer.url}/other"
    v = verifier(issuer)
    try:
        with pytest.raises(Refused, match=r"names issuer .* not "):
            await v.verify(issuer.sign(claims(issuer)))
    finally:
        issuer.advertised = None
        await v.aclose()
    # RFC 8414's form of the URL (the issuer's path after the well-known part) is understood too.
    rfc8414 = JwtVerifier(
        audiences=[AUD], discovery_url="https://idp.example.com/.well-known/oauth-authorization-server/t1"
    )
    assert rfc8414.discovery_url and _issuer_of(rfc8414.discovery_url) == "https://idp.example.com/t1"
    await rfc8414.aclose()


async def test_key_rotation_is_followed_once(issuer: Issuer) -> None:
    v = verifier(issuer, refetch_seconds=0)
    await v.verify(issuer.sign(claims(issuer)))
    await v.verify(issuer.sign(claims(issuer)))
    assert v.fetches == 1  # cached
    issuer.rotate()
    caller = await v.verify(issuer.sign(claims(issuer)))  # a new kid: the JWKS is fetched again
    assert caller.subject == "alice" and v.fetches == 2
    await v.aclose()


def test_symmetric_algorithms_cannot_be_configured() -> None:
    with pytest.raises(ValueError, match="only asymmetric"):
        JwtVerifier(audiences=[AUD], jwks_url="http://x/jwks", algorithms=["HS256"])


async def test_api_keys() -> None:
    key_id, key, digest = new_key("sb_key_")
    records = {key_id: {"hash": digest, "tenant": "t1", "subject": "ci-bot", "scopes": ["tools:call"]}}

    async def lookup(kid: str) -> dict[str, Any] | None:
        return records.get(kid)

    v = ApiKeyVerifier(lookup, "sb_key_", scopes=["tools:call"])
    caller = await v.verify(key)
    assert (caller.tenant, caller.subject) == ("t1", "ci-bot")
    with pytest.raises(Refused, match="unknown or revoked"):
        await v.verify(key[:-2] + "xx")
    with pytest.raises(Refused, match="not an API key"):
        await v.verify("sk-something")
    records.clear()
    with pytest.raises(Refused, match="unknown or revoked"):
        await v.verify(key)


async def test_an_unreachable_key_endpoint_fails_closed(issuer: Issuer) -> None:
    """SECURITY: key endpoint unreachable -> refused, never let through unverified."""
    import socket

    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    for options in (
        {"discovery_url": f"http://127.0.0.1:{closed}/.well-known/openid-configuration"},
        {"jwks_url": f"http://127.0.0.1:{closed}/jwks", "issuers": [issuer.url]},
    ):
        v = JwtVerifier(audiences=[AUD], **options)  # type: ignore[arg-type]
        with pytest.raises(Refused) as caught:
            await v.verify(issuer.sign(claims(issuer)))
        assert "cannot check the token" in caught.value.description
        await v.aclose()
