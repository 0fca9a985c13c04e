"""Request building: the OpenAPI style table, and arguments that try to escape where they land."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from gateway.core.errors import ToolExecutionError
from gateway.openapi.compiler import Operation, Param
from gateway.openapi.request import BadArgument, build, serialize_path, serialize_query

BLUE = "blue"
COLORS = ["blue", "black", "brown"]
RGB = {"R": 100, "G": 200, "B": 150}


def p(style: str, explode: bool, location: str = "path") -> Param:
    return Param(name="color", location=location, arg="color", style=style, explode=explode, required=True)


# The style examples of the OpenAPI Specification (3.1.1, "Style Examples"), which follow RFC 6570.
PATH_TABLE = [
    ("simple", False, "blue", "blue,black,brown", "R,100,G,200,B,150"),
    ("simple", True, "blue", "blue,black,brown", "R=100,G=200,B=150"),
    ("label", False, ".blue", ".blue,black,brown", ".R,100,G,200,B,150"),
    ("label", True, ".blue", ".blue.black.brown", ".R=100.G=200.B=150"),
    ("matrix", False, ";color=blue", ";color=blue,black,brown", ";color=R,100,G,200,B,150"),
    ("matrix", True, ";color=blue", ";color=blue;color=black;color=brown", ";R=100;G=200;B=150"),
]
QUERY_TABLE = [
    ("form", False, ["color=blue"], ["color=blue,black,brown"], ["color=R,100,G,200,B,150"]),
    ("form", True, ["color=blue"], ["color=blue", "color=black", "color=brown"], ["R=100", "G=200", "B=150"]),
    ("spaceDelimited", False, None, ["color=blue%20black%20brown"], None),
    ("pipeDelimited", False, None, ["color=blue%7Cblack%7Cbrown"], None),
    ("deepObject", True, None, None, ["color%5BR%5D=100", "color%5BG%5D=200", "color%5BB%5D=150"]),
]


@pytest.mark.parametrize(("style", "explode", "primitive", "array", "obj"), PATH_TABLE)
def test_path_styles_match_the_specification(
    style: str, explode: bool, primitive: str, array: str, obj: str
) -> None:
    assert serialize_path(p(style, explode), BLUE) == primitive
    assert serialize_path(p(style, explode), COLORS) == array
    assert serialize_path(p(style, explode), RGB) == obj


@pytest.mark.parametrize(("style", "explode", "primitive", "array", "obj"), QUERY_TABLE)
def test_query_styles_match_the_specification(
    style: str, explode: bool, primitive: list[str] | None, array: list[str] | None, obj: list[str] | None
) -> None:
    param = p(style, explode, "query")
    for value, expected in ((BLUE, primitive), (COLORS, array), (RGB, obj)):
        if expected is not None:
            assert serialize_query(param, value) == expected


def operation(**kwargs: Any) -> Operation:
    defaults: dict[str, Any] = {
        "tool": "t",
        "method": "GET",
        "path": "/files/{name}",
        "params": (
            Param("name", "path", "name", "simple", False, True),
            Param("q", "query", "q", "form", True, False),
            Param("X-Trace", "header", "trace", "simple", False, False),
            Param("sid", "cookie", "sid", "form", True, False),
        ),
    }
    return Operation(**{**defaults, **kwargs})


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("../admin", "/files/..%2Fadmin"),
        ("..", "/files/%2E%2E"),
        (".", "/files/%2E"),
        ("%2e%2e%2fadmin", "/files/%252e%252e%252fadmin"),
        ("a/b?c#d", "/files/a%2Fb%3Fc%23d"),
        ("line\r\nX-Evil: 1", "/files/line%0D%0AX-Evil%3A%201"),
    ],
)
def test_path_arguments_never_change_the_path(value: str, path: str) -> None:
    assert build(operation(), {"name": value}).path == path


def test_query_values_cannot_add_parameters() -> None:
    request = build(operation(), {"name": "x", "q": "a&admin=true"})
    assert request.path == "/files/x?q=a%26admin%3Dtrue"


@pytest.mark.parametrize("value", ["a\r\nX-Evil: 1", "a\nb", "a\x00b"])
def test_header_values_cannot_add_headers(value: str) -> None:
    with pytest.raises(BadArgument, match="line break or NUL"):
        build(operation(), {"name": "x", "trace": value})


def test_cookie_values_are_encoded() -> None:
    request = build(operation(), {"name": "x", "sid": "a; admin=1"})
    assert ("Cookie", "sid=a%3B%20admin%3D1") in request.headers


def test_missing_required_path_argument() -> None:
    with pytest.raises(BadArgument, match="missing required argument 'name'"):
        build(operation(), {})


def test_json_body_flattened_and_whole() -> None:
    flat = build(
        operation(method="POST", params=(), path="/p", body_media="application/json", body_fields=("a", "b")),
        {"a": 1, "b": [2]},
    )
    assert flat.content == b'{"a":1,"b":[2]}' and ("Content-Type", "application/json") in flat.headers
    whole = build(
        operation(method="POST", params=(), path="/p", body_media="application/json", body_arg="body"),
        {"body": [1, 2]},
    )
    assert whole.content == b"[1,2]"


def test_form_body_uses_form_explode_for_arrays() -> None:
    request = build(
        operation(
            method="POST",
            params=(),
            path="/f",
            body_media="application/x-www-form-urlencoded",
            body_fields=("name", "colors"),
        ),
        {"name": "a b&c", "colors": ["x", "y"]},
    )
    assert request.content == b"name=a%20b%26c&colors=x&colors=y"


def test_multipart_parts_json_and_repeated() -> None:
    request = build(
        operation(
            method="POST",
            params=(),
            path="/u",
            body_media="multipart/form-data",
            body_fields=("file", "meta", "tags"),
            encoding={"file": {"contentType": "text/plain"}},
            file_fields=("file",),
        ),
        {"file": "hello", "meta": {"title": "t"}, "tags": ["a", "b"]},
    )
    assert request.files == [
        ("file", ("file", b"hello", "text/plain")),
        ("meta", (None, b'{"title":"t"}', "application/json")),
        ("tags", (None, b"a", "text/plain")),
        ("tags", (None, b"b", "text/plain")),
    ]


PNG = b"\x89PNG\r\n\x1a\n\x00\xff\xfe"  # not UTF-8: it must travel as bytes


def raw(default: str | None = "image/png", content_type_arg: str | None = None) -> Operation:
    return Operation(
        tool="up",
        method="POST",
        path="/up",
        params=(),
        body_media="image/png",
        body_arg="body",
        raw_body=True,
        content_type_arg=content_type_arg,
        default_content_type=default,
    )


@pytest.mark.parametrize(
    "encoded",
    [
        base64.b64encode(PNG).decode(),
        base64.urlsafe_b64encode(PNG).decode(),
        base64.b64encode(PNG).decode().rstrip("="),
        "\n".join(base64.encodebytes(PNG).decode().split()),  # MIME line breaks
    ],
)
def test_a_raw_body_is_sent_as_its_decoded_bytes(encoded: str) -> None:
    request = build(raw(), {"body": encoded})
    assert request.content == PNG
    assert request.headers == [("Content-Type", "image/png")]


def test_a_raw_body_takes_the_content_type_the_caller_names() -> None:
    op = raw("application/octet-stream", "content_type")
    assert build(op, {"body": "AA=="}).headers == [("Content-Type", "application/octet-stream")]
    named = build(op, {"body": "AA==", "content_type": "application/pdf"})
    assert named.headers == [("Content-Type", "application/pdf")] and named.content == b"\x00"
    with pytest.raises(BadArgument, match="must be the body's media type, such as image/png"):
        build(raw(None, "content_type"), {"body": "AA=="})


@pytest.mark.parametrize("value", ["image/png\r\nX-Injected: 1", "image/png\nX: 1", "png", "image/png\x00"])
def test_a_content_type_argument_cannot_add_a_header(value: str) -> None:
    with pytest.raises(BadArgument):
        build(raw("image/png", "content_type"), {"body": "AA==", "content_type": value})


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("not base64!", "character '!' at position 9 is not base64"),
        ("a", "cannot be 1 more than a multiple of 4"),
        ("AA==AA==", "Excess data after padding"),
        (12, "must be a string"),
    ],
)
def test_bad_base64_is_a_clear_tool_error(value: object, reason: str) -> None:
    with pytest.raises(BadArgument, match="argument 'body'") as err:
        build(raw(), {"body": value})
    assert reason in str(err.value)
    assert isinstance(err.value, ToolExecutionError)  # a tool error the model sees, not a crash


def test_multipart_file_parts_given_as_base64_are_sent_as_their_bytes() -> None:
    op = Operation(
        tool="up",
        method="POST",
        path="/up",
        params=(),
        body_media="multipart/form-data",
        body_fields=("photo", "caption", "pages"),
        file_fields=("photo", "pages"),
        base64_fields=("photo", "pages"),
    )
    pages = [base64.b64encode(b"one").decode(), base64.b64encode(b"\x00two").decode()]
    request = build(op, {"photo": base64.b64encode(PNG).decode(), "caption": "hi", "pages": pages})
    assert request.files == [
        ("photo", ("photo", PNG, "application/octet-stream")),
        ("caption", (None, b"hi", "text/plain")),
        ("pages", ("pages", b"one", "application/octet-stream")),
        ("pages", ("pages", b"\x00two", "application/octet-stream")),
    ]
    with pytest.raises(BadArgument, match="argument 'photo' is not valid base64"):
        build(op, {"photo": "photo.png"})
