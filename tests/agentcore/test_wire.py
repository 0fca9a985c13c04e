"""The model-driven AgentCore wire (gateway/agentcore/_wire.py): every operation of both botocore
models, round-tripped through a real botocore client whose requests are caught before they are
sent (no network), and a table of bad requests."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

import botocore.session
import pytest
from botocore import xform_name
from botocore.awsrequest import AWSPreparedRequest, AWSResponse, HeadersDict
from botocore.config import Config
from botocore.eventstream import EventStream, EventStreamBuffer
from botocore.exceptions import ClientError, EventStreamError
from botocore.model import OperationModel, ServiceModel
from botocore.parsers import create_parser
from botocore.response import StreamingBody
from botocore.serialize import create_serializer

from gateway.agentcore._examples import example_input, example_output, example_string
from gateway.agentcore._shapes import compile_pattern, unsupported_patterns
from gateway.agentcore._wire import (
    Service,
    WireError,
    encode_error_event,
    encode_event,
    error_response,
    parse_input,
    serialize_error,
    serialize_output,
)

MOUNTS = {"bedrock-agentcore": "/aws/agentcore", "bedrock-agentcore-control": "/aws/agentcore-control"}
SERVICES = {name: Service.load(name) for name in MOUNTS}
OPERATIONS = [(s, op) for s, service in SERVICES.items() for op in service.model.operation_names]
Answer = tuple[int, list[tuple[str, str]], bytes]


def _shape(shape: Any) -> Any:
    assert shape is not None
    return shape


class _Raw:
    """The raw body of a canned response, given out in small chunks (as a socket would)."""

    def __init__(self, body: bytes) -> None:
        self._body = io.BytesIO(body)

    def stream(self, **_: Any) -> Iterator[bytes]:
        while chunk := self._body.read(7):
            yield chunk

    def read(self, amt: int | None = None) -> bytes:
        return self._body.read(amt)

    def close(self) -> None:
        pass


class _Wire:
    """A botocore client of one service whose requests are caught and answered with `answer`."""

    def __init__(self, service: str) -> None:
        self.prefix = MOUNTS[service]
        self.client = botocore.session.get_session().create_client(
            service,
            region_name="us-east-1",
            endpoint_url=f"http://127.0.0.1:1{self.prefix}",
            aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key="secret",
            config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
        )
        self.client.meta.events.register("before-send", cast(Any, self._send))
        self.request: AWSPreparedRequest | None = None
        self.answer: Answer = (200, [], b"")

    def _send(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        self.request = request
        status, headers, body = self.answer
        return AWSResponse(request.url, status, cast(Any, headers), _Raw(body))

    def call(self, operation: str, params: dict[str, Any], answer: Answer) -> dict[str, Any]:
        self.answer = answer
        result: dict[str, Any] = getattr(self.client, xform_name(operation))(**params)
        return result

    def sent(self) -> tuple[str, str, list[tuple[str, str]], dict[str, str], bytes]:
        """The caught request as a server sees it: method, path after the mount, query pairs,
        headers and body."""
        assert self.request is not None
        url = urlsplit(self.request.url)
        assert url.path.startswith(self.prefix + "/"), url.path
        body: Any = self.request.body
        if hasattr(body, "read"):
            body = body.read()
        raw = body.encode() if isinstance(body, str) else bytes(body or b"")
        headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in self.request.headers.items()}
        query = parse_qsl(url.query, keep_blank_values=True)
        return self.request.method, url.path[len(self.prefix) :], query, headers, raw


@pytest.fixture(scope="module")
def wires() -> dict[str, _Wire]:
    return {name: _Wire(name) for name in MOUNTS}


def _server(service: str, wire: _Wire) -> dict[str, Any]:
    method, path, query, headers, body = wire.sent()
    found = SERVICES[service].match(method, path, query)
    assert found is not None, f"{method} {path} matches no operation"
    operation, labels = found
    return {"operation": operation.name, "params": parse_input(operation, labels, query, headers, body)}


def _what_boto_adds(
    operation: OperationModel, parsed: dict[str, Any], sent: dict[str, Any]
) -> dict[str, Any]:
    """Drop what botocore adds on its own: an idempotency token it generated, the Content-Type it
    set for a JSON body (a member when the operation models that header)."""
    out = dict(parsed)
    for name, member in _shape(operation.input_shape).members.items():
        if name in sent or name not in out:
            continue
        header = str(member.serialization.get("name", "")).lower()
        if member.metadata.get("idempotencyToken") or (
            header == "content-type" and out[name] == "application/json"
        ):
            del out[name]
    return out


@pytest.mark.parametrize("complete", [False, True], ids=["minimal", "complete"])
@pytest.mark.parametrize(("service", "name"), OPERATIONS)
def test_input_round_trips_through_botocore(
    wires: dict[str, _Wire], service: str, name: str, complete: bool
) -> None:
    operation = SERVICES[service].operation(name)
    params = example_input(operation, complete=complete)
    wire = wires[service]
    wire.call(name, params, serialize_output(operation, example_output(operation)))
    got = _server(service, wire)
    assert got["operation"] == name
    assert _what_boto_adds(operation, got["params"], params) == params


def _plain(
    operation: OperationModel, result: dict[str, Any], output: dict[str, Any], status: int
) -> dict[str, Any]:
    """A parsed boto3 result in the form of a handler's output: streams read, and the members
    botocore always fills (the status code, an absent structure payload as {}) as they are."""
    result = dict(result)
    del result["ResponseMetadata"]
    shape = _shape(operation.output_shape)
    for name, member in shape.members.items():
        value = result.get(name)
        if isinstance(value, StreamingBody):
            result[name] = value.read()
            if result[name] == b"" and name not in output:
                del result[name]
        elif isinstance(value, EventStream):
            assert list(value) == []
            del result[name]
        elif member.serialization.get("location") == "statusCode" and name not in output:
            assert value == status
            del result[name]
        elif value == {} and name == shape.serialization.get("payload") and name not in output:
            del result[name]
    return result


@pytest.mark.parametrize("complete", [False, True], ids=["minimal", "complete"])
@pytest.mark.parametrize(("service", "name"), OPERATIONS)
def test_output_round_trips_through_botocore(
    wires: dict[str, _Wire], service: str, name: str, complete: bool
) -> None:
    operation = SERVICES[service].operation(name)
    output = example_output(operation, complete=complete)
    status, headers, body = serialize_output(operation, output)
    codes = [
        output[n]
        for n, m in _shape(operation.output_shape).members.items()
        if m.serialization.get("location") == "statusCode" and n in output
    ]
    assert status == (codes[0] if codes else operation.http.get("responseCode", 200))
    result = wires[service].call(name, example_input(operation), (status, headers, body))
    assert result["ResponseMetadata"]["HTTPStatusCode"] == status
    assert _plain(operation, result, output, status) == output


def test_botocore_keeps_the_endpoint_path(wires: dict[str, _Wire]) -> None:
    wire = wires["bedrock-agentcore-control"]
    wire.call("GetGateway", {"gatewayIdentifier": "gw a/b"}, (200, [], b"{}"))
    assert wire.request is not None
    assert wire.request.url == "http://127.0.0.1:1/aws/agentcore-control/gateways/gw%20a%2Fb/"
    method, path, query, _, _ = wire.sent()
    found = SERVICES["bedrock-agentcore-control"].match(method, path, query)
    assert found is not None and found[1] == {"gatewayIdentifier": "gw a/b"}


def test_every_model_pattern_compiles() -> None:
    for service in SERVICES.values():
        for name in service.model.shape_names:
            pattern = service.model.shape_for(name).metadata.get("pattern")
            if pattern is not None:
                assert compile_pattern(pattern) is not None, pattern
    assert unsupported_patterns() == frozenset()


def test_unicode_property_and_anchors() -> None:
    visible = compile_pattern("[^\\p{C}]*")
    assert visible is not None
    assert (
        visible.fullmatch("héllo wörld")
        and not visible.fullmatch("a\x00b")
        and not visible.fullmatch("\u200b")
    )
    either = compile_pattern("$|^[a-z]+")  # botocore strips the outer ^...$ of "^$|^[a-z]+$"
    assert (
        either is not None
        and either.fullmatch("")
        and either.fullmatch("abc")
        and not either.fullmatch("ab1")
    )
    digits = compile_pattern("\\d+")
    assert digits is not None and not digits.fullmatch("٣")  # Java's \d is ASCII
    assert example_string("mem-[a-zA-Z0-9-_]*", 40, 50).startswith("mem-")
    assert len(example_string("[a-zA-Z0-9](-*[a-zA-Z0-9]){0,256}", 33, 256)) >= 33


# --- bad requests ---------------------------------------------------------------------------------

CONTROL = SERVICES["bedrock-agentcore-control"]
MUST = "failed to satisfy constraint: Member must "
GATEWAY = {"name": "gw", "roleArn": "arn:aws:iam::123456789012:role/r", "authorizerType": "NONE"}
TARGET = {"targetConfiguration": {"mcp": {"openApiSchema": {"inlinePayload": "{}"}}}}


def _request(method: str, path: str, body: object = None, query: str = "", raw: bytes | None = None) -> None:
    operation, labels = CONTROL.route(method, path, parse_qsl(query, keep_blank_values=True))
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    parse_input(operation, labels, parse_qsl(query, keep_blank_values=True), {}, data)


BAD = [
    (
        "missing required",
        "POST",
        "/gateways/",
        {**GATEWAY, "name": None},
        "",
        "ValidationException",
        "Value null at 'name' failed to satisfy constraint: Member must not be null",
    ),
    (
        "bad enum",
        "POST",
        "/gateways/",
        {**GATEWAY, "authorizerType": "MAYBE"},
        "",
        "ValidationException",
        "Value at 'authorizerType' " + MUST + "satisfy enum value set: [CUSTOM_JWT",
    ),
    (
        "too long",
        "POST",
        "/gateways/",
        {**GATEWAY, "description": "d" * 201},
        "",
        "ValidationException",
        "Value at 'description' " + MUST + "have length less than or equal to 200",
    ),
    (
        "too short",
        "POST",
        "/gateways/",
        {**GATEWAY, "description": ""},
        "",
        "ValidationException",
        "Value at 'description' " + MUST + "have length greater than or equal to 1",
    ),
    (
        "bad pattern",
        "POST",
        "/gateways/",
        {**GATEWAY, "roleArn": "role"},
        "",
        "ValidationException",
        "Value at 'roleArn' " + MUST + "satisfy regular expression pattern: arn:aws",
    ),
    (
        "nested",
        "POST",
        "/gateways/",
        {**GATEWAY, "domainOverride": {"default": "nodot"}},
        "",
        "ValidationException",
        "Value at 'domainOverride.defaultDomain' failed to satisfy constraint: Member must",
    ),
    (
        "list item",
        "POST",
        "/gateways/gw-0123456789/targets/",
        {
            "name": "t",
            "targetConfiguration": {"mcp": {"openApiSchema": {"inlinePayload": "{}"}}},
            "credentialProviderConfigurations": [{"credentialProviderType": "NOPE"}],
        },
        "",
        "ValidationException",
        "Value at 'credentialProviderConfigurations.1.member.credentialProviderType' failed",
    ),
    (
        "out of range",
        "GET",
        "/gateways/",
        None,
        "maxResults=1001",
        "ValidationException",
        "Value at 'maxResults' " + MUST + "have value less than or equal to 1000",
    ),
    (
        "below range",
        "GET",
        "/gateways/",
        None,
        "maxResults=0",
        "ValidationException",
        "Value at 'maxResults' " + MUST + "have value greater than or equal to 1",
    ),
    ("query type", "GET", "/gateways/", None, "maxResults=ten", "SerializationException", "'maxResults'"),
    (
        "wrong type",
        "POST",
        "/gateways/gw-0123456789/targets/",
        {"name": "t", "targetConfiguration": {"mcp": {"openApiSchema": {"inlinePayload": 5}}}},
        "",
        "SerializationException",
        "'targetConfiguration.mcp.openApiSchema.inlinePayload'",
    ),
    (
        "string for structure",
        "POST",
        "/gateways/gw-0123456789/targets/",
        {"name": "t", "targetConfiguration": {"mcp": "openApiSchema"}},
        "",
        "SerializationException",
        "'targetConfiguration.mcp'",
    ),
    (
        "union of two",
        "POST",
        "/gateways/gw-0123456789/targets/",
        {"name": "t", "targetConfiguration": {"mcp": {"openApiSchema": {"inlinePayload": "{}", "s3": {}}}}},
        "",
        "SerializationException",
        "'targetConfiguration.mcp.openApiSchema'",
    ),
    (
        "null list item",
        "POST",
        "/gateways/",
        {**GATEWAY, "interceptorConfigurations": [None]},
        "",
        "SerializationException",
        "'interceptorConfigurations'",
    ),
    (
        "float for integer",
        "POST",
        "/gateways/gw-0123456789/targets/",
        {
            "name": "t",
            "targetConfiguration": {"mcp": {"mcpServer": {"endpoint": "https://x", "resourcePriority": 1.5}}},
        },
        "",
        "SerializationException",
        "'targetConfiguration.mcp.mcpServer.resourcePriority'",
    ),
    ("array body", "POST", "/gateways/", [GATEWAY], "", "SerializationException", "The request body"),
]


@pytest.mark.parametrize(
    ("case", "method", "path", "body", "query", "code", "words"), BAD, ids=[b[0] for b in BAD]
)
def test_bad_request(
    case: str, method: str, path: str, body: object, query: str, code: str, words: str
) -> None:
    with pytest.raises(WireError) as caught:
        _request(method, path, body, query)
    assert caught.value.code == code and caught.value.status == 400
    assert words in caught.value.message, caught.value.message
    if code == "ValidationException":
        assert caught.value.message.startswith("1 validation error detected: ")
        assert caught.value.fields["reason"] == "FieldValidationFailed"
        assert caught.value.fields["fieldList"][0]["message"] in caught.value.message


@pytest.mark.parametrize(
    "raw", [b"{", b'{"name": NaN}', b"\xff\xfe", b"nul"], ids=["cut", "nan", "utf8", "word"]
)
def test_malformed_json_is_a_serialization_exception(raw: bytes) -> None:
    with pytest.raises(WireError) as caught:
        _request("POST", "/gateways/", raw=raw)
    assert (caught.value.code, caught.value.status) == ("SerializationException", 400)
    assert "not valid JSON" in caught.value.message


def test_several_violations_are_counted_and_unknown_members_ignored() -> None:
    with pytest.raises(WireError) as caught:
        _request("POST", "/gateways/", {**GATEWAY, "roleArn": "r", "description": "", "surprise": {"x": 1}})
    assert caught.value.message.startswith("2 validation errors detected: Value at 'roleArn'")
    assert "; Value at 'description' failed" in caught.value.message
    assert len(caught.value.fields["fieldList"]) == 2
    _request("POST", "/gateways/", {**GATEWAY, "surprise": [1, 2]})


def test_unknown_path_and_wrong_method() -> None:
    with pytest.raises(WireError) as caught:
        CONTROL.route("GET", "/nowhere")
    assert (caught.value.code, caught.value.status) == ("UnknownOperationException", 404)
    assert CONTROL.match("GET", "/nowhere") is None
    with pytest.raises(WireError) as caught:
        CONTROL.route("PATCH", "/gateways/gw-0123456789/")
    assert caught.value.status == 405 and "/gateways/gw-0123456789/" in caught.value.message
    assert dict(caught.value.headers)["Allow"] == "DELETE, GET, PUT"
    assert CONTROL.allowed_methods("/gateways/gw-0123456789/") == {"GET", "PUT", "DELETE"}
    assert CONTROL.match("PATCH", "/gateways/gw-0123456789/") is None


JUNK: list[object] = [None, 0, 1.5, True, "x", [], {}, [None], {"a": None}, "ø" * 3000]


@pytest.mark.parametrize(("service", "name"), OPERATIONS)
def test_junk_in_any_body_member_is_a_wire_error(service: str, name: str) -> None:
    operation = SERVICES[service].operation(name)
    shape = operation.input_shape
    if shape is None:
        return
    params = example_input(operation, complete=True)
    labels = {
        str(m.serialization.get("name", n)): str(params[n])
        for n, m in shape.members.items()
        if m.serialization.get("location") == "uri"
    }
    body_names = [n for n, m in shape.members.items() if "location" not in m.serialization]
    for member in body_names:
        for junk in JUNK:
            body = {k: "x" for k in body_names} | {member: junk}
            for raw in (json.dumps(body).encode(), json.dumps(junk).encode()):
                try:
                    parse_input(operation, labels, [], {}, raw)
                except WireError as exc:
                    assert exc.status == 400 and exc.code in ("ValidationException", "SerializationException")


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "fields"),
    [
        ("ResourceNotFoundException", 404, {}),
        ("ThrottlingException", 429, {}),
        ("ConflictException", 409, {}),
        ("ValidationException", 400, {"reason": "CannotParse", "fieldList": [{"name": "n", "message": "m"}]}),
        ("SerializationException", 400, {}),
    ],
)
def test_errors_raise_client_error(
    wires: dict[str, _Wire], code: str, status: int, fields: dict[str, Any]
) -> None:
    answer = serialize_error(
        CONTROL, code, f"{code} happened", 400 if code == "SerializationException" else None, **fields
    )
    assert answer[0] == status
    with pytest.raises(ClientError) as caught:
        wires["bedrock-agentcore-control"].call("ListGateways", {}, answer)
    error = cast(dict[str, Any], caught.value.response)
    assert error["Error"] == {"Code": code, "Message": f"{code} happened"}
    assert error["ResponseMetadata"]["HTTPStatusCode"] == status
    for key, value in fields.items():
        assert error[key] == value


def test_a_wire_error_reaches_the_client_as_sent(wires: dict[str, _Wire]) -> None:
    with pytest.raises(WireError) as bad:
        _request("POST", "/gateways/", {**GATEWAY, "roleArn": "role"})
    with pytest.raises(ClientError) as caught:
        wires["bedrock-agentcore-control"].call("ListGateways", {}, error_response(CONTROL, bad.value))
    assert caught.value.response["Error"]["Message"] == bad.value.message
    assert cast(dict[str, Any], caught.value.response)["fieldList"] == bad.value.fields["fieldList"]


# --- event streams --------------------------------------------------------------------------------

DATA = SERVICES["bedrock-agentcore"]
INVOKE = DATA.operation("InvokeCodeInterpreter")
RESULT = {"result": {"content": [{"type": "text", "text": "hello"}], "isError": False}}
RESULT2 = {
    "result": {"content": [{"type": "resource", "resource": {"uri": "file:///a", "blob": b"\x00\x01"}}]}
}


def _invoke(wires: dict[str, _Wire], events: list[dict[str, Any]], tail: bytes = b"") -> Iterator[Any]:
    status, headers, body = serialize_output(INVOKE, {"sessionId": "s1", "stream": events})
    assert ("Content-Type", "application/vnd.amazon.eventstream") in headers
    params = {"codeInterpreterIdentifier": "aws.codeinterpreter.v1", "name": "executeCode"}
    result = wires["bedrock-agentcore"].call("InvokeCodeInterpreter", params, (status, headers, body + tail))
    assert result["sessionId"] == "s1"
    stream: Iterator[Any] = iter(result["stream"])
    return stream


def test_events_reach_the_client(wires: dict[str, _Wire]) -> None:
    assert list(_invoke(wires, [RESULT, RESULT2])) == [RESULT, RESULT2]


def test_a_modelled_exception_in_the_stream(wires: dict[str, _Wire]) -> None:
    stream = _invoke(
        wires, [RESULT, {"validationException": {"message": "bad code", "reason": "CannotParse"}}]
    )
    assert next(stream) == RESULT
    with pytest.raises(EventStreamError) as caught:
        next(stream)
    assert caught.value.response["Error"] == {"Code": "validationException", "Message": "bad code"}


def test_an_unmodelled_error_in_the_stream(wires: dict[str, _Wire]) -> None:
    stream = _invoke(wires, [RESULT], tail=encode_error_event("InternalFailure", "it broke"))
    assert next(stream) == RESULT
    with pytest.raises(EventStreamError) as caught:
        next(stream)
    assert caught.value.response["Error"] == {"Code": "InternalFailure", "Message": "it broke"}


def test_event_frame_layout() -> None:
    frame = encode_event(INVOKE, RESULT)
    total, headers_length = int.from_bytes(frame[:4], "big"), int.from_bytes(frame[4:8], "big")
    assert total == len(frame)
    buffer = EventStreamBuffer()
    buffer.add_data(frame)
    messages: list[Any] = list(buffer)  # checks both CRCs
    (message,) = messages
    assert message.prelude.headers_length == headers_length
    assert message.headers == {
        ":message-type": "event",
        ":event-type": "result",
        ":content-type": "application/json",
    }
    with pytest.raises(ValueError, match="not an event"):
        encode_event(INVOKE, {"nope": {}})
    with pytest.raises(ValueError, match="does not answer an event stream"):
        encode_event(CONTROL.operation("ListGateways"), RESULT)


# --- what the two models do not use: a synthetic service ------------------------------------------


def _synthetic() -> dict[str, Any]:
    s: dict[str, Any] = {"type": "string"}
    shapes: dict[str, Any] = {
        "S": s,
        "Name": {"type": "string", "min": 2, "max": 8, "pattern": "[a-z]+"},
        "I": {"type": "integer"},
        "L": {"type": "long"},
        "B": {"type": "boolean"},
        "D": {"type": "double"},
        "T": {"type": "timestamp"},
        "IsoT": {"type": "timestamp", "timestampFormat": "iso8601"},
        "Blob": {"type": "blob"},
        "Stream": {"type": "blob", "streaming": True},
        "Json": {"type": "string", "jsonvalue": True},
        "SList": {"type": "list", "member": {"shape": "S"}},
        "SMap": {"type": "map", "key": {"shape": "S"}, "value": {"shape": "S"}},
        "Doc": {"type": "structure", "members": {}, "document": True},
        "Choice": {"type": "structure", "union": True, "members": {"a": {"shape": "S"}, "b": {"shape": "I"}}},
        "Inner": {
            "type": "structure",
            "required": ["n"],
            "members": {"n": {"shape": "Name"}, "at": {"shape": "T"}},
        },
        "Inners": {"type": "list", "member": {"shape": "Inner"}},
        "In": {
            "type": "structure",
            "required": ["id", "path"],
            "members": {
                "id": {"shape": "S", "location": "uri", "locationName": "id"},
                "path": {"shape": "S", "location": "uri", "locationName": "path"},
                "count": {"shape": "I", "location": "querystring", "locationName": "count"},
                "flags": {"shape": "SList", "location": "querystring", "locationName": "flag"},
                "when": {"shape": "T", "location": "querystring", "locationName": "when"},
                "rest": {"shape": "SMap", "location": "querystring"},
                "hInt": {"shape": "I", "location": "header", "locationName": "x-int"},
                "hBool": {"shape": "B", "location": "header", "locationName": "x-bool"},
                "hTime": {"shape": "T", "location": "header", "locationName": "x-time"},
                "hJson": {"shape": "Json", "location": "header", "locationName": "x-json"},
                "hList": {"shape": "SList", "location": "header", "locationName": "x-list"},
                "meta": {"shape": "SMap", "location": "headers", "locationName": "x-meta-"},
                "name": {"shape": "Name", "locationName": "Name"},
                "stamp": {"shape": "T"},
                "iso": {"shape": "IsoT"},
                "data": {"shape": "Blob"},
                "ratio": {"shape": "D"},
                "big": {"shape": "L"},
                "choice": {"shape": "Choice"},
                "doc": {"shape": "Doc"},
                "inners": {"shape": "Inners"},
                "tags": {"shape": "SMap"},
            },
        },
        "Out": {
            "type": "structure",
            "members": {
                "status": {"shape": "I", "location": "statusCode"},
                "etag": {"shape": "S", "location": "header", "locationName": "ETag"},
                "when": {"shape": "T", "location": "header", "locationName": "x-when"},
                "hJson": {"shape": "Json", "location": "header", "locationName": "x-json"},
                "meta": {"shape": "SMap", "location": "headers", "locationName": "x-meta-"},
                "stamp": {"shape": "T"},
                "iso": {"shape": "IsoT"},
                "data": {"shape": "Blob"},
                "ratio": {"shape": "D"},
                "inners": {"shape": "Inners"},
                "doc": {"shape": "Doc"},
            },
        },
        "UpIn": {
            "type": "structure",
            "required": ["id"],
            "payload": "body",
            "members": {
                "id": {"shape": "S", "location": "uri", "locationName": "id"},
                "body": {"shape": "Stream"},
            },
        },
        "VIn": {
            "type": "structure",
            "required": ["id"],
            "members": {
                "id": {"shape": "S", "location": "uri", "locationName": "id"},
                "rest": {"shape": "SMap", "location": "querystring"},
            },
        },
        "UpOut": {"type": "structure", "payload": "inner", "members": {"inner": {"shape": "Inner"}}},
    }
    operations = {
        "Full": {
            "name": "Full",
            "http": {"method": "POST", "requestUri": "/things/{id}/files/{path+}?mode=full"},
            "input": {"shape": "In"},
            "output": {"shape": "Out"},
        },
        "Plain": {
            "name": "Plain",
            "http": {"method": "POST", "requestUri": "/things/{id}/files/{path+}"},
            "input": {"shape": "In"},
        },
        "Upload": {
            "name": "Upload",
            "http": {"method": "PUT", "requestUri": "/things/{id}", "responseCode": 201},
            "input": {"shape": "UpIn"},
            "output": {"shape": "UpOut"},
        },
    }
    operations["Versions"] = {
        "name": "Versions",
        "http": {"method": "GET", "requestUri": "/things/{id}?versions"},
        "input": {"shape": "VIn"},
    }
    metadata = {
        "protocol": "rest-json",
        "apiVersion": "2024-01-01",
        "endpointPrefix": "x",
        "serviceId": "X",
        "signatureVersion": "v4",
        "jsonVersion": "1.1",
    }
    return {"metadata": metadata, "operations": operations, "shapes": shapes}


SYNTHETIC = Service(ServiceModel(_synthetic(), "synthetic"))
FULL_INPUT: dict[str, Any] = {
    "id": "a b/c",
    "path": "dir/sub dir/file.txt",
    "count": 3,
    "flags": ["x", "y z"],
    "when": datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
    "rest": {"extra": "1"},
    "hInt": -4,
    "hBool": False,
    "hTime": datetime(2024, 1, 2, tzinfo=UTC),
    "hJson": {"k": [1, "v"]},
    "hList": ["p", "q,r", 's"t'],
    "meta": {"one": "1"},
    "name": "abc",
    "stamp": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
    "iso": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
    "data": b"\x00\xffdata",
    "ratio": 0.25,
    "big": 2**40,
    "choice": {"b": 7},
    "doc": {"any": ["json", 1, None]},
    "inners": [{"n": "xy"}],
    "tags": {"t": "v"},
}


def _botocore_request(
    operation: OperationModel, params: dict[str, Any]
) -> tuple[str, str, list[tuple[str, str]], dict[str, str], bytes]:
    request = create_serializer("rest-json", include_validation=True).serialize_to_request(params, operation)
    path, _, literal = request["url_path"].partition("?")
    query = parse_qsl(literal, keep_blank_values=True)
    for key, value in request["query_string"].items():
        query.extend((key, str(v)) for v in (value if isinstance(value, list) else [value]))
    body = request["body"]
    return (
        request["method"],
        path,
        query,
        dict(request["headers"]),
        body if isinstance(body, bytes) else body.read(),
    )


def test_every_location_and_type_round_trips() -> None:
    operation = SYNTHETIC.operation("Full")
    method, path, query, headers, body = _botocore_request(operation, FULL_INPUT)
    found = SYNTHETIC.match(method, path, query)
    assert found is not None and found[0].name == "Full"
    assert found[1] == {"id": "a b/c", "path": "dir/sub dir/file.txt"}
    assert parse_input(found[0], found[1], query, headers, body) == FULL_INPUT
    without_literal = [(k, v) for k, v in query if k != "mode"]
    plain = SYNTHETIC.match(method, path, without_literal)
    assert plain is not None and plain[0].name == "Plain"


def test_every_output_location_round_trips() -> None:
    operation = SYNTHETIC.operation("Full")
    output = {
        "status": 207,
        "etag": "e1",
        "when": datetime(2024, 1, 2, tzinfo=UTC),
        "hJson": [1, {"a": True}],
        "meta": {"k": "v"},
        "stamp": datetime(2024, 1, 2, 3, 4, 5, 250000, tzinfo=UTC),
        "iso": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        "data": b"\x01",
        "ratio": float("inf"),
        "inners": [{"n": "ab", "at": datetime(2024, 1, 1, tzinfo=UTC)}],
        "doc": {"x": [1]},
    }
    status, headers, body = serialize_output(operation, output)
    assert status == 207
    sent = json.loads(body)  # botocore would also read ISO strings: the format is checked here
    assert (sent["stamp"], sent["iso"], sent["ratio"]) == (1704164645.25, "2024-01-02T03:04:05Z", "Infinity")
    assert dict(headers)["x-when"] == "Tue, 02 Jan 2024 00:00:00 GMT"
    parsed = create_parser("rest-json").parse(
        {
            "status_code": status,
            "headers": HeadersDict(headers),
            "body": body,
            "context": {"operation_name": "Full"},
        },
        _shape(operation.output_shape),
    )
    del parsed["ResponseMetadata"]
    assert parsed == output
    with pytest.raises(TypeError, match="not members"):
        serialize_output(operation, {"surprise": 1})


def test_payloads() -> None:
    operation = SYNTHETIC.operation("Upload")
    method, path, query, headers, body = _botocore_request(operation, {"id": "u", "body": b"\x00raw"})
    found = SYNTHETIC.route(method, path, query)
    assert parse_input(found[0], found[1], query, headers, body) == {"id": "u", "body": b"\x00raw"}
    status, out_headers, out_body = serialize_output(operation, {"inner": {"n": "ok"}})
    assert (status, out_body, out_headers) == (201, b'{"n":"ok"}', [("Content-Type", "application/json")])


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("x-int", "1.5"),
        ("x-int", "99999999999"),
        ("x-bool", "yes"),
        ("x-time", "yesterday"),
        ("x-json", "!!"),
    ],
)
def test_bad_header_values(header: str, value: str) -> None:
    operation = SYNTHETIC.operation("Plain")
    with pytest.raises(WireError) as caught:
        parse_input(operation, {"id": "i", "path": "p"}, [], {header: value}, b"")
    assert caught.value.code == "SerializationException"


def test_non_ascii_digits_are_not_numbers() -> None:
    with pytest.raises(WireError) as caught:
        _request("GET", "/gateways/", query="maxResults=٣")
    assert caught.value.code == "SerializationException"


def test_a_model_with_two_operations_on_one_route_is_refused() -> None:
    twin = _synthetic()
    twin["operations"] = {**twin["operations"], "Again": {**twin["operations"]["Upload"], "name": "Again"}}
    with pytest.raises(ValueError, match="same method and path"):
        Service(ServiceModel(twin, "twin"))


def test_error_fields_the_shape_lacks_are_left_out() -> None:
    status, headers, body = serialize_error(CONTROL, "ResourceNotFoundException", "gone", resourceId="x")
    assert (status, json.loads(body)) == (404, {"message": "gone"})
    assert ("x-amzn-ErrorType", "ResourceNotFoundException") in headers


def test_a_bare_literal_query_key_routes_and_is_not_a_map_entry() -> None:
    assert SYNTHETIC.match("GET", "/things/x") is None
    found = SYNTHETIC.match("GET", "/things/x", [("a", "1"), ("versions", "")])
    assert found is not None and found[0].name == "Versions"
    query = [("versions", ""), ("a", "1")]
    assert parse_input(found[0], found[1], query, {}, b"") == {"id": "x", "rest": {"a": "1"}}
