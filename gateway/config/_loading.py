"""Reading the configuration (YAML with lines for errors, the store's form) and checking it:
errors name the file, the line and the field, and say how to fix it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from gateway.config._gateway import Document, GatewaySpec
from gateway.config._targets import TARGET_KINDS
from gateway.core.errors import ConfigError, ConfigIssue
from gateway.yaml_lines import parse_yaml

M = TypeVar("M")


StoredGateway = tuple[str, dict[str, Any], list[tuple[str, dict[str, Any]]]]


def to_store(spec: GatewaySpec) -> StoredGateway:
    """A gateway in the store's shape: (name, gateway document, [(target name, target document)])."""
    doc = spec.model_dump(mode="json", exclude={"targets", "name"}, exclude_defaults=True)
    targets = [
        (t.name, t.model_dump(mode="json", exclude={"name"}, exclude_defaults=True)) for t in spec.targets
    ]
    return spec.name, doc, targets


def gateway_from_store(
    spec: Mapping[str, Any], targets: Sequence[Mapping[str, Any]], source: str
) -> GatewaySpec:
    """Rebuild a GatewaySpec from stored documents."""
    return validate(GatewaySpec, {**spec, "targets": targets}, source=source)


def validate(
    model: type[M] | TypeAdapter[M],
    data: Any,
    *,
    source: str,
    lines: Mapping[tuple[Any, ...], int] | None = None,
    prefix: tuple[Any, ...] = (),
    schema_hint: str = "switchboard schema",
) -> M:
    """Validate ``data`` against ``model``; errors become one ConfigError with located issues."""
    try:
        adapter = model if isinstance(model, TypeAdapter) else TypeAdapter(model)
        return adapter.validate_python(data)
    except ValidationError as exc:
        raise ConfigError(_issues(exc, source, {} if lines is None else lines, prefix, schema_hint)) from None


def _issues(
    exc: ValidationError,
    source: str,
    lines: Mapping[tuple[Any, ...], int],
    prefix: tuple[Any, ...],
    schema_hint: str,
) -> list[ConfigIssue]:
    out: list[ConfigIssue] = []
    for err in exc.errors(include_url=False):
        loc = _clean_loc(tuple(err["loc"]))
        if err["type"] == "union_tag_invalid":
            loc = (*loc, "kind")
        full = prefix + loc
        line = None
        for n in range(len(full), -1, -1):
            if full[:n] in lines:
                line = lines[full[:n]]
                break
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = f"unknown field {loc[-1]!r}: check its spelling (`{schema_hint}` lists every field)"
        elif err["type"] == "union_tag_invalid":
            tag = err.get("ctx", {}).get("tag")
            message = f"unknown target kind {tag!r}: use one of {', '.join(TARGET_KINDS)}"
        elif err["type"] == "union_tag_not_found":
            message = f"a target needs a `kind` ({', '.join(TARGET_KINDS)})"
        elif err["type"] == "missing":
            message = f"missing required field {loc[-1]!r}"
        out.append(ConfigIssue(message, _dotted(full), source, line))
    return out


_KIND_TAGS = {
    *TARGET_KINDS,
    *("api_key", "oauth2_client_credentials", "oauth2_authorization_code", "oauth2_token_exchange"),
    *("python", "http", "lambda", "redact", "none", "jwt"),
}


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    # pydantic puts the discriminator value and union member names into locations
    out: list[Any] = []
    tagged = False  # one tag follows an index (or `auth`): a field named like a kind stays
    for part in loc:
        if (
            isinstance(part, str)
            and part in _KIND_TAGS
            and not tagged
            and out
            and (isinstance(out[-1], int) or out[-1] == "auth")
        ):
            tagged = True
            continue
        if isinstance(part, str) and (part.startswith("function-after") or "[" in part):
            continue
        out.append(part)
        tagged = False
    return tuple(out)


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_document(text: str, source: str) -> Document:
    """Parse and validate a whole configuration document."""
    data, lines = parse_yaml(text, source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [ConfigIssue("the document must be a mapping with a `gateways:` list", source=source, line=1)]
        )
    return validate(Document, data, source=source, lines=lines)


def _read_text(p: Path, what: str) -> str:
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file; pass the path of {what}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read it: {exc}") from None


def load_file(path: str | Path) -> Document:
    """Read and validate ``path``; a missing file is a ConfigError naming it."""
    p = Path(path)
    return load_document(_read_text(p, "a switchboard.yaml"), str(p))


def load_yaml_model(model: type[M], path: Path, *, schema_hint: str = "switchboard schema") -> M:
    """Read one YAML file holding one ``model`` (errors name the file, line and field)."""
    text = _read_text(path, f"a {model.__name__} file")
    data, lines = parse_yaml(text, str(path))
    if not isinstance(data, dict):
        raise ConfigError(
            [ConfigIssue(f"the file must be a mapping of {model.__name__} fields", source=str(path), line=1)]
        )
    return validate(model, data, source=str(path), lines=lines, schema_hint=schema_hint)


def json_schema() -> dict[str, Any]:
    """The JSON Schema editors can use for ``switchboard.yaml``."""
    schema = Document.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Switchboard configuration"
    return schema
