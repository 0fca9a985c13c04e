"""Targets: what a gateway serves tools from, one model per ``kind``, and what they share
(tool overrides, secret references, TLS files)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from gateway.config._shaping import FailureSpec, ShapeSpec
from gateway.core.errors import ConfigError
from gateway.core.model import Model, Name


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


def read_secret(ref: SecretRef, what: str) -> str:
    """The secret an ``env`` or ``file`` reference points at (the operator's: read on the host);
    the error names the reference, never a value."""
    if ref.env is not None:
        value = os.environ.get(ref.env)
        if value is None:
            raise ConfigError(f"{what}: environment variable {ref.env} is not set")
        return value
    assert ref.file is not None
    try:
        return Path(ref.file).read_text(encoding="utf-8").rstrip("\n")
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {ref.file}: {exc.strerror or exc}") from None


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


class ResultsSpec(Model):
    """Trimmed answers (ADR 0047): the list in an answer cut to ``max_items`` items of ``fields``,
    the rest kept for the caller under a cursor."""

    max_items: int = Field(
        20, ge=1, le=1000, description="Items an answer shows; the rest wait under a cursor."
    )
    fields: list[str] = Field(
        default_factory=list, description="Dotted paths kept of each item (of the answer, without a list)."
    )
    items: str | None = Field(
        None, description="Dotted path of the list (default: the answer's longest list)."
    )
    keep_seconds: int = Field(600, ge=10, le=86_400, description="How long the rest stays for its cursor.")


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
    results: ResultsSpec | None = Field(
        None, description="Trim large answers: items limited, fields kept, the rest behind a cursor."
    )


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


class McpSandbox(Model):
    """Where a local MCP server runs when it must not run on the gateway's host (ADR 0035)."""

    backend: Literal["bwrap", "gvisor"] = Field(
        "bwrap",
        description="bwrap: bubblewrap, with a seccomp filter; gvisor: gVisor's runsc (its own kernel).",
    )
    network: Literal["SANDBOX", "PUBLIC"] = Field(
        "SANDBOX",
        description="SANDBOX: no network at all; PUBLIC: public hosts over HTTP(S) through an egress proxy "
        "(never private, loopback, link-local or metadata addresses, nor the gateway itself).",
    )
    memory_mb: int = Field(512, ge=64, le=16384, description="Memory of the server (its files included).")
    disk_mb: int = Field(256, ge=1, le=16384, description="Its work directory (/work) and /tmp together.")
    processes: int = Field(128, ge=8, le=4096, description="Processes and threads at once.")


class McpTarget(TargetBase):
    """A remote MCP server (Streamable HTTP, either protocol era) or a local one started over stdio."""

    kind: Literal["mcp"]
    url: Annotated[str, Field(pattern=r"^https?://")] | None = Field(
        None, description="A remote server's endpoint."
    )
    command: list[str] | None = Field(None, min_length=1, description="argv of a local server (stdio).")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment for the local server.")
    cwd: str | None = None
    sandbox: McpSandbox | None = Field(
        None,
        description="Run the local server (`command`) in a sandbox: no host files but its own work "
        "directory, no network, limits from outside (`sandbox: bwrap` for the defaults). The only "
        "way a tenant may add a local server.",
    )
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

    @field_validator("sandbox", mode="before")
    @classmethod
    def _sandbox_by_name(cls, value: Any) -> Any:
        return {"backend": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_transport(self) -> McpTarget:
        if (self.url is None) == (self.command is None):
            raise ValueError("give exactly one of `url` (a remote server) or `command` (a local one)")
        if self.sandbox is not None and self.command is None:
            raise ValueError("`sandbox` is for a local server: give its `command`")
        if self.sandbox is not None and self.cwd is not None:
            raise ValueError("a sandboxed server runs in its own work directory (/work): remove `cwd`")
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


class CodeInterpreterTarget(TargetBase):
    """A code interpreter: AgentCore's tools (executeCode, executeCommand, files, tasks) over MCP.

    Each caller gets a session of their own (by caller and MCP session), or names one by the
    ``sessionId`` a result gave; each session is a sandbox (ADR 0035)."""

    kind: Literal["code_interpreter"]
    backend: Literal["bwrap", "gvisor", "microvm"] = Field(
        "bwrap",
        description="The sandbox each session runs in: bwrap (bubblewrap), gvisor (runsc) or microvm.",
    )
    network: Literal["SANDBOX", "PUBLIC"] = Field(
        "SANDBOX",
        description="SANDBOX: no network at all; PUBLIC: public hosts over HTTP(S) through an egress proxy "
        "(never private, loopback, link-local or metadata addresses, nor the gateway itself).",
    )
    session_seconds: float = Field(
        3600, gt=0, le=8 * 3600, description="A session ends this long after it started, used or not."
    )
    idle_seconds: float = Field(900, gt=0, le=8 * 3600, description="A session unused this long ends.")
    wall_seconds: float = Field(
        60, gt=0, le=3600, description="The longest one execution may run (CPU time the same)."
    )
    memory_mb: int = Field(1024, ge=64, le=16384, description="Memory of one session (its files included).")
    disk_mb: int = Field(512, ge=1, le=16384, description="Its work directory and /tmp together.")
    max_sessions: int = Field(64, ge=1, le=256, description="Live sessions of this target at once.")
    warm: int = Field(0, ge=0, le=64, description="Sessions kept started ahead of callers.")


class A2aTarget(TargetBase):
    """A remote A2A agent (protocol 1.0), found by its Agent Card: its skills become tools (ADR 0037).

    A call sends the agent one message and waits for its task to end: its updates are relayed
    as MCP progress, its artifacts are the result, a question it asks is put to the user
    (elicitation) where the client can, and a cancelled call cancels the agent's task."""

    kind: Literal["a2a"]
    url: Annotated[str, Field(pattern=r"^https?://")] = Field(
        description="The agent's card (a URL ending in .json), or its base URL, under which the card is "
        "read from /.well-known/agent-card.json."
    )
    tools: Literal["skills", "send_message"] = Field(
        "skills",
        description="skills: one tool per skill of the card; send_message: one tool for the whole agent.",
    )
    binding: Literal["auto", "jsonrpc", "http_json"] = Field(
        "auto", description="The protocol binding to use: auto takes the card's first one that we speak."
    )
    streaming: bool = Field(
        True, description="Stream the agent's updates (relayed as progress) where its card allows."
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Sent with every request.")
    credential: McpCredentialRef | None = Field(
        None, description="Each caller's secret from this credential provider, sent in a header."
    )
    card_seconds: float = Field(
        300.0, gt=0, description="How long a read card is used before it is read again."
    )
    max_result_bytes: int = Field(1024 * 1024, ge=1024, le=64 * 1024 * 1024)


class RuntimeTarget(TargetBase):
    """An agent or MCP server hosted by Switchboard's runtime (ADR 0039), as tools.

    An MCP server (protocol MCP) serves its own tools; an HTTP agent becomes one tool,
    ``invoke_{runtime}`` (described by the target's `description`, else the version's). Each
    caller's calls run in a runtime session of their own (by tenant, caller and MCP session): their
    sandbox, its files and its app's memory, apart from every other caller's. The runtime is the
    gateway's tenant's (``switchboard runtime deploy``)."""

    kind: Literal["runtime"]
    runtime: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,47}$")] = Field(
        description="The runtime's name, as deployed (`switchboard runtime deploy DIR --name NAME`)."
    )
    endpoint: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,47}$")] = Field(
        "DEFAULT",
        description="The endpoint whose version new sessions get: DEFAULT follows the latest version.",
    )
    version: int | None = Field(
        None, ge=1, description="A version's number, for every new session (instead of an endpoint)."
    )
    max_result_bytes: int = Field(1024 * 1024, ge=1024, le=64 * 1024 * 1024)

    @model_validator(mode="after")
    def _endpoint_or_version(self) -> RuntimeTarget:
        if self.version is not None and "endpoint" in self.model_fields_set:
            raise ValueError("give an `endpoint` or a `version`, not both")
        return self


