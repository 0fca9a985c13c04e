"""What only the operator may configure: the gateway host's own capabilities.

The operator is whoever runs the process: the configuration file (``serve --config``,
``switchboard apply``, ``switchboard check``) and the default tenant's admin keys (the
first one is printed by ``serve`` on the operator's terminal). A tenant admin holds an
admin key of any other tenant (``switchboard tenants create``). Both write the same
configuration model; this module says which parts of it reach beyond a tenant:

- programs and code on the host: stdio MCP servers (``command``, ``cwd``, ``env``) that are
  not in a sandbox (``sandbox:``: a tenant's runs there, never on the host), Python import
  paths (function targets, plugin targets, python interceptors);
- the host's own credentials: Lambda targets and interceptors (the gateway's AWS
  identity), ``{env: ...}`` and ``{file: ...}`` secret references;
- the host's disk: an OpenAPI document named by a local path, TLS files (``tls:``);
- the host's network: upstream, token and interceptor URLs that resolve to loopback,
  private, link-local or reserved addresses (the egress guard's rule; the operator
  widens it with ``SWITCHBOARD_EGRESS_ALLOW``).

A tenant admin's change is checked here before anything of it is built or started,
and every refusal names the field and why. A part the operator configured and the
tenant admin sends back unchanged (a GET, edit elsewhere, PUT) is kept as it is.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import anyio

from gateway import egress
from gateway.config import (
    ApiKeyCredential,
    AuthorizationCode,
    ClientCredentials,
    ConnectorTarget,
    FunctionTarget,
    GatewaySpec,
    HttpInterceptor,
    HttpTarget,
    JwtAuth,
    LambdaInterceptor,
    LambdaTarget,
    McpTarget,
    OpenApiTarget,
    PluginTarget,
    PythonInterceptor,
    SecretRef,
    TargetBase,
    TlsFiles,
    TokenExchange,
)
from gateway.core.errors import ConfigError, ConfigIssue

OPERATOR_TENANT = "default"
"""The operator's own tenant: its admin keys are the operator's."""
OPERATOR_ONLY = "is for the operator (the configuration file or the default tenant's admin key)"
_SECRET_HOW = (
    "keep the secret in the vault instead: PUT /admin/v1/gateways/{gateway}/credentials/{provider} "
    '{"secret": ...}'
)

Found = tuple[str, str]  # (field, reason)


def _secret_refs(field: str, ref: SecretRef | None) -> Iterator[Found]:
    if ref is None:
        return
    for kind in ("env", "file"):
        if getattr(ref, kind) is not None:
            what = "an environment variable" if kind == "env" else "a file"
            yield (
                f"{field}.{kind}",
                f"a `{kind}` secret reference reads {what} of the gateway's host, which {OPERATOR_ONLY}; "
                + _SECRET_HOW,
            )


def _tls(field: str, tls: TlsFiles | None) -> Iterator[Found]:
    for name in ("ca_bundle", "client_cert", "client_key"):
        if tls is not None and getattr(tls, name) is not None:
            yield (
                f"{field}.tls.{name}",
                f"a file on the gateway's host, which {OPERATOR_ONLY}; ask the operator to install the "
                "certificate for this upstream",
            )


def _target(field: str, target: TargetBase) -> Iterator[Found]:
    if isinstance(target, OpenApiTarget | HttpTarget):
        yield from _tls(field, target.tls)
    if isinstance(target, FunctionTarget):
        yield (
            f"{field}.functions",
            f"function targets run Python code in the gateway's own process, which {OPERATOR_ONLY}; "
            "serve your tools over HTTP (kind: http, openapi or mcp with a url)",
        )
    elif isinstance(target, PluginTarget):
        yield (
            f"{field}.provider",
            f"plugin targets import Python code into the gateway's own process, which {OPERATOR_ONLY}",
        )
    elif isinstance(target, LambdaTarget):
        yield (
            f"{field}.function_name",
            f"Lambda targets call AWS with the gateway's own AWS credentials, which {OPERATOR_ONLY}; "
            "put the function behind an HTTP endpoint (kind: http or openapi)",
        )
    elif isinstance(target, McpTarget) and target.sandbox is None:  # (in a sandbox: not the host)
        if target.command is not None:
            yield (
                f"{field}.command",
                f"stdio commands start programs on the gateway's host, which {OPERATOR_ONLY}; "
                "run your MCP server in a sandbox (`sandbox: bwrap`), or reach it by its `url`",
            )
        if target.cwd is not None:
            yield f"{field}.cwd", f"a working directory on the gateway's host {OPERATOR_ONLY}"
        if target.env:
            yield f"{field}.env", f"the environment of a program on the gateway's host {OPERATOR_ONLY}"
        for user, credential in target.users.items():
            if credential.env:
                yield (
                    f"{field}.users.{user}.env",
                    f"the environment of a program on the gateway's host {OPERATOR_ONLY}",
                )
    elif isinstance(target, OpenApiTarget):
        if isinstance(target.spec, str) and not target.spec.startswith(("http://", "https://")):
            yield (
                f"{field}.spec",
                f"a local file path reads the gateway host's disk, which {OPERATOR_ONLY}; "
                "give the document's http(s) URL, or the document itself inline",
            )
        for scheme, ref in target.credentials.items():
            yield from _secret_refs(f"{field}.credentials.{scheme}", ref)


def _urls(spec: GatewaySpec, kept: GatewaySpec | None) -> Iterator[tuple[str, str]]:
    """(field, URL) of every place the gateway would connect to for this gateway, in the parts
    that are new or changed against ``kept`` (a part the operator set and the tenant sends back
    as it was keeps its URLs; any change to a part makes all of its URLs new)."""
    old_targets = {t.name: t for t in kept.targets} if kept else {}
    for i, t in enumerate(spec.targets):
        if old_targets.get(t.name) == t:
            continue
        field = f"targets[{i}]"
        if isinstance(t, McpTarget | HttpTarget) and t.url:
            yield f"{field}.url", t.url
        if isinstance(t, OpenApiTarget):
            if isinstance(t.spec, str) and t.spec.startswith(("http://", "https://")):
                yield f"{field}.spec", t.spec
            if t.base_url:
                yield f"{field}.base_url", t.base_url
        if isinstance(t, ConnectorTarget) and t.base_url:
            yield f"{field}.base_url", t.base_url
    # (An authorization URL is where the user's browser goes, not the gateway: not checked.)
    old_providers = {p.name: p for p in kept.credential_providers} if kept else {}
    for j, p in enumerate(spec.credential_providers):
        url = getattr(p, "token_url", None)
        if url and old_providers.get(p.name) != p:
            yield f"credential_providers[{j}].token_url", url
    if isinstance(spec.auth, JwtAuth) and (kept is None or kept.auth != spec.auth):
        for name in ("discovery_url", "jwks_url"):
            url = getattr(spec.auth, name)
            if url:
                yield f"auth.{name}", url
    for k, icp in enumerate(spec.interceptors):
        if isinstance(icp, HttpInterceptor) and (kept is None or icp not in kept.interceptors):
            yield f"interceptors[{k}].url", icp.url


def _host_secrets(spec: GatewaySpec) -> set[str]:
    """The gateway's credential providers whose secret is read from the host (env/file)."""
    out = set()
    for p in spec.credential_providers:
        ref = p.secret if isinstance(p, ApiKeyCredential) else getattr(p, "client_secret", None)
        if isinstance(ref, SecretRef) and (ref.env is not None or ref.file is not None):
            out.add(p.name)
    return out


