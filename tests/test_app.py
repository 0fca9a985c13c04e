from __future__ import annotations

import pytest

from gateway.system import mcp_endpoint


@pytest.mark.parametrize(
    ("path", "gateway"),
    [
        ("/mcp", "default"),
        ("/gateways/ops/mcp", "ops"),
        ("/gateways//mcp", None),
        ("/gateways/a/b/mcp", None),
        ("/gateways/ops/mcp/", None),
        ("/admin/v1/gateways", None),
        ("/mcpx", None),
    ],
)
def test_mcp_paths(path: str, gateway: str | None) -> None:
    assert (mcp_endpoint(path) or (None, None))[1] == gateway


@pytest.mark.parametrize(
    ("path", "endpoint"),
    [
        ("/mcp", ("default", "default")),
        ("/gateways/ops/mcp", ("default", "ops")),
        ("/tenants/beta/gateways/ops/mcp", ("beta", "ops")),
        ("/tenants/beta/mcp", None),
        ("/tenants//gateways/ops/mcp", None),
        ("/tenants/beta", None),
    ],
)
def test_tenant_paths(path: str, endpoint: tuple[str, str] | None) -> None:
    assert mcp_endpoint(path) == endpoint
