"""The egress guard: fetches on a user's behalf never reach private or metadata addresses by default."""

from __future__ import annotations

import pytest

from gateway.egress import EgressRefused, check, fetch
from tests.support.servers import serve_app


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/openapi.json",
        "http://localhost:8080/x",
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://[::1]/x",
        "http://10.0.0.8/x",
        "http://192.168.1.1/x",
        "http://0x7f000001/x",  # 127.0.0.1, hex-encoded
        "http://2130706433/x",  # 127.0.0.1, as one decimal number
        "http://[::ffff:127.0.0.1]/x",  # IPv4-mapped IPv6
    ],
)
def test_private_loopback_and_metadata_addresses_are_refused(url: str) -> None:
    with pytest.raises(EgressRefused, match="private or reserved address"):
        check(url, allow=[])


def test_operator_can_allow_a_network_or_a_host() -> None:
    assert str(check("http://127.0.0.1/x", allow=["127.0.0.0/8"])[1]) == "127.0.0.1"
    assert check("http://localhost/x", allow=["localhost"])[0] == "localhost"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x", "http:///nohost"])
def test_only_http_urls_with_a_host(url: str) -> None:
    with pytest.raises(EgressRefused, match="only http"):
        check(url, allow=[])


def test_redirects_are_checked_again() -> None:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, RedirectResponse
    from starlette.routing import Route

    async def hop(request: object) -> RedirectResponse:
        return RedirectResponse("http://169.254.169.254/latest/meta-data/", 302)

    async def doc(request: object) -> JSONResponse:
        return JSONResponse({"openapi": "3.1.0"})

    app = Starlette(routes=[Route("/hop", hop), Route("/doc", doc)])
    with serve_app(app) as base:
        assert fetch(f"{base}/doc", allow=["127.0.0.1"]) == b'{"openapi":"3.1.0"}'
        with pytest.raises(EgressRefused, match=r"169\.254\.169\.254"):
            fetch(f"{base}/hop", allow=["127.0.0.1"])