def _signs_with(target: TargetBase) -> list[tuple[str, str]]:
    """(field within the target, credential provider) of every provider the target signs with."""
    out = []
    if isinstance(target, OpenApiTarget):
        out += [
            (f"credentials.{k}.provider", r.provider) for k, r in target.credentials.items() if r.provider
        ]
    if isinstance(target, McpTarget) and target.credential is not None:
        out.append(("credential.provider", target.credential.provider))
    if isinstance(target, ConnectorTarget) and target.credential is not None:
        out.append(("credential", target.credential))
    return out


def _static(spec: GatewaySpec, kept: GatewaySpec | None) -> Iterator[Found]:
    old_targets = {t.name: t for t in kept.targets} if kept else {}
    host_secrets = _host_secrets(spec)
    for i, target in enumerate(spec.targets):
        if old_targets.get(target.name) != target:
            yield from _target(f"targets[{i}]", target)
            for field, provider in _signs_with(target):
                if provider in host_secrets:  # the operator's secret, sent where the tenant says
                    yield (
                        f"targets[{i}].{field}",
                        f"credential provider {provider!r} reads its secret from the gateway's host (the "
                        "operator's); only the targets the operator set may use it. Use a provider whose "
                        "secret is kept in the vault",
                    )
    old_providers = {p.name: p for p in kept.credential_providers} if kept else {}
    for j, p in enumerate(spec.credential_providers):
        if old_providers.get(p.name) == p:
            continue
        field = f"credential_providers[{j}]"
        if isinstance(p, ApiKeyCredential):
            yield from _secret_refs(f"{field}.secret", p.secret)
        elif isinstance(p, ClientCredentials | AuthorizationCode | TokenExchange):
            yield from _secret_refs(f"{field}.client_secret", p.client_secret)
    old_interceptors = list(kept.interceptors) if kept else []
    for k, icp in enumerate(spec.interceptors):
        if icp in old_interceptors:
            continue
        if isinstance(icp, HttpInterceptor):
            yield from _tls(f"interceptors[{k}]", icp.tls)
        elif isinstance(icp, PythonInterceptor):
            yield (
                f"interceptors[{k}].function",
                f"python interceptors run code in the gateway's own process, which {OPERATOR_ONLY}; "
                "use an http interceptor",
            )
        elif isinstance(icp, LambdaInterceptor):
            yield (
                f"interceptors[{k}].function_name",
                "Lambda interceptors call AWS with the gateway's own AWS credentials, which "
                f"{OPERATOR_ONLY}; use an http interceptor",
            )


