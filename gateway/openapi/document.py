"""Loading OpenAPI documents: JSON or YAML, from a file, a URL or inline, with every `$ref` resolvable.

A `Document` holds the root and every other document it refers to (relative
files and URLs), keyed by absolute URI, so a reference is resolved by
`Document.resolve(ref, base)` wherever it appears. Swagger 2.0 documents are
converted to the OpenAPI 3 shape on load (``swagger2.py``), so the compiler
sees one shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

import orjson
import yaml

from gateway.core.errors import ConfigError, ConfigIssue

try:
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader

Fetch = Callable[[str], bytes]


class DocumentError(ConfigError):
    """A document (or one it refers to) cannot be read or is malformed; names the JSON pointer."""

    def __init__(self, message: str, pointer: str = "", source: str | None = None) -> None:
        super().__init__([ConfigIssue(message, location=pointer, source=source)])


def parse(raw: bytes, source: str) -> Any:
    """JSON or YAML, whichever the bytes are.

    YAML may share a node among many places (anchors and aliases): a document of a few hundred
    bytes can stand for gigabytes once written out. A YAML document that reaches more nodes than
    ``EXPANSION`` times its size allows is refused before anything walks it whole."""
    text = raw.lstrip()
    if text[:1] in (b"{", b"["):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # YAML is a superset; let the YAML parser report
    try:
        doc = yaml.load(raw, Loader=_Loader)
    except RecursionError:
        raise DocumentError("the document is nested too deeply", source=source) from None
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else "?"
        raise DocumentError(f"not valid JSON or YAML (line {line}): {exc.problem}", source=source) from None
    except yaml.YAMLError as exc:
        raise DocumentError(f"not valid JSON or YAML: {exc}", source=source) from None
    _bounded(doc, max(MIN_NODES, EXPANSION * len(raw)), source)
    try:
        return _plain(doc)
    except RecursionError:
        raise DocumentError("the document is nested too deeply", source=source) from None


EXPANSION = 16  # nodes a document may reach per byte of its YAML text
MIN_NODES = 100_000


def _bounded(doc: Any, limit: int, source: str) -> None:
    """Refuse a document that reaches more than ``limit`` nodes, counting a shared node each time
    it is reached (the walk stops at the limit: it never expands what it refuses)."""
    seen, stack = 0, [doc]
    while stack:
        node = stack.pop()
        seen += 1
        if seen > limit:
            raise DocumentError(
                f"the document expands to more than {limit} values (YAML aliases?): write them out",
                source=source,
            )
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _plain(doc: Any) -> Any:
    """The document with only JSON's values: YAML's dates, binaries and sets as strings."""
    if isinstance(doc, dict):
        return {str(k): _plain(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_plain(v) for v in doc]
    if doc is None or isinstance(doc, bool | int | float | str):
        return doc
    return str(doc)


def pointer_get(doc: Any, pointer: str, source: str) -> Any:
    """Follow a JSON pointer (RFC 6901) inside ``doc``."""
    node = doc
    if pointer in ("", "/"):
        return node
    for raw_part in pointer.lstrip("/").split("/"):
        part = unquote(raw_part).replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise DocumentError(
                f"$ref target #{pointer} does not exist", pointer="#" + pointer, source=source
            )
    return node


@dataclass
class Document:
    """An OpenAPI document and everything it refers to."""

    uri: str
    root: dict[str, Any]
    fetch: Fetch
    loaded: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.loaded[self.uri] = self.root

    def load(self, uri: str) -> Any:
        if uri not in self.loaded:
            self.loaded[uri] = parse(self.fetch(uri), uri)
        return self.loaded[uri]

    def resolve(self, ref: str, base: str) -> tuple[Any, str, str]:
        """Resolve ``ref`` relative to the document ``base``: (node, document uri, pointer)."""
        target, fragment = urldefrag(urljoin(base, ref)) if not ref.startswith("#") else (base, ref[1:])
        doc = self.load(target or base)
        return pointer_get(doc, fragment, target), target or base, fragment

    def deref(self, node: Any, base: str, *, depth: int = 0) -> tuple[Any, str]:
        """Follow ``$ref`` chains of a non-schema object (parameter, body, response)."""
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            if depth > 32:
                raise DocumentError("a $ref chain is longer than 32 steps (a loop?)", pointer=node["$ref"])
            node, base, _ = self.resolve(node["$ref"], base)
            depth += 1
        return node, base


def file_fetch(
    root_dir: Path | None, allow_urls: Callable[[str], bytes] | None, *, allow_files: bool = True
) -> Fetch:
    """A fetcher for file: URIs (and http(s) ones through ``allow_urls``, the egress-guarded fetch).

    ``allow_files`` False: no file is read (a document given inline or by URL never reaches the
    gateway's disk through a ``$ref``; only a document that is itself a local file, which only the
    operator can name, may refer to files beside it)."""

    def fetch(uri: str) -> bytes:
        parts = urlsplit(uri)
        if parts.scheme in ("http", "https"):
            if allow_urls is None:
                raise DocumentError(f"cannot fetch {uri}: documents by URL are not allowed here")
            return allow_urls(uri)
        if parts.scheme not in ("file", ""):
            raise DocumentError(f"cannot fetch {uri}: only files and http(s) URLs are supported")
        if not allow_files:
            raise DocumentError(
                f"cannot fetch {uri}: a document given inline or by URL cannot refer to local files; "
                "use references within the document or to http(s) URLs"
            )
        path = Path(unquote(parts.path))
        try:
            return path.read_bytes()
        except OSError as exc:
            raise DocumentError(f"cannot read {path}: {exc.strerror or exc}", source=str(path)) from None

    return fetch


def open_document(
    spec: str | dict[str, Any], *, base_dir: Path, fetch_url: Callable[[str], bytes] | None
) -> Document:
    """Load the document a target names: inline (a mapping), a path, or a URL."""
    local = isinstance(spec, str) and urlsplit(spec).scheme not in ("http", "https")
    fetch = file_fetch(base_dir, fetch_url, allow_files=local)
    if isinstance(spec, dict):
        uri = (base_dir / "inline.yaml").resolve().as_uri()
        root: Any = spec
    else:
        if urlsplit(spec).scheme in ("http", "https"):
            uri = spec
        else:
            path = Path(spec) if Path(spec).is_absolute() else base_dir / spec
            uri = path.resolve().as_uri()
        root = parse(fetch(uri), uri)
    if not isinstance(root, dict):
        raise DocumentError("an OpenAPI document must be a mapping at the top level", source=str(spec)[:200])
    if "swagger" in root:
        from gateway.openapi.swagger2 import to_openapi3

        root = to_openapi3(root)
    elif "openapi" not in root:
        raise DocumentError("not an OpenAPI document: it has neither `openapi` nor `swagger`", source=uri)
    return Document(uri=uri, root=root, fetch=fetch)
