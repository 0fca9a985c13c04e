"""Documents by URL go through the egress guard; relative references resolve against the URL."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from gateway.config import OpenApiTarget
from gateway.core.errors import ConfigError
from gateway.core.types import CallContext
from gateway.providers.openapi import OpenApiProvider
from tests.support.servers import serve_app

pytestmark = pytest.mark.anyio
SPECS = Path(__file__).resolve().parents[2] / "specs"


async def test_a_document_by_url_with_relative_file_refs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_EGRESS_ALLOW", '["127.0.0.1"]')
    monkeypatch.setenv("KEY", "k")
    with serve_app(Starlette(routes=[Mount("/specs", StaticFiles(directory=SPECS))])) as base:
        target = OpenApiTarget.model_validate(
            {
                "name": "s",
                "kind": "openapi",
                "spec": f"{base}/specs/styles.yaml",
                "base_url": "http://127.0.0.1:9",
                "credentials": {"apiKey": {"env": "KEY"}},
            }
        )
        async with OpenApiProvider(target) as provider:
            tools = {t.name: t for t in await provider.list_tools(CallContext())}
    assert "Money" in tools["pay"].input_schema["$defs"]  # from common/components.yaml, fetched by URL


async def test_a_private_url_is_refused_unless_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SWITCHBOARD_EGRESS_ALLOW", raising=False)
    with serve_app(Starlette(routes=[Mount("/specs", StaticFiles(directory=SPECS))])) as base:
        target = OpenApiTarget.model_validate(
            {"name": "s", "kind": "openapi", "spec": f"{base}/specs/items.yaml"}
        )
        with pytest.raises(
            ConfigError, match="private or reserved address; allow it with SWITCHBOARD_EGRESS_ALLOW"
        ):
            async with OpenApiProvider(target):
                pass
