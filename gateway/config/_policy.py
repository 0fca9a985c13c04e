"""One entry of a gateway's ``policies`` written out: Cedar source and how it governs calls.

A plain string is the short form of ``{cedar: "...", mode: enforce, dialect: switchboard}``; the
long form exists so that a policy can be tried before it decides (``mode: log_only``), and so that
Cedar written for Amazon Bedrock AgentCore governs a gateway unchanged (``dialect: agentcore``,
ADR 0032).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from gateway.core.model import Model

POLICY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,199}$"


class PolicySpec(Model):
    """Cedar statements that decide (or, log-only, are only recorded) for every tools/call."""

    cedar: str = Field(
        description="Cedar source: zero or more permit/forbid statements (// comments allowed). An entry "
        "with no statement still counts: in `enforce` mode it makes the gateway deny what no policy "
        "permits."
    )
    mode: Literal["enforce", "log_only"] = Field(
        "enforce",
        description="enforce: the statements decide (any enforced forbid denies; else an enforced permit "
        "allows; else, once any enforced entry exists, the call is denied). log_only: they are evaluated "
        "with the enforced ones and what they would have changed is recorded (audit decision "
        "`would_deny`, the trace's switchboard.policy.log_only), never refusing or allowing a call.",
    )
    dialect: Literal["switchboard", "agentcore"] = Field(
        "switchboard",
        description="switchboard: principal Switchboard::User (tenant, client, scopes), action the "
        "tool, resource its Switchboard::Target, context the arguments. agentcore: AgentCore's entity "
        "model: principal AgentCore::OAuthUser (the token's claims as string tags), action "
        'AgentCore::Action (a CallTool), resource AgentCore::Gateway::"<gateway_arn>", the arguments '
        "under context.input. Each dialect's statements are validated against its own schema.",
    )
    id: str | None = Field(
        None,
        pattern=POLICY_ID_PATTERN,
        description="Names the statement in decisions, refusals, the audit and errors (several statements: "
        "id[0], id[1], ...). Default: policies[i]. Unique per gateway.",
    )
    gateway_arn: str | None = Field(
        None,
        max_length=1011,
        description="agentcore only: the id of the AgentCore::Gateway resource calls are made on (the ARN "
        "the statements name with `resource ==`). Default: the gateway's name. Every agentcore entry "
        "of a gateway has the same one.",
    )
    engine: str | None = Field(
        None,
        max_length=1011,
        description="agentcore only, written by the AgentCore control plane: the policy engine (ARN) this "
        "entry comes from. Entries with it are rewritten whenever the engine or its attachment changes.",
    )

    @model_validator(mode="after")
    def _agentcore_fields(self) -> PolicySpec:
        if self.dialect != "agentcore":
            for name in ("gateway_arn", "engine"):
                if getattr(self, name) is not None:
                    raise ValueError(f"`{name}` belongs to dialect agentcore; this entry is {self.dialect}")
        return self
