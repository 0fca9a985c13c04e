"""Process settings, from ``SWITCHBOARD_*`` environment variables (and CLI flags)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from runtime import parse_services


class Settings(BaseSettings):
    """How this gateway process runs. Gateways and targets live in the config, not here."""

    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    data_dir: Path = Path(".switchboard")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL; default: SQLite in the data dir; postgresql+asyncpg://... to scale out.",
    )
    public_url: str | None = Field(None, description="The URL clients use, when behind a proxy.")
    allowed_hosts: list[str] = Field(default_factory=list, description="Extra Host header values to accept.")
    allowed_origins: list[str] = Field(default_factory=list, description="Extra browser Origins to accept.")
    max_request_bytes: int = Field(4 * 1024 * 1024, gt=0)
    config_poll_seconds: float = Field(
        2.0, gt=0, description="How often to look for changes made by other processes."
    )
    shutdown_grace_seconds: float = Field(30.0, ge=0)
    log_level: str = "info"
    workers: int = Field(1, ge=1, description="Worker processes sharing the port (serve --workers).")
    egress_allow: list[str] = Field(
        default_factory=list,
        description="Private networks or hosts that fetches on a user's behalf may reach (CIDRs or names).",
    )

    vault_key_file: Path | None = Field(
        None,
        description="The vault master keys (default: vault.keys in the data dir, made 0600 at first start).",
    )
    vault_key_env: str | None = Field(
        None, description="Take the vault's master key from this environment variable (base64 of 32 bytes)."
    )
    vault_kms_key_id: str | None = Field(
        None, description="Wrap the vault's data keys with this AWS KMS key."
    )

    aws_accounts: dict[str, Annotated[str, Field(pattern=r"^[0-9]{12}$")]] = Field(
        default_factory=dict,
        description="The account id the AgentCore API gives each tenant in its ARNs (JSON: "
        '{"tenant": "123456789012"}); a tenant not named gets one derived from its name.',
    )
    aws_regions: dict[str, Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$")]] = Field(
        default_factory=dict,
        description="The one region each named tenant's AgentCore requests must be signed for (and its "
        "ARNs name); a tenant not named takes the region each request was signed for.",
    )
    agentcore_rate: str = Field(
        "1200/minute",
        description="Requests one AgentCore access key may make (the limits library's syntax); one more "
        "is answered ThrottlingException.",
    )

    @field_validator("agentcore_rate")
    @classmethod
    def _a_rate(cls, rate: str) -> str:
        from limits import parse

        try:
            parse(rate)
        except ValueError:
            raise ValueError(f"{rate!r} is not like '1200/minute' or '20 per second'") from None
        return rate

    agentcore_unsigned_loopback: bool = Field(
        False,
        description="Take unsigned AgentCore API requests from loopback clients as the operator's "
        "(local development with botocore's UNSIGNED config); off: every request is signed (SigV4).",
    )

    connectors_dir: Path | None = Field(
        None, description="A folder of your own connectors (YAML); yours replace ours by name."
    )

    # Code interpreters (ADR 0035): each session a sandbox of its own.
    sandbox_dir: Path | None = Field(
        None, description="Where sandboxes' filesystems are made (default: DATA_DIR/sandboxes)."
    )
    sandbox_node_modules: Path | None = Field(
        None,
        description="A node_modules folder of npm packages the operator installed: mounted read-only "
        "at /work/node_modules in sandboxed MCP servers (its .bin on PATH, `npx PACKAGE` offline).",
    )

    @field_validator("runtime_services")
    @classmethod
    def _services(cls, value: dict[str, str]) -> dict[str, str]:
        taken = [s.name for s in parse_services(value) if s.inside == 7070]  # (errors name the service)
        if taken:
            raise ValueError(f"runtime service {taken[0]!r}: port 7070 in the sandbox is the gateway's")
        if "gateway" in value:
            raise ValueError("runtime service 'gateway' is the gateway's own; name yours otherwise")
        return value

    @field_validator("sandbox_node_modules", "sandbox_dir")
    @classmethod
    def _absolute(cls, path: Path | None) -> Path | None:
        return path.resolve() if path is not None else None

    sandbox_egress_allow: list[str] = Field(
        default_factory=list,
        description="Network mode PUBLIC: the only hosts sandboxes may reach (example.com, *.example.com); "
        "empty: any public host. Private, loopback, link-local and metadata addresses never.",
    )
    sandbox_egress_deny: list[str] = Field(
        default_factory=list, description="Network mode PUBLIC: hosts sandboxes may never reach (deny wins)."
    )
    runtime_idle_seconds: float = Field(
        900, gt=0, description="A hosted agent's session unused this long (and not HealthyBusy) is ended."
    )
    runtime_max_seconds: float = Field(
        8 * 3600, gt=0, description="A hosted agent's session ends this long after it started, busy or not."
    )
    runtime_warm: int = Field(
        0, ge=0, le=64, description="Apps started ahead per hosted agent version in use."
    )
    runtime_services: dict[str, str] = Field(
        default_factory=dict,
        description="Services hosted agents may reach from their sandboxes, which have no network: "
        '{"model": "127.0.0.1:11434"} (inside at 127.0.0.1 on the same port, or HOST:PORT@INSIDE), '
        "each named to the app in SWITCHBOARD_SERVICE_{NAME}_URL. The gateway itself is always one "
        "(SWITCHBOARD_GATEWAY_URL, port 7070 inside).",
    )
    runtime_backend: Literal["bwrap", "gvisor"] = Field(
        "bwrap",
        description="The isolation of hosted agents' sessions: bwrap (bubblewrap) or gvisor (runsc).",
    )
    runtime_gateway_socket: str | None = Field(
        None,
        description="Set by serve: the UNIX socket hosted agents reach the gateway on (ADR 0040); "
        "requests on it are never taken as a loopback client's.",
    )
    runtime_memory_mb: int = Field(1024, ge=64, description="Memory of one hosted agent session's sandbox.")
    runtime_disk_mb: int = Field(1024, ge=1, description="Size of one hosted agent session's work directory.")
    code_interpreter_backend: Literal["bwrap", "gvisor", "microvm"] = Field(
        "bwrap",
        description="The isolation of code interpreter sessions: bwrap (bubblewrap), gvisor (runsc) or "
        "microvm (a QEMU microVM restored from a snapshot; `make microvm-image` builds its image).",
    )
    code_interpreter_warm: int = Field(
        2, ge=0, le=64, description="Sandboxes of the built-in code interpreter kept started and ready."
    )
    code_interpreter_max_sessions: int = Field(
        64, ge=1, description="Live sessions one code interpreter may have at once in this process."
    )
    code_interpreter_tenant_sessions: int = Field(
        16,
        ge=1,
        description="Live code interpreter sessions one tenant may have at once in this process, in all.",
    )
    code_interpreter_idle_seconds: float = Field(
        900, gt=0, description="A session unused this long is ended (its sandbox removed)."
    )
    code_interpreter_wall_seconds: float = Field(
        60, gt=0, le=3600, description="The longest one execution may run (wall time; CPU time the same)."
    )
    code_interpreter_memory_mb: int = Field(
        1024, ge=64, description="Memory of one session's sandbox (its files count too: they are in memory)."
    )
    code_interpreter_disk_mb: int = Field(
        512, ge=1, description="Size of one session's work directory and /tmp together."
    )
    code_interpreter_node: str | None = Field(
        "/usr/bin/node",
        description="The node that runs javascript (and typescript, from 22.6) inside the sandboxes; "
        "none: python only.",
    )

    memory_model: str | None = Field(
        None,
        description="The model memory's strategies extract records with, KIND:MODEL_ID: openai:MODEL (any "
        "OpenAI-compatible chat completions API at memory_model_url), bedrock:MODEL_ID (Converse, with the "
        "host's AWS identity), anthropic:MODEL. Unset: short-term memory and retrieval only.",
    )
    memory_model_url: str | None = Field(
        None,
        description="openai: the API's base URL (…/v1); anthropic: another base URL; "
        "bedrock: an endpoint URL.",
    )
    memory_model_key_env: str | None = Field(
        None,
        description="The environment variable that holds the memory model's API key (never the key itself).",
    )
    memory_model_region: str | None = Field(None, description="bedrock: the region (default: the host's).")
    memory_model_choices: list[str] = Field(
        default_factory=list,
        description="Other model ids (of the same kind) a tenant's custom strategy may name as its modelId.",
    )
    memory_model_timeout: float = Field(60.0, gt=0, description="Seconds one model request may take.")
    memory_embeddings_url: str | None = Field(
        None,
        description="An OpenAI-compatible embeddings API (…/v1) instead of the local model "
        "(all-MiniLM-L6-v2, installed by `make install`).",
    )
    memory_embeddings_model: str = Field("text-embedding-3-small", description="The embeddings API's model.")
    memory_embeddings_dim: int = Field(1536, ge=8, le=8192, description="The length of the API's vectors.")
    memory_embeddings_key_env: str | None = Field(
        None, description="The environment variable that holds the embeddings API's key."
    )
    memory_batch_seconds: float = Field(
        0.5,
        ge=0,
        le=60,
        description="How long a session's new events wait for more before extraction starts.",
    )
    redis_url: str | None = Field(
        None, description="redis://host:port/db: rate-limit counters (and later caches) shared by replicas."
    )

    cache_max_entries: int = Field(
        10_000,
        ge=1,
        description="In-memory result cache: at most this many results (the least recently used go).",
    )
    cache_max_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="In-memory result cache: at most this many bytes of results."
    )

    session_idle_seconds: float = Field(
        1800.0, gt=0, description="A handshake-era MCP session with no request for this long ends."
    )
    session_handshake_seconds: float = Field(
        60.0, gt=0, description="A session whose client sent nothing after its initialize ends this soon."
    )
    sessions_per_caller: int = Field(
        100,
        ge=1,
        description="Handshake-era MCP sessions one principal (or one anonymous address) may hold; "
        "a new one ends the caller's least recently used idle session.",
    )
    max_sessions: int = Field(
        10_000,
        ge=1,
        description="Handshake-era MCP sessions in all (the least recently used idle one makes room).",
    )

    audit: bool = Field(True, description="Record every tools/call in the call audit (GET /admin/v1/audit).")
    audit_unwritable: Literal["refuse", "spill"] = Field(
        "refuse",
        description="While the database refuses audit records: refuse new calls (refuse), or serve on and "
        "keep the records in the data dir's audit-spill.jsonl until it takes them (spill).",
    )
    tracing: bool = Field(True, description="Record OpenTelemetry spans (false: no spans at all).")
    trace_store: bool = Field(
        True, description="Keep spans in the gateway's own database for the trace viewer (/ui/traces)."
    )
    trace_retention_hours: float = Field(168.0, gt=0, description="How long the trace store keeps a span.")
    trace_content: bool = Field(
        True, description="Record tool arguments and results on spans (secrets masked, size-capped)."
    )
    trace_content_bytes: int = Field(4096, ge=64, description="The cap on each recorded argument/result.")
    metrics_token: str | None = Field(
        None, description="Bearer token GET /metrics requires; without one, only loopback may scrape."
    )
    log_format: Literal["json", "text"] = Field(
        "json", description="json: one object a line, with trace ids."
    )

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'switchboard.db').resolve()}"
