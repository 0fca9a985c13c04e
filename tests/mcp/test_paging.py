from __future__ import annotations

import pytest
from mcp.shared.exceptions import MCPError

from gateway.mcp.front import PAGE_SIZE, _page


def test_pages_are_bounded_and_chain_with_next_cursor() -> None:
    items = list(range(PAGE_SIZE * 2 + 5))
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        page = _page(items, cursor, "tools")
        seen += page["tools"]
        pages += 1
        cursor = page.get("nextCursor")
        if cursor is None:
            break
    assert seen == items and pages == 3


@pytest.mark.parametrize("cursor", ["%%%", "bzotMQ==", "eDo1"])
def test_bad_cursors_are_invalid_params(cursor: str) -> None:
    with pytest.raises(MCPError) as err:
        _page([1, 2], cursor, "tools")
    assert err.value.code == -32602
