"""The connector catalog: packaged SaaS platforms (ADR 0020, docs/connectors.md).

Ours live in ``connectors/`` next to the API documents in ``specs/``; users add theirs in
the folder ``SWITCHBOARD_CONNECTORS_DIR`` names, and theirs replace ours by name. A
connector becomes a target (``kind: connector``) served by the OpenAPI provider with the
connector's curation applied; enabling one also makes the credential provider its users
consent to (per-user OAuth, authorization code with PKCE) or that holds an API key.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from gateway.config import (
    ApiKeyCredential,
    AuthorizationCode,
    ConnectorTarget,
    GatewaySpec,
    Model,
    Name,
    OpenApiTarget,
    RateLimitSpec,
    SecretRef,
    ShapeSpec,
    validate,
)
from gateway.connectors._format import Connector, ConnectorOperation, load_connector
from gateway.core.errors import ConfigError, ConfigIssue
from gateway.openapi.compiler import Compiled, Compiler, tool_name
from gateway.openapi.document import open_document
from gateway.openapi.shaping import compile_shape

__all__ = [
    "BUILTIN",
    "Connector",
    "ConnectorOperation",
    "EnableRequest",
    "Entry",
    "catalog",
    "check",
    "checked",
    "connector_json_schema",
    "describe",
    "enable",
    "expand",
    "find",
    "load_connector",
]


def _shipped(folder: str) -> Path:
    """A data folder that ships inside the package: pyproject.toml maps the repository's
    top-level ``connectors/`` and ``specs/`` to ``gateway/_data/`` in the wheel (a connector's
    ``spec: ../specs/x.yaml`` holds in both places); a source checkout has them at its top."""
    packaged = Path(str(resources.files("gateway"))) / "_data" / folder
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / folder


BUILTIN = _shipped("connectors")
ENV_DIR = "SWITCHBOARD_CONNECTORS_DIR"


@dataclass(frozen=True)
class Entry:
    """A connector and where it came from."""

    connector: Connector
    path: Path
    origin: Literal["built-in", "user"]

    @property
    def spec_path(self) -> Path:
        spec = Path(self.connector.spec)
        return spec if spec.is_absolute() else (self.path.parent / spec).resolve()


@dataclass(frozen=True)
class Catalog:
    entries: dict[str, Entry]
    problems: list[ConfigIssue]  # files that did not load (the others still do)


_cache: dict[tuple[Any, ...], Catalog] = {}


def _files(folder: Path) -> list[Path]:
    return sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])


def catalog(user_dir: Path | None = None) -> Catalog:
    """Ours, then the user's (theirs replace ours by name). Re-read when a file changes."""
    if user_dir is None and os.environ.get(ENV_DIR):
        user_dir = Path(os.environ[ENV_DIR])
    folders: list[tuple[Literal["built-in", "user"], Path]] = [("built-in", BUILTIN)]
    if user_dir is not None:
        if not user_dir.is_dir():
            raise ConfigError(f"{user_dir}: the connectors folder ({ENV_DIR}) does not exist")
        folders.append(("user", user_dir))
    listing = [(origin, p) for origin, folder in folders for p in _files(folder)]
    key = tuple((origin, str(p), p.stat().st_mtime_ns) for origin, p in listing)
    hit = _cache.get(key)
    if hit is not None:
        return hit
    entries: dict[str, Entry] = {}
    problems: list[ConfigIssue] = []
    for origin, path in listing:
        try:
            connector = load_connector(path)
        except ConfigError as exc:
            problems += exc.issues
            continue
        earlier = entries.get(connector.name)
        if earlier is not None and earlier.origin == origin:
            problems.append(
                ConfigIssue(
                    f"connector {connector.name!r} is also defined in {earlier.path}", source=str(path)
                )
            )
            continue
        entries[connector.name] = Entry(connector, path, origin)
    _cache.clear()
    _cache[key] = result = Catalog(entries, problems)
    return result