def _network(spec: GatewaySpec, kept: GatewaySpec | None, allow: Sequence[str]) -> Iterator[Found]:
    hosts: dict[str, str | None] = {}
    for field, url in _urls(spec, kept):
        host = urlsplit(url).hostname or ""
        if host not in hosts:
            try:
                egress.check(url, list(allow))
                hosts[host] = None
            except egress.Unresolvable:
                # Not refused: the call fails at its time, and DNS being down must not block a
                # change (every connection is checked when it is made: egress.Reach).
                hosts[host] = None
            except egress.EgressRefused as exc:
                hosts[host] = str(exc)
        reason = hosts[host]
        if reason is not None:
            yield (
                field,
                f"{reason.split(': ', 1)[-1]}; a tenant's upstreams are reached only at public "
                "addresses (the operator can allow more with SWITCHBOARD_EGRESS_ALLOW)",
            )


def is_operator(tenant: str) -> bool:
    """Whether an admin key of ``tenant`` is the operator's."""
    return tenant == OPERATOR_TENANT


async def check_tenant_change(spec: GatewaySpec, kept: GatewaySpec | None, *, allow: Sequence[str]) -> None:
    """Refuse a tenant admin's ``spec`` if it reaches beyond the tenant.

    Args:
        spec: The gateway as it would be after the change.
        kept: The gateway as stored now (None: a new gateway); what is unchanged is kept.
        allow: The operator's egress allowances (``SWITCHBOARD_EGRESS_ALLOW``).

    Raises:
        ConfigError: naming every field refused and why; nothing was built or stored.
    """
    found = list(_static(spec, kept))
    found += await anyio.to_thread.run_sync(lambda: list(_network(spec, kept, allow)))
    if found:
        raise ConfigError([ConfigIssue(reason, field, "request body") for field, reason in found])


def import_object(path: str, what: str) -> Any:
    """Import ``package.module:attr`` (a Python import path: the operator's only); a ConfigError
    says what could not be found."""
    module_name, _, attr = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{what} {path!r}: cannot import module {module_name!r}: {exc}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"{what} {path!r}: module {module_name!r} has no attribute {attr!r}") from None
    return obj
