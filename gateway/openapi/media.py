"""Request body media types: which one an operation's tool sends, and what its argument is.

An operation's ``requestBody.content`` may offer several media types; one is
picked, in this order: JSON (``application/json``, ``*+json``), form
(``application/x-www-form-urlencoded``), multipart, text (``text/*`` and XML
or YAML whose schema is a plain string: the argument is the text), then raw
bytes (anything else: ``application/octet-stream``, ``image/png``, ``*/*``, or
a string of ``format: binary``). Raw bytes travel as one base64 string
argument (``contentEncoding: base64``), are decoded before sending, and go
out with the Content-Type the document names; when it names several (or a
wildcard such as ``image/*``), a ``content_type`` argument picks one. So no
operation of a document is left out for its body's media type (ADR 0025).

``*/*`` with an object or array schema is JSON, as such documents mean it. A multipart
body's ``format: binary`` properties (and arrays of them) are base64 strings too, each
decoded into its file part.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["json", "form", "multipart", "text", "binary"]
OCTET_STREAM = "application/octet-stream"
# A media type with optional parameters (RFC 9110 token characters; no CR/LF can pass).
_TOKEN = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"
_PARAMS = r"(\s*;\s*[\x20-\x7e]*)?"
MEDIA_TYPE = f"^{_TOKEN}/{_TOKEN}{_PARAMS}$"
_MEDIA_TYPE = re.compile(MEDIA_TYPE)
_TEXTUAL = ("application/xml", "application/yaml", "application/x-yaml", "application/javascript")


@dataclass(frozen=True, slots=True)
class BodyMedia:
    """The media type an operation's tool sends its body as.

    Attributes:
        media: The key of ``requestBody.content`` picked (its schema is the body's).
        kind: How the body's argument is put on the wire.
        content_types: For raw bytes, what the caller may send (wildcards kept, the
            default first); empty otherwise.
    """

    media: str
    kind: Kind
    content_types: tuple[str, ...] = ()

    @property
    def default_type(self) -> str | None:
        """The Content-Type sent when the caller names none (None: the caller must)."""
        concrete = [t for t in self.content_types if "*" not in t]
        if concrete:
            return concrete[0]
        return OCTET_STREAM if "*/*" in self.content_types else None

    def content_type_schema(self) -> dict[str, Any] | None:
        """The schema of the argument that picks the Content-Type (None: there is one choice)."""
        concrete = [t for t in self.content_types if "*" not in t]
        wild = [t for t in self.content_types if "*" in t]
        if not wild and len(concrete) <= 1:
            return None
        what = "The media type of the body"
        if not wild:
            return {"type": "string", "enum": concrete, "default": concrete[0], "description": f"{what}."}
        schema: dict[str, Any] = {"type": "string", "pattern": MEDIA_TYPE}
        if "*/*" not in wild:  # e.g. image/*: that family, and the types named beside it
            allowed = [f"{_literal(t.split('/')[0])}/{_TOKEN}" for t in wild] + [
                _literal(t) for t in concrete
            ]
            schema["pattern"] = f"^(?:{'|'.join(allowed)}){_PARAMS}$"
        default = self.default_type
        if default is not None:
            schema["default"] = default
        example = concrete[0] if concrete else ("image/png" if "*/*" in wild else wild[0].replace("*", "png"))
        schema["description"] = f"{what} (the API takes {', '.join(self.content_types)}), e.g. {example}."
        return schema


def _literal(text: str) -> str:
    """``text`` as a pattern matching itself, in the syntax both ECMA 262 and Python share
    (``re.escape`` writes ``\\-``, which ECMA's unicode mode refuses)."""
    return "".join("\\" + c if c in ".+*?^$|()[]{}\\" else c for c in text)


def plain(media: str) -> str:
    """The media type without parameters, lower case."""
    return media.split(";")[0].strip().lower()


def is_json(media: str) -> bool:
    p = plain(media)
    return p == "application/json" or p.endswith("+json")


def valid_media_type(text: str) -> bool:
    return _MEDIA_TYPE.match(text) is not None


def pick(content: Mapping[str, Any], shape: Mapping[str, tuple[str | None, str | None]]) -> BodyMedia | None:
    """The media type to send; None when ``content`` offers none.

    Args:
        content: ``requestBody.content``.
        shape: For each media type of ``content``, its schema's (type, format).
    """
    kinds = {media: _kind(media, *shape.get(media, (None, None))) for media in content}
    preferred: tuple[Kind, ...] = ("json", "form", "multipart", "text")
    for wanted in preferred:
        chosen = next((m for m, k in kinds.items() if k == wanted), None)
        if chosen is not None:
            return BodyMedia(chosen, wanted)
    binary = [m for m, k in kinds.items() if k == "binary"]
    if not binary:
        return None
    types = list(dict.fromkeys(plain(m) for m in binary))
    concrete_first = [t for t in types if "*" not in t] + [t for t in types if "*" in t]
    return BodyMedia(binary[0], "binary", tuple(concrete_first))


def _kind(media: str, kind: str | None, fmt: str | None) -> Kind:
    p = plain(media)
    if is_json(p):
        return "json"
    if p == "application/x-www-form-urlencoded":
        return "form"
    if p == "multipart/form-data":
        return "multipart"
    if p == "*/*" and kind is not None and kind != "string":
        return "json"  # an object (or array, number...) for any media type: JSON is what is meant
    textual = p.startswith("text/") or p in _TEXTUAL or p.endswith("+xml")
    if textual and fmt != "binary" and kind in ("string", None):
        return "text"
    if fmt == "byte" and kind == "string":
        return "text"  # already base64 text, sent as given
    return "binary"


def base64_parts(schema: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """A multipart body's schema with its binary file properties taken as base64, and their names.

    Only the body's own properties are seen (a body behind ``$ref`` keeps its parts as text).
    """
    props = schema.get("properties")
    if not isinstance(props, dict):
        return schema, ()
    marked: dict[str, Any] = {}
    for name, prop in props.items():
        if not isinstance(prop, dict):
            continue
        items = prop.get("items")
        if prop.get("format") == "binary":
            marked[name] = _base64(prop)
        elif prop.get("type") == "array" and isinstance(items, dict) and items.get("format") == "binary":
            marked[name] = {**prop, "items": _base64(items)}
    if not marked:
        return schema, ()
    return {**schema, "properties": {**props, **marked}}, tuple(marked)


def _base64(schema: dict[str, Any]) -> dict[str, Any]:
    described = str(schema.get("description") or "The file").rstrip(".")
    return {**schema, "contentEncoding": "base64", "description": f"{described}: its bytes, base64-encoded."}
