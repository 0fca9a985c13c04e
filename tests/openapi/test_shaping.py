"""Uniform paging and trimmed results (gateway/openapi/shaping.py) over a compiled document."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from gateway.config import FailureSpec, PagingSpec, ShapeSpec
from gateway.core.errors import ConfigError
from gateway.openapi.compiler import Compiled, Compiler
from gateway.openapi.document import open_document
from gateway.openapi.request import BadArgument
from gateway.openapi.shaping import (
    compile_shape,
    link_next,
    lookup,
    page_request,
    project,
    shape_result,
    shaped_tool,
    tree,
)

DOC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "t", "version": "1"},
    "paths": {
        "/items": {
            "get": {
                "operationId": "list",
                "parameters": [
                    {"name": "page", "in": "query", "schema": {"type": "integer"}},
                    {"name": "per_page", "in": "query", "schema": {"type": "integer", "maximum": 100}},
                    {"name": "token", "in": "query", "schema": {"type": "string"}},
                    {"name": "q", "in": "query", "required": True, "schema": {"type": "string"}},
                ],
                "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {}}}}},
            }
        },
        "/items/more/{locator}": {
            "get": {
                "operationId": "more",
                "parameters": [
                    {"name": "locator", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {"200": {"description": "ok"}},
            }
        },
        "/admin": {"delete": {"operationId": "wipe", "responses": {"204": {"description": "gone"}}}},
    },
}


GITHUB_STYLE = {
    "style": "token",
    "next": "header:Link",
    "next_param": "page",
    "cursor": "page",
    "limit": "per_page",
}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Compiled:
    return Compiler(
        open_document(DOC, base_dir=Path(tmp_path_factory.mktemp("doc")), fetch_url=None)
    ).compile()


def shape(compiled: Compiled, paging: dict[str, Any], items: str = "data", **kw: Any) -> Any:
    spec = ShapeSpec(items=items, paging=PagingSpec(**paging), **kw)
    return compile_shape("list", spec, compiled.operations, "/api/v2")


def test_lookup_reads_dotted_paths_and_keys_that_hold_dots() -> None:
    body = {"a": {"b": [1]}, "@odata.nextLink": "u", "x": None}
    assert lookup(body, "a.b") == [1]
    assert lookup(body, "@odata.nextLink") == "u"
    assert lookup(body, "") is body
    assert lookup(body, "a.c.d") is None and lookup(body, "x.y") is None


def test_projection_keeps_the_named_fields_of_every_item() -> None:
    items = [
        {"id": 1, "user": {"login": "ada", "avatar": "..."}, "labels": [{"name": "bug", "color": "f00"}]}
    ]
    assert project(items, tree(["id", "user.login", "labels.name"])) == [
        {"id": 1, "user": {"login": "ada"}, "labels": [{"name": "bug"}]}
    ]
    assert project(items, tree(["*"])) == items


def test_link_header_next() -> None:
    header = '<https://api/x?page=3>; rel="next", <https://api/x?page=9>; rel="last"'
    assert link_next(header) == "https://api/x?page=3"
    assert link_next('<https://api/x?page=1>; rel="prev"') is None


def test_the_tool_takes_cursor_and_limit_instead_of_the_native_parameters(compiled: Compiled) -> None:
    s = shape(compiled, GITHUB_STYLE)
    tool = shaped_tool(next(t for t in compiled.tools if t.name == "list"), s)
    props = tool.input_schema["properties"]
    assert "page" not in props and "per_page" not in props
    assert props["cursor"]["type"] == "string" and props["limit"]["maximum"] == 100
    assert tool.output_schema is None


def test_token_from_a_link_header_goes_back_in_its_parameter(compiled: Compiled) -> None:
    s = shape(compiled, {**GITHUB_STYLE, "max_limit": 50})
    args, follow = page_request(s, {"q": "x", "limit": 500})
    assert follow is None and args == {"q": "x", "per_page": 50}
    result = shape_result(
        s,
        None,
        {"data": [{"id": 1}]},
        {"link": '<https://h/items?page=2&q=x>; rel="next"'},
        args,
        "https://h",
    )
    assert result is not None and result.structured == {"items": [{"id": 1}], "next_cursor": "2"}
    args, _ = page_request(s, {"q": "x", "cursor": "2"})
    assert args == {"q": "x", "page": 2}
    with pytest.raises(BadArgument, match="next_cursor"):
        page_request(s, {"q": "x", "cursor": "two"})
    last = shape_result(s, None, {"data": []}, {}, args, "https://h")
    assert last is not None and last.structured == {"items": []}


def test_offset_and_page_styles_stop_at_the_end(compiled: Compiled) -> None:
    s = shape(compiled, {"style": "offset", "cursor": "page", "total": "total", "limit": "per_page"})
    first = shape_result(s, None, {"data": [1, 2], "total": 3}, {}, {}, "https://h")
    assert first is not None and first.structured["next_cursor"] == "2"
    end = shape_result(s, None, {"data": [3], "total": 3}, {}, {"page": 2}, "https://h")
    assert end is not None and "next_cursor" not in end.structured
    p = shape(compiled, {"style": "page", "cursor": "page", "total": "pages"})
    assert shape_result(p, None, {"data": [1], "pages": 2}, {}, {}, "h").structured["next_cursor"] == "2"  # type: ignore[union-attr]
    assert (
        "next_cursor" not in shape_result(p, None, {"data": [1], "pages": 2}, {}, {"page": 2}, "h").structured
    )  # type: ignore[union-attr]


def test_a_url_cursor_names_only_the_operation_or_its_follow_ups(compiled: Compiled) -> None:
    s = shape(compiled, {"style": "url", "next": "next", "follow": ["more"]}, items="records")
    body = {"records": [{"Id": 1}], "next": "/services/api/v2/items/more/01g-2000"}
    result = shape_result(s, None, body, {}, {}, "https://h")
    assert result is not None
    cursor = result.structured["next_cursor"]
    _, follow = page_request(s, {"cursor": cursor})
    assert follow == "/api/v2/items/more/01g-2000"  # under the target's base path, whatever the URL's prefix
    forged = base64.urlsafe_b64encode(b"/admin").decode().rstrip("=")
    with pytest.raises(BadArgument, match="not one this tool gave"):
        page_request(s, {"cursor": forged})
    with pytest.raises(BadArgument):
        page_request(s, {"cursor": "%%%"})
    elsewhere = shape_result(s, None, {**body, "next": "https://evil.example/items"}, {}, {}, "https://h")
    assert elsewhere is not None and "next_cursor" not in elsewhere.structured


def test_a_failure_reported_in_a_2xx_answer_is_an_error() -> None:
    spec = FailureSpec(field="ok", equals=False, message="error")
    bad = shape_result(None, spec, {"ok": False, "error": "channel_not_found"}, {}, {}, "h")
    assert bad is not None and bad.is_error and "channel_not_found" in bad.content[0]["text"]
    assert shape_result(None, spec, {"ok": True}, {}, {}, "h") is None


def test_a_shape_naming_what_the_document_lacks_is_refused(compiled: Compiled) -> None:
    with pytest.raises(ConfigError, match="does not have"):
        compile_shape("nope", ShapeSpec(), compiled.operations, "")
    with pytest.raises(ConfigError, match="no parameter 'cursor'"):
        shape(compiled, {"style": "token", "next": "n", "cursor": "cursor"})
    with pytest.raises(ValueError, match="needs `next`"):
        PagingSpec(style="token", cursor="page")


@pytest.mark.parametrize(
    "made_up",
    [
        "/api/v2/items/more/x HTTP/1.1\r\nHost: a\r\n\r\nDELETE /admin",
        "/items/more/a b",
        "/items/more/..",
        "/items/more/a%2F..%2Fadmin",
        "/items/more/ok?x=1\r\nEvil: 1",
        "/items/more/%2e%2e",
        "/items/more/.%2E",
        "/items/more/..;x",
    ],
)
def test_a_made_up_url_cursor_cannot_become_another_request(compiled: Compiled, made_up: str) -> None:
    s = shape(compiled, {"style": "url", "next": "next", "follow": ["more"]}, items="records")
    cursor = base64.urlsafe_b64encode(made_up.encode()).decode().rstrip("=")
    with pytest.raises(BadArgument, match="not one this tool gave"):
        page_request(s, {"cursor": cursor})


def test_a_cursor_the_tool_gave_is_always_taken_back(compiled: Compiled) -> None:
    s = shape(compiled, {"style": "url", "next": "next", "follow": ["more"]}, items="records")
    body = {"records": [], "next": "/api/v2/items/more/abc?page[after]=x|y&filter={a}"}
    result = shape_result(s, None, body, {}, {}, "https://h")
    assert result is not None
    _, follow = page_request(s, {"cursor": result.structured["next_cursor"]})
    assert follow == "/api/v2/items/more/abc?page[after]=x|y&filter={a}"
