"""The admin API's request bodies: the models that validate them are the ones its OpenAPI
document describes (``gateway.admin._openapi``), so the two cannot disagree."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gateway.core.model import Model


class NewKey(Model):
    """A gateway API key to make (the key itself is in the answer, shown once)."""

    subject: str = Field(
        min_length=1,
        pattern=r"\S",
        description="The user or service the key stands for (the caller's subject).",
    )
    scopes: list[str] = Field(
        default_factory=list, description="Scopes the key's caller holds (policies read them)."
    )


Plane = Literal["control", "data"]
PLANES: tuple[Plane, ...] = ("control", "data")


class NewAccessKey(Model):
    """An access key for AgentCore's clients (the secret access key is in the answer, shown once)."""

    subject: str = Field(
        "agentcore", min_length=1, pattern=r"\S", description="Who the key stands for (the caller's subject)."
    )
    planes: list[Plane] = Field(
        default_factory=lambda: list(PLANES),
        min_length=1,
        description="What it may use: the control plane administers the tenant (its gateways, credential "
        "providers and their secrets); an agent's key needs the data plane alone.",
    )


class Secret(Model):
    """A credential provider's secret, kept encrypted in the vault and never returned."""

    secret: str = Field(min_length=1, description="The API key, or the OAuth client's secret.")


class Decision(Model):
    """An administrator's answer to a held call."""

    decision: Literal["approve", "reject"]
    reason: str | None = Field(None, description="Why; shown to the caller with a rejection.")


class PinApproval(Model):
    """Which of a federated target's changed or new tools to approve."""

    tools: list[str] | None = Field(None, description="Tool names; omit to approve every tool waiting.")


class RuntimeEndpoint(Model):
    """Where a hosted agent's endpoint sends new sessions: a version, and a canary's share."""

    version: int | None = Field(None, ge=1, description="The version it points at (the latest if left out).")
    canary: int | None = Field(None, ge=1, description="A second version, for `weight` % of new sessions.")
    weight: int = Field(0, ge=0, le=100, description="The canary's share of new sessions, in percent.")
    description: str | None = Field(None, max_length=256)
