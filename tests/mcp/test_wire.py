"""The MCP endpoint's wire checks (gateway.mcp.wire), message by message."""

from __future__ import annotations

import pytest

from gateway.mcp.wire import Checked, Refusal, check_headers, check_message


def refused(body: bytes) -> Refusal:
    checked = check_message(body)
    assert isinstance(checked, Refusal), checked
    return checked


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"jsonrpc":"1.0","id":1,"method":"tools/list"}', '"jsonrpc" must be "2.0"'),
        (b'{"id":1,"method":"tools/list"}', '"jsonrpc" must be "2.0"'),
        (b'{"jsonrpc":2.0,"id":1,"method":"tools/list"}', '"jsonrpc" must be "2.0"'),
        (b'{"jsonrpc":"2.0","id":1}', 'needs a "method"'),
        (b'{"jsonrpc":"2.0","id":1,"method":7}', '"method" must be a non-empty string, not an integer'),
        (b'{"jsonrpc":"2.0","id":1,"method":null}', '"method" must be a non-empty string, not null'),
        (b'{"jsonrpc":"2.0","id":1,"method":""}', '"method" must be a non-empty string'),
        (b'[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]', "batches are not supported"),
        (b"[]", "batches are not supported"),
        (b"7", "not an integer"),
        (b"-1.5", "not a number written with a fraction"),
        (b'"tools/list"', "not a string"),
        (b"null", "not null"),
        (b"true", "not a boolean"),
        (b"{}", '"jsonrpc" must be "2.0"'),
        (b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":7}', '"params" must be an object'),
        (b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":null}', '"params" must be an object'),
        (b'{"jsonrpc":"2.0","result":{}}', 'a response needs the "id"'),
        (b'{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}}', "not both"),
        (b'{"jsonrpc":"2.0","id":1,"error":{"code":"1","message":"x"}}', 'integer "code"'),
    ],
)
def test_a_message_that_is_not_json_rpc_is_an_invalid_request_in_our_words(body: bytes, words: str) -> None:
    refusal = refused(body)
    assert (refusal.status, refusal.code) == (400, -32600)
    assert refusal.message.startswith("Invalid Request: ")
    assert words in refusal.message
    assert "validation error" not in refusal.message.lower()  # not pydantic's text


@pytest.mark.parametrize(
    ("rid", "kind"),
    [
        (b'{"a":1}', "an object"),
        (b"[1]", "an array"),
        (b"true", "a boolean"),
        (b"false", "a boolean"),
        (b"null", "null"),
        (b"NaN", "NaN"),
        (b"1.5", "a fraction"),
        (b"1.0", "a fraction"),
        (b"1e3", "a fraction or exponent"),
    ],
)
def test_a_request_whose_id_is_not_an_id_is_refused_not_taken_as_a_notification(
    rid: bytes, kind: str
) -> None:
    for method in (b"tools/list", b"notifications/initialized"):
        refusal = refused(b'{"jsonrpc":"2.0","id":' + rid + b',"method":"' + method + b'"}')
        assert (refusal.code, refusal.id) == (-32600, None)
        assert '"id" must be a string or an integer' in refusal.message and kind in refusal.message


@pytest.mark.parametrize("rid", [b"1", b'"abc"', b"0", b"-7", b"123456789012345678901234567890"])
def test_string_and_integer_ids_pass_exactly(rid: bytes) -> None:
    checked = check_message(b'{"jsonrpc":"2.0","id":' + rid + b',"method":"tools/list","params":{}}')
    assert checked == Checked("tools/list")
    # A refusal for the same request echoes the id, as read (integers past 64 bits included).
    bad = refused(b'{"jsonrpc":"2.0","id":' + rid + b',"method":"tools/list","params":1}')
    assert str(bad.id) == rid.decode().strip('"')


@pytest.mark.parametrize(
    ("method", "field", "value"),
    [
        ("notifications/cancelled", "requestId", b'{"a":1}'),
        ("notifications/cancelled", "requestId", b"[1]"),
        ("notifications/cancelled", "requestId", b"true"),
        ("notifications/cancelled", "requestId", b"null"),
        ("notifications/cancelled", "requestId", b"2.5"),
        ("notifications/progress", "progressToken", b'{"a":1}'),
    ],
)
def test_a_notification_naming_a_request_by_a_bad_id_is_invalid_params(
    method: str, field: str, value: bytes
) -> None:
    body = b'{"jsonrpc":"2.0","method":"%s","params":{"%s":%s}}' % (method.encode(), field.encode(), value)
    refusal = refused(body)
    assert (refusal.status, refusal.code) == (400, -32602)
    assert f"params.{field} must be a string or an integer" in refusal.message


def test_params_as_an_array_are_invalid_params() -> None:
    refusal = refused(b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":["x"]}')
    assert (refusal.code, refusal.id) == (-32602, 3)
    assert "named parameters" in refusal.message


@pytest.mark.parametrize(
    "body",
    [b"{", b"\xff\xfe", b"", b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"x":Infinity}}'],
)
def test_a_body_that_is_not_json_is_a_parse_error(body: bytes) -> None:
    refusal = refused(body)
    assert (refusal.status, refusal.code) == (400, -32700)


@pytest.mark.parametrize(
    "body",
    [
        b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}',
        b'{"jsonrpc":"2.0","method":"notifications/initialized"}',
        b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"r1","reason":"x"}}',
        b'{"jsonrpc":"2.0","id":"s1","result":{"action":"accept"}}',
        b'{"jsonrpc":"2.0","id":2,"error":{"code":-1,"message":"no"}}',
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"n":1e400}}}',
    ],
)
def test_well_formed_messages_pass(body: bytes) -> None:
    assert isinstance(check_message(body), Checked)


@pytest.mark.parametrize(
    "origin",
    [
        "http://127.0.0.1:1@evil.example",
        "http://127.0.0.1:8080@evil.example:8080",
        "http://user@127.0.0.1:8080",
        "http://127.0.0.1:8080/path",
        "http://127.0.0.1:8080?x",
        "http://127.0.0.1:8080#x",
        "http://127.0.0.1:8080.evil.example",
        "http://127.0.0.1:99999",
        "http://127.0.0.1:",
        "http://127.0.0.1:80\\@evil.example",
        "javascript://127.0.0.1:80",
        "http://",
    ],
)
def test_an_origin_that_is_not_a_plain_origin_is_refused(origin: str) -> None:
    refusal = check_headers([(b"origin", origin.encode())])
    assert refusal is not None and refusal.status == 403 and "Invalid Origin header" in refusal.message


@pytest.mark.parametrize("host", ["127.0.0.1:1@evil.example", "127.0.0.1:abc", "127.0.0.1:8080/x", "a b"])
def test_a_host_that_is_not_a_plain_authority_is_refused(host: str) -> None:
    refusal = check_headers([(b"host", host.encode())])
    assert refusal is not None and refusal.status == 421


@pytest.mark.parametrize(
    "headers",
    [
        [(b"origin", b"http://127.0.0.1:8080"), (b"host", b"127.0.0.1:8080")],
        [(b"origin", b"https://gw.example.com"), (b"host", b"gw.example.com")],
        [(b"origin", b"http://[::1]:8080"), (b"host", b"[::1]:8080")],
        [(b"origin", b"null")],
        [],
    ],
)
def test_plain_origins_and_hosts_are_left_to_the_allow_list(headers: list[tuple[bytes, bytes]]) -> None:
    assert check_headers(headers) is None
