from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from gateway.core.catalog import CheckedSchema
from gateway.core.errors import ConfigError
from gateway.openapi.compiler import METHODS, Compiler
from gateway.openapi.document import open_document
from tests.support.tools import need

ROOT = Path(__file__).resolve().parents[2]
GITHUB = ROOT / ".tools" / "node_modules" / "@octokit" / "openapi" / "generated" / "api.github.com.json"


def compile_doc(spec: str | dict[str, Any]) -> Any:
    return Compiler(open_document(spec, base_dir=ROOT, fetch_url=None)).compile()


def doc(paths: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": paths, **extra}


def test_a_broken_operation_is_skipped_with_its_pointer_and_the_rest_served() -> None:
    compiled = compile_doc(
        doc(
            {
                "/a": {"get": {"operationId": "ok", "responses": {}}},
                "/b/{x}": {
                    "post": {
                        "operationId": "broken",
                        "requestBody": {
                            "content": {"application/json": {"schema": {"$ref": "#/nope/Missing"}}}
                        },
                        "responses": {},
                    }
                },
            }
        )
    )
    assert [t.name for t in compiled.tools] == ["ok"]
    assert compiled.skipped == [
        "POST /b/{x} (#/paths/~1b~1{x}/post): #/nope/Missing: $ref target #/nope/Missing does not exist"
    ]


def test_unparseable_document_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("openapi: 3.1.0\npaths:\n  /a: [\n")
    with pytest.raises(ConfigError, match=r"not valid JSON or YAML \(line 4\)"):
        compile_doc(str(bad))


def test_not_an_openapi_document() -> None:
    with pytest.raises(ConfigError, match="neither `openapi` nor `swagger`"):
        compile_doc({"info": {}})


def test_names_are_sanitised_deduplicated_or_derived() -> None:
    compiled = compile_doc(
        doc(
            {
                "/repos/{owner}/{repo}": {
                    "get": {"operationId": "repos/get", "responses": {}},
                    "put": {"operationId": "repos/get", "responses": {}},
                    "delete": {"responses": {}},
                }
            }
        )
    )
    assert [t.name for t in compiled.tools] == ["repos_get", "repos_get_2", "delete_repos_owner_repo"]
    annotations = [dict(t.annotations or {}) for t in compiled.tools]
    assert annotations[0] == {"readOnlyHint": True}
    assert annotations[2]["destructiveHint"] is True


def test_nullable_read_only_and_recursion() -> None:
    compiled = compile_doc(
        doc(
            {
                "/n": {
                    "post": {
                        "operationId": "n",
                        "requestBody": {
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/N"}}}
                        },
                        "responses": {},
                    }
                }
            },
            components={
                "schemas": {
                    "N": {
                        "type": "object",
                        "properties": {
                            "id": {"type": "string", "readOnly": True},
                            "label": {"type": "string", "nullable": True},
                            "next": {"$ref": "#/components/schemas/N"},
                        },
                        "required": ["id", "label"],
                    }
                }
            },
        )
    )
    schema = compiled.tools[0].input_schema
    assert schema["$defs"]["N"] == {
        "type": "object",
        "properties": {"label": {"type": ["string", "null"]}, "next": {"$ref": "#/$defs/N"}},
        "required": ["label"],
    }


@pytest.mark.parametrize("name", ["styles.yaml", "petstore-3.0.yaml", "legacy-swagger2.yaml"])
def test_documents_in_specs_compile_fully(name: str) -> None:
    compiled = compile_doc(f"specs/{name}")
    assert compiled.skipped == []
    for tool in compiled.tools:
        Draft202012Validator.check_schema(tool.input_schema)


def test_github_rest_api_one_tool_per_operation_all_schemas_valid() -> None:
    need(GITHUB.exists(), "GitHub's REST API document (npm @octokit/openapi)")
    raw = orjson.loads(GITHUB.read_bytes())
    operations = sum(1 for item in raw["paths"].values() for m in item if m in METHODS)
    compiled = compile_doc(str(GITHUB))
    assert compiled.skipped == []
    assert len(compiled.tools) == operations > 1000
    assert len({t.name for t in compiled.tools}) == operations
    for tool in compiled.tools:  # the compiler's fast check and jsonschema's agree on every one
        assert isinstance(tool.input_schema, CheckedSchema)
        Draft202012Validator.check_schema(tool.input_schema)
        if tool.output_schema is not None:
            assert isinstance(tool.output_schema, CheckedSchema)
            Draft202012Validator.check_schema(tool.output_schema)
    assert compiled.notes == []
    upload = compiled.operations["repos_upload-release-asset"]  # application/octet-stream
    assert upload.raw_body and upload.default_content_type == "application/octet-stream"


def test_headers_the_gateway_sets_are_never_arguments() -> None:
    names = ["Host", "Content-Length", "Transfer-Encoding", "Connection", "Authorization", "X-Request-Id"]
    params = [{"name": n, "in": "header", "schema": {"type": "string"}} for n in names]
    compiled = compile_doc(doc({"/x": {"get": {"operationId": "x", "parameters": params, "responses": {}}}}))
    (tool,) = compiled.tools
    assert list(tool.input_schema["properties"]) == ["X-Request-Id"]


def upload(content: dict[str, Any]) -> Any:
    body = {"required": True, "content": content}
    return compile_doc(doc({"/up": {"post": {"operationId": "up", "requestBody": body, "responses": {}}}}))


BINARY = {"type": "string", "format": "binary"}


@pytest.mark.parametrize(
    ("content", "kind", "types"),
    [
        ({"image/png": {"schema": BINARY}}, "binary", ("image/png",)),
        ({"application/octet-stream": {}}, "binary", ("application/octet-stream",)),
        ({"application/pdf": {"schema": {"type": "string"}}}, "binary", ("application/pdf",)),
        ({"*/*": {}}, "binary", ("*/*",)),
        ({"image/*": {}, "image/png": {}}, "binary", ("image/png", "image/*")),
        ({"text/plain": {"schema": BINARY}}, "binary", ("text/plain",)),
        ({"text/plain": {"schema": {"type": "string"}}, "image/png": {}}, "text", ()),
        ({"*/*": {"schema": {"type": "object", "properties": {"a": {"type": "string"}}}}}, "json", ()),
        ({"image/png": {}, "application/json": {"schema": {"type": "object"}}}, "json", ()),
    ],
)
def test_every_request_body_media_type_is_served(
    content: dict[str, Any], kind: str, types: tuple[str, ...]
) -> None:
    compiled = upload(content)
    assert compiled.skipped == []
    op = compiled.operations["up"]
    assert op.raw_body == (kind == "binary")
    if kind == "binary":
        body = compiled.tools[0].input_schema["properties"]["body"]
        assert body["type"] == "string" and body["contentEncoding"] == "base64"
        assert f"({', '.join(types)}): its bytes, base64-encoded" in body["description"]
        Draft202012Validator.check_schema(compiled.tools[0].input_schema)


def test_a_raw_body_with_several_types_takes_a_content_type_argument() -> None:
    several = upload({"image/png": {}, "image/jpeg": {}})
    schema = several.tools[0].input_schema
    assert schema["properties"]["content_type"]["enum"] == ["image/png", "image/jpeg"]
    assert schema["required"] == ["body"]  # image/png unless the caller says otherwise
    assert several.operations["up"].default_content_type == "image/png"
    assert schema["properties"]["body"].get("contentMediaType") is None
    family = upload({"image/*": {}})  # no default: the caller names the type
    schema = family.tools[0].input_schema
    assert schema["required"] == ["body", "content_type"]
    validator = Draft202012Validator(schema)
    assert validator.is_valid({"body": "", "content_type": "image/webp"})
    assert not validator.is_valid({"body": "", "content_type": "text/html"})
    assert not validator.is_valid({"body": "", "content_type": "image/png\r\nX-Injected: 1"})
    anything = upload({"*/*": {}})
    assert anything.operations["up"].default_content_type == "application/octet-stream"
    assert anything.tools[0].input_schema["required"] == ["body"]


def test_multipart_binary_properties_are_taken_as_base64() -> None:
    schema = {
        "type": "object",
        "properties": {
            "photo": {"type": "string", "format": "binary", "description": "The photo."},
            "pages": {"type": "array", "items": {"type": "string", "format": "binary"}},
            "note": {"type": "string", "format": "byte"},
            "caption": {"type": "string"},
        },
    }
    compiled = upload({"multipart/form-data": {"schema": schema}})
    props = compiled.tools[0].input_schema["properties"]
    assert props["photo"]["contentEncoding"] == "base64"
    assert props["photo"]["description"] == "The photo: its bytes, base64-encoded."
    assert props["pages"]["items"]["contentEncoding"] == "base64"
    assert "contentEncoding" not in props["note"] and "contentEncoding" not in props["caption"]
    op = compiled.operations["up"]
    assert op.base64_fields == ("photo", "pages") and op.file_fields == ("photo", "note")


def test_a_wildcard_body_type_allows_its_family_and_the_types_named_beside_it() -> None:
    schema = upload({"image/*": {}, "application/vnd.x+zip": {}}).tools[0].input_schema
    validator = Draft202012Validator(schema)
    for allowed in ("image/webp", "application/vnd.x+zip", "image/png; charset=binary"):
        assert validator.is_valid({"body": "", "content_type": allowed}), allowed
    for refused in ("application/vnd.xyzip", "text/html", "image/png\r\nX-Injected: 1"):
        assert not validator.is_valid({"body": "", "content_type": refused}), refused
