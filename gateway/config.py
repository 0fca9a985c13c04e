"""The configuration model: one YAML document, a discriminated union on ``kind``.

The same model is read from ``switchboard.yaml``, applied by ``switchboard
apply -f`` and written through the admin API; all three compile to the same
runtime form (``gateway.runtime``). Errors name the file, the line and the
field, and say how to fix it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway.core.errors import ConfigError, ConfigIssue
from gateway.core.model import Model as Model
from gateway.core.model import Name as Name
from gateway.openapi.shape_spec import FailureSpec as FailureSpec
from gateway.openapi.shape_spec import PagingSpec as PagingSpec
from gateway.openapi.shape_spec import ShapeSpec as ShapeSpec
from gateway.yaml_lines import parse_yaml as parse_yaml

M = TypeVar("M")


class ToolDef(Model):
    """A tool declared in config (for targets that cannot describe their own tools)."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,128}$")]
    description: str = ""
    title: str | None = None
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    output_schema: dict[str, Any] | None = None
    annotations: dict[str, Any] | None = None


class Override(Model):
    """Per-tool changes to what the model sees."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,128}$")] | None = None
    description: str | None = None
    title: str | None = None
    arguments: dict[str, Any] = Field(
        default_factory=dict, description="Fixed argument values, hidden from the model and always sent."
    )
    annotations: dict[str, Any] | None = Field(
        None, description="Tool annotations to set (readOnlyHint, destructiveHint, idempotentHint, ...)."
    )


class SecretRef(Model):
    """Where a secret comes from; the config holds the reference, never the secret."""

    env: str | None = Field(None, description="Name of an environment variable holding the secret.")
    file: str | None = Field(None, description="Path of a file holding the secret (final newline dropped).")
    provider: str | None = Field(
        None, description="A credential provider of the gateway (per-user OAuth, 2LO, a key in the vault)."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if sum(v is not None for v in (self.env, self.file, self.provider)) != 1:
            raise ValueError("give exactly one of `env`, `file` or `provider`")
        return self


class TlsFiles(Model):
    """TLS for one HTTP(S) upstream. Paths of files on the gateway's host: the operator's only."""

    ca_bundle: str | None = Field(
        None, description="PEM file of the CAs to trust for this upstream, instead of the system's store."
    )
    client_cert: str | None = Field(None, description="PEM client certificate (mTLS); needs `client_key`.")
    client_key: str | None = Field(None, description="PEM private key of `client_cert` (unencrypted).")

    @model_validator(mode="after")
    def _pair(self) -> TlsFiles:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("give `client_cert` and `client_key` together")
        return self


class TargetBase(Model):
    """Fields every target kind has."""

    name: Name
    description: str = ""
    include: list[str] = Field(default_factory=list, description="Only tools matching these globs.")
    exclude: list[str] = Field(default_factory=list, description="Hide tools matching these globs.")
    overrides: dict[str, Override] = Field(
        default_factory=dict, description="Keyed by the target's tool name."
    )
    timeout_seconds: float = Field(60.0, gt=0, le=3600, description="Deadline of one call to this target.")


class FunctionRef(Model):
    """One Python callable exposed as a tool."""

    function: Annotated[str, Field(pattern=r"^[\w.]+:[\w.]+$", description="'package.module:callable'")]
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,128}$")] | None = None
    description: str | None = None
    input_schema: dict[str, Any] | None = Field(
        None, description="Overrides the schema derived from type hints."
    )


class FunctionTarget(TargetBase):
    """Python callables by import path, run in the gateway process (sync ones in a worker thread)."""

    kind: Literal["function"]
    functions: list[Annotated[str, Field(pattern=r"^[\w.]+:[\w.]+$")] | FunctionRef] = Field(min_length=1)


class LambdaTarget(TargetBase):
    """An AWS Lambda function serving one or more tools (the AgentCore Gateway convention)."""

    kind: Literal["lambda"]
    function_name: str = Field(description="Name or ARN of the function.")
    qualifier: str | None = Field(None, description="Version or alias.")
    region: str | None = None
    endpoint_url: str | None = Field(
        None, description="Lambda API endpoint override (LocalStack and the like)."
    )
    tools: list[ToolDef] = Field(min_length=1)


class HttpTarget(TargetBase):
    """An HTTP function: each call POSTs the arguments as JSON to ``url``."""

    kind: Literal["http"]
    url: Annotated[str, Field(pattern=r"^https?://")]
    headers: dict[str, str] = Field(default_factory=dict)
    tools: list[ToolDef] = Field(min_length=1)
    tls: TlsFiles | None = Field(None, description="CA bundle and client certificate (file paths).")


class OpenApiTarget(TargetBase):
    """An API described by an OpenAPI 3.0/3.1 or Swagger 2.0 document: one tool per operation."""

    kind: Literal["openapi"]
    spec: str | dict[str, Any] = Field(description="A file path, an http(s) URL, or the document inline.")
    base_url: Annotated[str, Field(pattern=r"^https?://")] | None = Field(
        None, description="Overrides the document's servers."
    )
    server_variables: dict[str, str] = Field(default_factory=dict)
    include_tags: list[str] = Field(default_factory=list)
    exclude_tags: list[str] = Field(default_factory=list)
    include_paths: list[str] = Field(default_factory=list, description="Globs: '/pets/*' or 'GET /pets/*'.")
    exclude_paths: list[str] = Field(default_factory=list)
    credentials: dict[str, SecretRef] = Field(
        default_factory=dict,
        description="Secrets by security scheme name: API key, bearer token, or 'user:password' for basic.",
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Sent with every request.")
    retries: int = Field(
        2, ge=0, le=5, description="Retries of idempotent operations (connect errors, 502-504)."
    )
    tls: TlsFiles | None = Field(None, description="CA bundle and client certificate (file paths).")
    max_response_bytes: int = Field(1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    shape: dict[str, ShapeSpec] = Field(
        default_factory=dict,
        description="Per operation (the document's tool name): uniform paging and trimmed results.",
    )
    failure: FailureSpec | None = Field(
        None, description="How the API reports a failure in a successful HTTP answer (Slack's `ok: false`)."
    )


class McpUserCredential(Model):
    """One user's credential for an upstream MCP server (until identity's vault holds it)."""

    headers: dict[str, str] = Field(default_factory=dict, description="Sent to a remote server.")
    env: dict[str, str] = Field(default_factory=dict, description="Given to a local server.")


class McpCredentialRef(Model):
    """A credential provider whose secret authenticates each user's session to the server."""

    provider: str
    header: str = "Authorization"
    prefix: str = Field("Bearer ", description="Put before the secret in the header.")