def find(name: str, user_dir: Path | None = None) -> Entry:
    """One connector by name; a ConfigError names the ones there are (and files that failed)."""
    found = catalog(user_dir)
    entry = found.entries.get(name)
    if entry is None:
        known = ", ".join(sorted(found.entries)) or "none"
        broken = [i for i in found.problems if Path(i.source or "").stem == name]
        raise ConfigError(
            broken or f"no connector named {name!r}; the catalog has: {known} (`switchboard connectors list`)"
        )
    return entry


def compile_document(entry: Entry) -> Compiled:
    doc = open_document(str(entry.spec_path), base_dir=entry.path.parent, fetch_url=None)
    return Compiler(doc).compile()


def _doc_tool(op: ConnectorOperation) -> str:
    return tool_name(op.operation, "", "")


def check(entry: Entry, compiled: Compiled | None = None) -> list[ConfigIssue]:
    """What is wrong between a connector and its API document (empty: nothing)."""
    c = entry.connector
    src = str(entry.path)
    try:
        compiled = compiled or compile_document(entry)
    except ConfigError as exc:
        return [
            ConfigIssue(f"spec {c.spec}: {i.message}", i.location, i.source or src, i.line)
            for i in exc.issues
        ]
    issues: list[ConfigIssue] = []
    schemes = compiled.security_schemes
    for where, scheme in (
        ("credentials.scheme", c.credentials.scheme),
        ("credentials.api_key.scheme", c.credentials.api_key.scheme if c.credentials.api_key else None),
    ):
        if scheme is not None and scheme not in schemes:
            issues.append(
                ConfigIssue(
                    f"the document has no security scheme {scheme!r} ({', '.join(schemes)})", where, src
                )
            )
    tools = {t.name: t for t in compiled.tools}
    for i, op in enumerate(c.operations):
        where = f"operations[{i}]"
        name = _doc_tool(op)
        if name not in compiled.operations:
            issues.append(
                ConfigIssue(f"the document has no operationId {op.operation!r}", f"{where}.operation", src)
            )
            continue
        props = (tools[name].input_schema.get("properties") or {}) if name in tools else {}
        for arg in op.arguments:
            if arg not in props:
                issues.append(
                    ConfigIssue(f"{op.operation} has no argument {arg!r}", f"{where}.arguments.{arg}", src)
                )
        try:
            compile_shape(name, _shape(op, None), compiled.operations, "")
        except ConfigError as exc:
            issues += [ConfigIssue(e.message, f"{where}.paging", src) for e in exc.issues]
    return issues


_checked: dict[tuple[str, int, int], list[ConfigIssue]] = {}


def checked(entry: Entry) -> list[ConfigIssue]:
    """``check``, remembered until the connector or its document changes (compiling a
    document takes tens of milliseconds; call it off the event loop)."""
    try:
        key = (str(entry.path), entry.path.stat().st_mtime_ns, entry.spec_path.stat().st_mtime_ns)
    except OSError:
        return check(entry)
    hit = _checked.get(key)
    if hit is None:
        hit = _checked[key] = check(entry)
    return hit


def _shape(op: ConnectorOperation, fields: Sequence[str] | None) -> ShapeSpec:
    return ShapeSpec(
        items=op.items, fields=list(fields) if fields is not None else op.fields, paging=op.paging
    )


def expand(target: ConnectorTarget, entry: Entry) -> OpenApiTarget:
    """The OpenAPI target a connector target runs as (tools still under the document's names)."""
    c = entry.connector
    unknown = set(target.fields) - {op.name for op in c.operations}
    if unknown:
        raise ConfigError(
            f"target {target.name!r}: fields names tools the connector {c.name!r} does not have: "
            f"{', '.join(sorted(unknown))}"
        )
    credentials = {}
    if target.credential is not None:
        credentials[target.credential_scheme or c.credentials.scheme] = SecretRef(provider=target.credential)
    return OpenApiTarget(
        name=target.name,
        kind="openapi",
        description=target.description or c.description,
        spec=str(entry.spec_path),
        base_url=target.base_url or c.base_url,
        server_variables=target.server_variables,
        credentials=credentials,
        headers={**c.headers, **target.headers},
        timeout_seconds=target.timeout_seconds,
        max_response_bytes=target.max_response_bytes,
        shape={_doc_tool(op): _shape(op, target.fields.get(op.name)) for op in c.operations},
        failure=c.failure,
    )


