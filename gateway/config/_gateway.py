"""A gateway (its targets, auth, credential providers and pipeline settings) and the whole
document."""

from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import Field, field_validator, model_validator

from gateway.config._credentials import Auth, CredentialProvider, NoAuth
from gateway.config._pipeline import ApprovalSpec, CacheSpec, InterceptorSpec, RateLimitSpec, ResilienceSpec
from gateway.config._policy import MAX_POLICIES, PolicySpec, cedar_shape
from gateway.config._runtimes import RuntimeSpec
from gateway.config._targets import (
    A2aTarget,
    ConnectorTarget,
    McpCredentialRef,
    McpTarget,
    SecretRef,
    Target,
    TargetBase,
)
from gateway.core.model import Model, Name


class A2aAgentSpec(Model):
    """This gateway's tools published as one A2A agent (ADR 0037): each tool is a skill."""

    name: Name = Field("tools", description="Served at /a2a/{name} (or /gateways/{gateway}/a2a/{name}).")
    description: str = Field("", description="What the agent is for; default: the gateway's description.")
    include: list[str] = Field(
        default_factory=lambda: ["*"], description="Globs of the tool names (as published) it offers."
    )


SEARCH_TOOL = "switchboard_search"
AGENTCORE_SEARCH_TOOL = "x_amz_bedrock_agentcore_search"


class SearchSpec(Model):
    """The gateway's tool search (ADR 0047): one tool that finds the gateway's tools for a
    natural-language query, so a client need not be sent all of them."""

    enabled: bool = Field(False, description="Serve the search tool (AgentCore: searchType SEMANTIC).")
    progressive: bool = Field(
        False,
        description="tools/list answers the search tool and the pinned tools only; every tool stays "
        "callable by name, and the search tool finds the rest. Implies enabled.",
    )
    pinned: list[str] = Field(
        default_factory=list, description="Globs of published tool names listed beside the search tool."
    )
    name: Literal["switchboard_search", "x_amz_bedrock_agentcore_search"] = Field(
        "switchboard_search", description="The search tool's listed name; it answers to the other as well."
    )
    max_results: int = Field(10, ge=1, le=50, description="The most tools one search returns.")
    list_found: bool = Field(
        False,
        description="Progressive only: a 2025-era session (Mcp-Session-Id) gets the tools its searches "
        "found added to its tools/list (its 32 latest) and hears list_changed, for clients that call "
        "listed tools only.",
    )

    @property
    def on(self) -> bool:
        return self.enabled or self.progressive


class CodeModeSpec(Model):
    """Code mode (ADR 0047): a tool that runs a short Python program calling the gateway's tools
    in a code interpreter's sandbox, each call made as the program's caller."""

    enabled: bool = Field(False, description="Serve switchboard_run_program and switchboard_program_tools.")
    wall_seconds: float = Field(30.0, ge=1, le=300, description="A program's wall time (and CPU time).")
    max_tool_calls: int = Field(100, ge=1, le=10_000, description="Tool calls one program may make.")
    output_bytes: int = Field(
        65_536,
        ge=1024,
        le=1_048_576,
        description="Of stdout and of stderr each; the rest is cut with a notice.",
    )


class GatewaySpec(Model):
    """One gateway: a URL serving the tools of its targets."""

    name: Name
    description: str = ""
    auth: Auth = Field(default_factory=NoAuth, description="Who may call this gateway.")
    credential_providers: list[CredentialProvider] = Field(
        default_factory=list, description="How the gateway authenticates to upstreams (targets name them)."
    )
    policies: list[str | PolicySpec] = Field(
        default_factory=list,
        description="Cedar policies deciding every tools/call (principal User, action the tool, resource "
        "the target); once any exist, what none permits is denied. A string is an enforced policy of "
        "Switchboard's dialect; an entry names its mode (enforce or log_only) and dialect (switchboard "
        "or agentcore).",
    )
    policy_mode: Literal["enforce", "log_only"] = Field(
        "enforce",
        description="log_only: every policy is log-only: allow everything and record what the policies "
        "would deny (the audit's decision `would_deny`, the trace, the log).",
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
    search: SearchSpec = Field(
        default_factory=SearchSpec, description="Tool search, and progressive tool lists (ADR 0047)."
    )
    code_mode: CodeModeSpec = Field(
        default_factory=CodeModeSpec,
        description="Programs over the gateway's tools (ADR 0047); off by default.",
    )
    a2a_agent: A2aAgentSpec | None = Field(
        None,
        description="Publish this gateway's tools as an A2A agent, for clients that speak only A2A. "
        "Its a2a targets are served as A2A agents either way.",
    )

    @field_validator("policies")
    @classmethod
    def _measured(cls, policies: list[str | PolicySpec]) -> list[str | PolicySpec]:
        if len(policies) > MAX_POLICIES:
            raise ValueError(f"a gateway has at most {MAX_POLICIES} policies entries")
        for i, entry in enumerate(policies):
            problem = cedar_shape(entry) if isinstance(entry, str) else None
            if problem is not None:
                raise ValueError(f"policies[{i}]: the Cedar source {problem}")
        return policies

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
            if isinstance(target, McpTarget | A2aTarget) and target.credential is not None:
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
    runtimes: list[RuntimeSpec] = Field(
        default_factory=list, description="Hosted agents deployed from folders (the operator's tenant)."
    )

    @field_validator("gateways")
    @classmethod
    def _unique_gateways(cls, gateways: list[GatewaySpec]) -> list[GatewaySpec]:
        return _unique(gateways, "gateways", "")

    @field_validator("runtimes")
    @classmethod
    def _unique_runtimes(cls, runtimes: list[RuntimeSpec]) -> list[RuntimeSpec]:
        names = [r.name for r in runtimes]
        doubled = next((n for n in names if names.count(n) > 1), None)
        if doubled is not None:
            raise ValueError(f"two runtimes are named {doubled!r}; runtime names must be unique")
        return runtimes


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
