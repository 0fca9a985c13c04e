from __future__ import annotations

import pytest

from gateway.app import mcp_gateway


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
    assert mcp_gateway(path) == gateway
