"""Valid example arguments for a JSON Schema (2020-12), so a test can call every tool of a document."""

from __future__ import annotations

from typing import Any

_FORMATS = {
    "date": "2024-05-17",
    "date-time": "2024-05-17T10:00:00Z",
    "email": "ada@example.com",
    "uuid": "0b5d8c7e-4a64-4d8f-9c39-3a5b1f8e2c11",
    "uri": "https://example.com/x",
    "url": "https://example.com/x",
    "ipv4": "192.0.2.1",
    "hostname": "example.com",
    "binary": "file contents",
    "byte": "aGVsbG8=",
}


def sample(schema: Any, root: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """A value valid against ``schema`` (refs resolved in the root's ``$defs``)."""
    root = root if root is not None else schema
    if not isinstance(schema, dict):
        return None
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return sample(root.get("$defs", {}).get(name, {}), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return next((v for v in schema["enum"] if v is not None), schema["enum"][0])
    if "default" in schema:
        return schema["default"]
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return sample(schema[key][0], root, depth + 1)
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = sample(part, root, depth + 1)
            if isinstance(value, dict):
                merged.update(value)
        extra = sample({k: v for k, v in schema.items() if k != "allOf"}, root, depth + 1)
        return {**merged, **(extra if isinstance(extra, dict) else {})}
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None and "properties" in schema:
        kind = "object"
    if kind == "object":
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        then_required = set((schema.get("then") or {}).get("required", [])) | set(
            (schema.get("else") or {}).get("required", [])
        )
        out = {}
        for name, sub in props.items():
            if name in required or name in then_required or depth < 2:
                out[name] = sample(sub, root, depth + 1)
        for branch in schema.get("allOf", []):
            for alt in branch.get("anyOf", [])[:1]:
                for name in alt.get("required", []):
                    out.setdefault(name, sample(props.get(name, {}), root, depth + 1))
        return out
    if kind == "array":
        # two items, so that an exploded array cannot be mistaken for a single value
        count = max(2, schema.get("minItems", 2)) if depth < 3 else schema.get("minItems", 0)
        return [sample(schema.get("items", {}), root, depth + 1) for _ in range(count)]
    if kind == "integer":
        low = schema.get(
            "minimum", schema.get("exclusiveMinimum", 0) + (1 if "exclusiveMinimum" in schema else 0)
        )
        return max(int(low), 1) if schema.get("maximum", 10) >= 1 else int(low)
    if kind == "number":
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        return float(low) + 1.5
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if "pattern" in schema and schema["pattern"] == "^[A-Z]{3}$":
        return "EUR"
    if schema.get("contentEncoding") == "base64":
        return "ZmlsZSBjb250ZW50cw=="  # b"file contents"
    if schema.get("format") in _FORMATS:
        return _FORMATS[schema["format"]]
    text = "sample"
    return text * max(1, (schema.get("minLength", 0) // len(text)) + 1) if schema.get("minLength") else text
