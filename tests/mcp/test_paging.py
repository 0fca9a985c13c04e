from __future__ import annotations

import pytest
from mcp.shared.exceptions import MCPError

from gateway.mcp.forms import PAGE_SIZE, page_of


def test_pages_are_bounded_and_chain_with_next_cursor() -> None:
    items = list(range(PAGE_SIZE * 2 + 5))
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        page = page_of(items, cursor, "tools")
        seen += page["tools"]
        pages += 1
        cursor = page.get("nextCursor")
        if cursor is None:
            break
    assert seen == items and pages == 3


@pytest.mark.parametrize("cursor", ["%%%", "bzotMQ==", "eDo1"])
def test_bad_cursors_are_invalid_params(cursor: str) -> None:
    with pytest.raises(MCPError) as err:
        page_of([1, 2], cursor, "tools")
    assert err.value.code == -32602