def curation(c: Connector) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The renames, descriptions and fixed arguments (by document tool name), and the tools shown."""
    overrides = {
        _doc_tool(op): {
            k: v
            for k, v in (
                ("name", op.name),
                ("description", op.description),
                ("title", op.title),
                ("arguments", op.arguments),
            )
            if v
        }
        for op in c.operations
    }
    return overrides, [op.name for op in c.operations]


def describe(entry: Entry) -> dict[str, Any]:
    """A connector for `connectors show` and the admin API."""
    c = entry.connector
    oauth = c.credentials.oauth
    return {
        "name": c.name,
        "title": c.title,
        "description": c.description,
        "origin": entry.origin,
        "file": str(entry.path),
        "spec": str(entry.spec_path),
        "base_url": c.base_url,
        "server_variables": c.server_variables,
        "oauth": {
            "preset": oauth.preset,
            "authorize_url": oauth.authorize_url,
            "token_url": oauth.token_url,
            "scopes": c.scopes(),
        },
        "api_key": c.credentials.api_key.model_dump() if c.credentials.api_key else None,
        "rate_limit": c.rate_limit.limit if c.rate_limit else None,
        "tools": [
            {
                "name": op.name,
                "operation": op.operation,
                "description": op.description,
                "scopes": op.scopes,
                "paged": op.paging is not None,
                "fields": op.fields,
            }
            for op in c.operations
        ],
    }


class EnableRequest(Model):
    """What enabling a connector on a gateway takes (CLI flags, admin API body)."""

    target: Name | None = Field(None, description="The target's name (default: the connector's).")
    client_id: str | None = Field(None, description="The OAuth app registered with the platform.")
    client_secret: SecretRef | str | None = Field(
        None,
        description="Its secret (omit for a public client): where to read it, or (admin API) the secret "
        "itself, kept encrypted in the vault.",
    )
    api_key: SecretRef | str | None = Field(
        None,
        description="A static token instead of per-user OAuth: where to read it, or (admin API) the token "
        "itself, kept encrypted in the vault.",
    )
    authorize_url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    token_url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    base_url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    server_variables: dict[str, str] = Field(default_factory=dict)
    tools: list[str] = Field(default_factory=list, description="Only these of its tools (default: all).")


def enable(gateway: GatewaySpec, entry: Entry, request: EnableRequest) -> GatewaySpec:
    """``gateway`` with the connector enabled: a target wired to a credential provider of the
    same name (the connector's OAuth preset with the client id, or a static API key), and
    the platform's rate limit counted per user. Enabling again replaces both."""
    r = request
    target, tools, api_key, client_id = r.target, r.tools, r.api_key, r.client_id
    c = entry.connector
    name = target or c.name
    unknown = sorted(set(tools or ()) - {op.name for op in c.operations})
    if unknown:
        raise ConfigError(
            f"connector {c.name!r} has no tools {', '.join(unknown)} (`connectors show {c.name}`)"
        )
    missing = sorted(set(c.server_variables) - set(r.server_variables))
    if missing and r.base_url is None:
        described = "; ".join(f"{v}: {c.server_variables[v]}" for v in missing)
        raise ConfigError(f"connector {c.name!r} needs values for {', '.join(missing)} ({described})")
    credential: ApiKeyCredential | AuthorizationCode
    scheme = None
    if api_key is not None:
        if c.credentials.api_key is None:
            raise ConfigError(f"connector {c.name!r} takes no API key; enable it with --client-id (OAuth)")
        # A key given as such is kept in the vault by the caller (admin API), not in the config.
        secret = api_key if isinstance(api_key, SecretRef) else None
        credential = ApiKeyCredential(name=name, kind="api_key", secret=secret)
        scheme = c.credentials.api_key.scheme
    else:
        if not client_id:
            raise ConfigError(
                f"connector {c.name!r} signs users in with OAuth: give the client id (and secret) of the "
                f"OAuth app registered with {c.title}"
                + (f", or an API key ({c.credentials.api_key.description})" if c.credentials.api_key else "")
            )
        oauth = c.credentials.oauth
        credential = AuthorizationCode(
            name=name,
            kind="oauth2_authorization_code",
            preset=oauth.preset,
            authorize_url=r.authorize_url or oauth.authorize_url,
            token_url=r.token_url or oauth.token_url,
            client_id=client_id,
            client_secret=r.client_secret if isinstance(r.client_secret, SecretRef) else None,
            scopes=c.scopes(list(tools) if tools else None),
            authorize_params=oauth.authorize_params,
        )
    made = ConnectorTarget(
        name=name,
        kind="connector",
        connector=c.name,
        credential=name,
        credential_scheme=scheme,
        base_url=r.base_url,
        server_variables=dict(r.server_variables),
        include=list(tools or ()),
    )
    _replaceable(gateway, name, c.name)
    providers = [p for p in gateway.credential_providers if p.name != name] + [credential]
    targets = [t for t in gateway.targets if t.name != name] + [made]
    limits = [r for r in gateway.rate_limits if r.tools != [f"{name}___*"]]
    if c.rate_limit is not None:
        limits.append(RateLimitSpec(limit=c.rate_limit.limit, per="caller", tools=[f"{name}___*"]))
    data = gateway.model_dump(mode="json", exclude_defaults=True)
    data.update(
        credential_providers=[p.model_dump(mode="json", exclude_defaults=True) for p in providers],
        targets=[t.model_dump(mode="json", exclude_defaults=True) for t in targets],
        rate_limits=[r.model_dump(mode="json", exclude_defaults=True) for r in limits],
    )
    return validate(GatewaySpec, data, source=f"gateway {gateway.name!r} with connector {c.name!r}")


def _replaceable(gateway: GatewaySpec, name: str, connector: str) -> None:
    """Enabling again replaces what an earlier enable made, never anything else."""
    for t in gateway.targets:
        if t.name == name and not (isinstance(t, ConnectorTarget) and t.connector == connector):
            raise ConfigError(
                f"gateway {gateway.name!r} has a target {name!r} already (not connector {connector!r}); "
                "give another name (--target, or `target` in the request)"
            )
    ours = any(
        t.name == name
        and isinstance(t, ConnectorTarget)
        and t.connector == connector
        and t.credential == name
        for t in gateway.targets
    )
    users = [t.name for t in gateway.targets if t.name != name and name in _providers_named(t)]
    if any(p.name == name for p in gateway.credential_providers) and (users or not ours):
        used = f" that targets {', '.join(users)} use" if users else ""
        raise ConfigError(
            f"gateway {gateway.name!r} has a credential provider {name!r}{used} (not one an earlier enable "
            "made); give the connector's target another name"
        )


def _providers_named(target: Any) -> set[str]:
    """The credential providers a target signs with (OpenAPI `credentials`, MCP and connector
    `credential`)."""
    credential = getattr(target, "credential", None)
    if isinstance(credential, str):
        return {credential}
    refs = [*getattr(target, "credentials", {}).values(), *([credential] if credential else [])]
    return {r.provider for r in refs if getattr(r, "provider", None)}


def connector_json_schema() -> dict[str, Any]:
    """The JSON Schema of a connector file (`switchboard schema --connector`)."""
    schema = Connector.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Switchboard connector"
    return schema