class McpTarget(TargetBase):
    """A remote MCP server (Streamable HTTP, either protocol era) or a local one started over stdio."""

    kind: Literal["mcp"]
    url: Annotated[str, Field(pattern=r"^https?://")] | None = Field(
        None, description="A remote server's endpoint."
    )
    command: list[str] | None = Field(None, min_length=1, description="argv of a local server (stdio).")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment for the local server.")
    cwd: str | None = None
    headers: dict[str, str] = Field(default_factory=dict, description="Sent to a remote server.")
    protocol: Literal["auto", "legacy", "2026-07-28"] = Field(
        "auto", description="auto: discover, else the initialize handshake."
    )
    transport: Literal["streamable_http", "sse"] = Field(
        "streamable_http",
        description="For `url`: Streamable HTTP, or the deprecated HTTP+SSE transport (2024-11-05) "
        "that some servers still serve (`url` is then the SSE endpoint, e.g. .../sse).",
    )
    max_result_bytes: int = Field(1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    pin_tools: bool = Field(
        True,
        description="Record each tool definition when approved; hide a tool whose definition changes "
        "until an administrator approves it again.",
    )
    approve_new_tools: bool = Field(
        False, description="Approve tools the server adds later without review (they are still pinned)."
    )
    sessions: Literal["shared", "per_user"] = Field(
        "shared",
        description="per_user: each caller's calls go out on a session opened with that caller's "
        "credential (`users`); lists come from the shared session.",
    )
    users: dict[str, McpUserCredential] = Field(
        default_factory=dict, description="Per-user credentials by user (principal subject), for per_user."
    )
    credential: McpCredentialRef | None = Field(
        None, description="per_user: each user's secret from this credential provider (e.g. OAuth, 3LO)."
    )
    max_user_sessions: int = Field(100, ge=1, le=10_000)
    user_session_idle_seconds: float = Field(300.0, gt=0)

    @model_validator(mode="after")
    def _one_transport(self) -> McpTarget:
        if (self.url is None) == (self.command is None):
            raise ValueError("give exactly one of `url` (a remote server) or `command` (a local one)")
        if self.transport == "sse" and self.url is None:
            raise ValueError("`transport: sse` is for remote servers: give `url` (the SSE endpoint)")
        if (self.users or self.credential) and self.sessions != "per_user":
            raise ValueError(
                "`users` and `credential` only apply with `sessions: per_user`; set it or remove them"
            )
        if self.users and self.credential:
            raise ValueError("give `users` or `credential`, not both")
        return self


class PluginTarget(TargetBase):
    """A ToolProvider class of your own, by import path (tools, resources and prompts)."""

    kind: Literal["plugin"]
    provider: Annotated[str, Field(pattern=r"^[\w.]+:[\w.]+$", description="'package.module:Class'")]
    options: dict[str, Any] = Field(default_factory=dict)


class ConnectorTarget(TargetBase):
    """A SaaS platform from the connector catalog (`switchboard connectors list`).

    `include`, `exclude` and `overrides` name the connector's tools."""

    kind: Literal["connector"]
    connector: Name = Field(description="The connector's name in the catalog.")
    credential: str | None = Field(
        None,
        description="The gateway's credential provider that signs calls: the connector's OAuth preset "
        "(`switchboard connectors enable` makes it) or an api_key provider.",
    )
    credential_scheme: str | None = Field(
        None, description="The document's security scheme the credential fills (default: the connector's)."
    )
    base_url: Annotated[str, Field(pattern=r"^https?://")] | None = Field(
        None, description="Overrides the connector's base URL (a test server, a data-centre host)."
    )
    server_variables: dict[str, str] = Field(
        default_factory=dict, description="Values of the document's server variables (a Salesforce instance)."
    )
    fields: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Per tool: the fields results keep, instead of the connector's (['*']: all).",
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Sent with every request.")
    max_response_bytes: int = Field(1024 * 1024, ge=1024, le=64 * 1024 * 1024)


Target = Annotated[
    FunctionTarget | LambdaTarget | HttpTarget | OpenApiTarget | McpTarget | PluginTarget | ConnectorTarget,
    Field(discriminator="kind"),
]
TARGET_KINDS = ("function", "lambda", "http", "openapi", "mcp", "plugin", "connector")


class NoAuth(Model):
    """No inbound authentication: served to loopback clients only."""

    kind: Literal["none"] = "none"


class ApiKeyAuth(Model):
    """Callers send a key made for this gateway (admin API), as ``Authorization: Bearer`` or ``X-Api-Key``."""

    kind: Literal["api_key"]
    scopes: list[str] = Field(default_factory=list, description="Scopes every key must carry.")


class ClaimRuleSpec(Model):
    """A condition on one token claim: exactly one of equals, contains, contains_any."""

    claim: str
    equals: Any = None
    contains: Any = None
    contains_any: list[Any] | None = None

    @model_validator(mode="after")
    def _one_test(self) -> ClaimRuleSpec:
        given = [k for k in ("equals", "contains", "contains_any") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of `equals`, `contains` or `contains_any`")
        return self


class JwtAuth(Model):
    """Bearer JWTs from an OIDC provider (or any issuer with a JWKS)."""

    kind: Literal["jwt"]
    discovery_url: Annotated[str, Field(pattern=r"^https?://")] | None = Field(
        None, description="The provider's .well-known/openid-configuration (or oauth-authorization-server)."
    )
    jwks_url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    issuers: list[str] = Field(
        default_factory=list, description="Accepted iss (default: the discovered one)."
    )
    audiences: list[str] = Field(
        default_factory=list,
        description="Accepted aud (RFC 8707). Default: this gateway's MCP URL (SWITCHBOARD_PUBLIC_URL).",
    )
    clients: list[str] = Field(default_factory=list, description="Accepted azp/client_id; empty: any.")
    scopes: list[str] = Field(default_factory=list, description="Scopes every token must carry.")
    claims: list[ClaimRuleSpec] = Field(default_factory=list)
    tenant_claim: str | None = Field(None, description="The claim naming the caller's tenant.")
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256", "PS256", "EdDSA"])

    @model_validator(mode="after")
    def _key_source(self) -> JwtAuth:
        if not self.discovery_url and not self.jwks_url:
            raise ValueError("give `discovery_url` (or `jwks_url`) so the gateway can check signatures")
        return self


Auth = Annotated[NoAuth | ApiKeyAuth | JwtAuth, Field(discriminator="kind")]


class ApiKeyCredential(Model):
    """A key for an upstream: kept in the vault (admin API) or read from `secret`."""

    name: Name
    kind: Literal["api_key"]
    secret: SecretRef | None = Field(
        None, description="Where the key is read from (else: set it in the vault)."
    )


class ClientCredentials(Model):
    """OAuth 2.0 client credentials (2LO): a token for the gateway itself."""

    name: Name
    kind: Literal["oauth2_client_credentials"]
    token_url: Annotated[str, Field(pattern=r"^https?://")]
    client_id: str
    client_secret: SecretRef
    scopes: list[str] = Field(default_factory=list)
    resource: str | None = Field(None, description="RFC 8707 resource indicator sent with token requests.")


class AuthorizationCode(Model):
    """OAuth 2.0 authorization code with PKCE (3LO): each user consents once; tokens per user."""

    name: Name
    kind: Literal["oauth2_authorization_code"]
    preset: Literal["github", "google", "microsoft", "slack", "salesforce", "atlassian"] | None = Field(
        None, description="A vendor's endpoints and quirks; authorize_url/token_url override them."
    )
    authorize_url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    token_url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    client_id: str
    client_secret: SecretRef | None = Field(None, description="Omit for a public client (PKCE alone).")
    scopes: list[str] = Field(default_factory=list)
    resource: str | None = None
    authorize_params: dict[str, str] = Field(
        default_factory=dict, description="Extra authorization parameters."
    )

    @model_validator(mode="after")
    def _endpoints(self) -> AuthorizationCode:
        if self.preset is None and (self.authorize_url is None or self.token_url is None):
            raise ValueError("give a `preset`, or both `authorize_url` and `token_url`")
        return self


class TokenExchange(Model):
    """OAuth 2.0 token exchange (RFC 8693): the caller's own token (auth: jwt) traded at its
    issuer for one meant for the upstream; the caller's token itself never goes upstream."""

    name: Name
    kind: Literal["oauth2_token_exchange"]
    token_url: Annotated[str, Field(pattern=r"^https?://")]
    client_id: str
    client_secret: SecretRef
    audience: str | None = Field(None, description="The upstream the new token is for.")
    resource: str | None = None
    scopes: list[str] = Field(default_factory=list)


CredentialProvider = Annotated[
    ApiKeyCredential | ClientCredentials | AuthorizationCode | TokenExchange, Field(discriminator="kind")
]


class RateLimitSpec(Model):
    """A rate limit or quota: at most `limit` calls per caller, tool, target, caller and tool, or gateway."""

    limit: str = Field(description="'100/minute', '10 per second', '1000/day' (the limits library's syntax).")
    per: Literal["caller", "tool", "target", "caller_tool", "gateway"] = "caller"
    tools: list[str] = Field(default_factory=list, description="Globs of tool names it counts; empty: all.")

    @field_validator("limit")
    @classmethod
    def _parses(cls, limit: str) -> str:
        from gateway.ratelimit import parse_rule

        parse_rule(limit, "caller", ())
        return limit


class CacheSpec(Model):
    """Cache results for `ttl_seconds` of the tools matching `tools` (globs); with no `tools`, of the
    tools the configuration declares `readOnlyHint: true` (a target's overrides or tool definitions)."""

    tools: list[str] = Field(default_factory=list)
    ttl_seconds: int = Field(ge=1, le=7 * 24 * 3600)


class ResilienceSpec(Model):
    """Deadline, retries, circuit breaker and concurrency cap (see gateway/resilience.py)."""

    call_timeout_seconds: float = Field(60.0, gt=0, le=3600)
    retries: int = Field(
        2,
        ge=0,
        le=5,
        description="Only for tools the configuration declares idempotentHint or readOnlyHint (overrides).",
    )
    retry_ratio: float = Field(0.1, ge=0, le=1, description="Retries allowed per call, on average.")
    failures: int = Field(5, ge=1, le=1000, description="Failures in a row that open a target's breaker.")
    open_seconds: float = Field(30.0, gt=0, le=3600)
    max_concurrent: int = Field(64, ge=1, le=10_000, description="Calls in flight per target.")


class _InterceptorBase(Model):
    # (not `on`: YAML 1.1 reads a bare `on` as true)
    phase: Literal["request", "response"] = Field(
        description="Before the upstream (request) or after (response)."
    )
    tools: list[str] = Field(default_factory=list, description="Globs of tool names; empty: every tool.")


class PythonInterceptor(_InterceptorBase):
    """A Python callable (sync or async) taking and returning the JSON envelope."""

    kind: Literal["python"]
    function: Annotated[str, Field(pattern=r"^[\w.]+:[\w.]+$", description="'package.module:callable'")]


class HttpInterceptor(_InterceptorBase):
    """An HTTP endpoint: the envelope POSTed as JSON, the answer read as JSON."""

    kind: Literal["http"]
    url: Annotated[str, Field(pattern=r"^https?://")]
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float = Field(10.0, gt=0, le=300)
    tls: TlsFiles | None = Field(None, description="CA bundle and client certificate (file paths).")


class LambdaInterceptor(_InterceptorBase):
    """An AWS Lambda function invoked with the envelope as its payload."""

    kind: Literal["lambda"]
    function_name: str
    region: str | None = None
    endpoint_url: str | None = None
    timeout_seconds: float = Field(10.0, gt=0, le=300)


class RedactInterceptor(Model):
    """Built in: masks secrets and PII in results."""

    kind: Literal["redact"]
    phase: Literal["response"] = "response"
    tools: list[str] = Field(default_factory=list)


InterceptorSpec = Annotated[
    PythonInterceptor | HttpInterceptor | LambdaInterceptor | RedactInterceptor, Field(discriminator="kind")
]


class ApprovalSpec(Model):
    """Calls to these tools wait for a person's approval (the admin API, or asked in the client)."""

    tools: list[str] = Field(default_factory=list, description="Globs of tool names; empty: every tool.")
    timeout_seconds: float = Field(300.0, gt=0, le=7 * 24 * 3600)
    approver: Literal["admin", "client"] = Field(
        "admin",
        description="Who decides: 'admin' (default) holds the call for an administrator (admin API), "
        "never the caller; 'client' asks the calling client (elicitation), which proves only that "
        "the caller's own client said yes: an automated client can answer for itself.",
    )


class GatewaySpec(Model):
    """One gateway: a URL serving the tools of its targets."""

    name: Name
    description: str = ""
    auth: Auth = Field(default_factory=NoAuth, description="Who may call this gateway.")
    credential_providers: list[CredentialProvider] = Field(
        default_factory=list, description="How the gateway authenticates to upstreams (targets name them)."
    )
    policies: list[str] = Field(
        default_factory=list,
        description="Cedar policies deciding every tools/call (principal User, action the tool, resource "
        "the target); once any exist, what none permits is denied.",
    )
    policy_mode: Literal["enforce", "log_only"] = Field(
        "enforce", description="log_only: allow everything and log what the policies would deny."
    )
    rate_limits: list[RateLimitSpec] = Field(default_factory=list)
    approvals: list[ApprovalSpec] = Field(
        default_factory=list, description="Tools that need a person's approval before they run."
    )
    interceptors: list[InterceptorSpec] = Field(
        default_factory=list, description="Run in order before (request) and after (response) each call."
    )
    resilience: ResilienceSpec | None = Field(
        None, description="Per-call deadline, bounded retries, a breaker and a concurrency cap per target."
    )
    cache: list[CacheSpec] = Field(
        default_factory=list,
        description="Cache results, per caller, of the tools a rule names, or that the configuration "
        "declares read-only (overrides' annotations); an upstream's own readOnlyHint is not trusted.",
    )
    prefix_tools: bool = Field(
        True, description="Publish tools as '{target}___{tool}'. Off needs one target."
    )
    max_tool_name_length: int = Field(64, ge=16, le=128)
    targets: list[Target] = Field(default_factory=list)

    @field_validator("targets")
    @classmethod
    def _unique_targets(cls, targets: list[TargetBase]) -> list[TargetBase]:
        return _unique(targets, "targets", "per gateway")

    @model_validator(mode="after")
    def _providers_exist(self) -> GatewaySpec:
        names = [p.name for p in self.credential_providers]
        if len(set(names)) != len(names):
            raise ValueError("credential provider names must be unique per gateway")
        for target in self.targets:
            refs: dict[str, SecretRef | McpCredentialRef] = dict(getattr(target, "credentials", {}))
            if isinstance(target, McpTarget) and target.credential is not None:
                refs["credential"] = target.credential
            if isinstance(target, ConnectorTarget) and target.credential is not None:
                refs["credential"] = SecretRef(provider=target.credential)
            for scheme, ref in refs.items():
                if ref.provider is not None and ref.provider not in names:
                    raise ValueError(
                        f"target {target.name!r}: credentials.{scheme} names credential provider "
                        f"{ref.provider!r}, which this gateway does not define (credential_providers: "
                        f"{', '.join(names) or 'none'})"
                    )
        return self


class Document(Model):
    """The whole ``switchboard.yaml``."""

    gateways: list[GatewaySpec] = Field(default_factory=list)

    @field_validator("gateways")
    @classmethod
    def _unique_gateways(cls, gateways: list[GatewaySpec]) -> list[GatewaySpec]:
        return _unique(gateways, "gateways", "")


N = TypeVar("N", TargetBase, "GatewaySpec")


def _unique(items: list[N], what: str, scope: str) -> list[N]:
    seen: set[str] = set()
    for item in items:
        if item.name in seen:
            raise ValueError(
                f"two {what} are named {item.name!r}; {what[:-1]} names must be unique {scope}".rstrip()
            )
        seen.add(item.name)
    return items


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
    for part in loc:
        if (
            isinstance(part, str)
            and part in _KIND_TAGS
            and out
            and (isinstance(out[-1], int) or out[-1] == "auth")
        ):
            continue
        if isinstance(part, str) and (part.startswith("function-after") or "[" in part):
            continue
        out.append(part)
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