_MEMORY_VARIABLES = ("actorId", "sessionId")


class MemoryTarget(TargetBase):
    """A memory (ADR 0045) as four tools: ``remember``, ``recall``, ``list`` and ``forget``.

    Every caller has records of their own: the actor id is made from the caller's subject, each
    record is written for that actor, and the tools only ever read or delete that actor's records
    (in the namespaces resolved for them). The memory is the gateway's tenant's, made with
    ``POST /admin/v1/memories`` or AgentCore's CreateMemory; until it exists, calls say so."""

    kind: Literal["memory"]
    memory: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")] = Field(
        description="The memory's name or id, in the gateway's tenant."
    )
    namespace: str = Field(
        "/actors/{actorId}/notes/",
        description="Where `remember` writes, as a template: {actorId} (required, followed by '/') is "
        "the caller's actor id, {sessionId} the target's `session`.",
    )
    strategy: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")] | None = Field(
        None,
        description="Recall, list and forget only the records this strategy (its id) extracted, and "
        "serve no `remember`; default: the caller's records of every strategy, and what `remember` wrote.",
    )
    top_k: int = Field(5, ge=1, le=100, description="How many records `recall` answers, unless asked.")
    session: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")] | None = Field(
        None,
        description="A session id: fills {sessionId} in namespaces, so records of other sessions "
        "(in namespaces per session) are left out.",
    )

    @field_validator("namespace")
    @classmethod
    def _namespace_template(cls, template: str) -> str:
        if len(template) > 400 or not re.fullmatch(r"(?:[A-Za-z0-9_/-]|\{[A-Za-z]+\})+", template):
            raise ValueError("a namespace template has letters, digits, '-', '_', '/' and {variables}")
        for variable in re.findall(r"\{([A-Za-z]+)\}", template):
            if variable not in _MEMORY_VARIABLES:
                raise ValueError(f"{{{variable}}} is not a variable here: use {{actorId}} and {{sessionId}}")
        if "{actorId}/" not in template:
            raise ValueError("the namespace must hold {actorId}/, so every caller's records are apart")
        return template

    @model_validator(mode="after")
    def _session_given(self) -> MemoryTarget:
        if "{sessionId}" in self.namespace and self.session is None:
            raise ValueError("the namespace uses {sessionId}: give the target a `session`")
        return self


Target = Annotated[
    FunctionTarget
    | LambdaTarget
    | HttpTarget
    | OpenApiTarget
    | McpTarget
    | PluginTarget
    | ConnectorTarget
    | CodeInterpreterTarget
    | A2aTarget
    | RuntimeTarget
    | MemoryTarget,
    Field(discriminator="kind"),
]
TARGET_KINDS = (
    "function",
    "lambda",
    "http",
    "openapi",
    "mcp",
    "plugin",
    "connector",
    "code_interpreter",
    "a2a",
    "runtime",
    "memory",
)
