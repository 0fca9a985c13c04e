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
MAX_CEDAR_CHARS = 10_000  # per entry (AgentCore's limit on a statement)
MAX_NESTING = 32  # brackets open at once
MAX_CHAIN = 32  # && and || in one statement
MAX_IFS = 16  # if-then-else in one statement
MAX_UNARY = 8  # ! or - in a row
MAX_POLICIES = 2_000  # entries per gateway


def cedar_shape(text: str) -> str | None:
    """What makes Cedar source too deep to hand to the Cedar library, or None.

    cedarpy's parser and evaluator recurse in native code: a statement nested a few hundred
    levels deep overflows the stack and ends the whole process (SIGSEGV), whoever wrote it. So
    the source is measured first (strings and comments skipped) and refused past modest limits
    no real policy comes near."""
    if len(text) > MAX_CEDAR_CHARS:
        return f"is {len(text)} characters long; at most {MAX_CEDAR_CHARS}"
    depth = chain = ifs = unary = 0
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        elif c in "([{":
            depth += 1
            if depth > MAX_NESTING:
                return f"nests brackets more than {MAX_NESTING} deep"
        elif c in ")]}":
            depth = max(0, depth - 1)
        elif c == ";":
            chain = ifs = 0
        elif text.startswith(("&&", "||"), i):
            chain += 1
            i += 1
            if chain > MAX_CHAIN:
                return f"chains more than {MAX_CHAIN} && and || in one statement"
        elif (
            text.startswith("if", i)
            and (i == 0 or not text[i - 1].isalnum())
            and not text[i + 2 : i + 3].isalnum()
        ):
            ifs += 1
            if ifs > MAX_IFS:
                return f"has more than {MAX_IFS} if-then-else in one statement"
        if c in "!-":
            unary += 1
            if unary > MAX_UNARY:
                return f"has more than {MAX_UNARY} ! or - in a row"
        elif not c.isspace():
            unary = 0
        i += 1
    return None


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
    def _measured(self) -> PolicySpec:
        problem = cedar_shape(self.cedar)
        if problem is not None:
            raise ValueError(f"the Cedar source {problem}")
        return self

    @model_validator(mode="after")
    def _agentcore_fields(self) -> PolicySpec:
        if self.dialect != "agentcore":
            for name in ("gateway_arn", "engine"):
                if getattr(self, name) is not None:
                    raise ValueError(f"`{name}` belongs to dialect agentcore; this entry is {self.dialect}")
        return self
