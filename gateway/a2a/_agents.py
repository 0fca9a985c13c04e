"""Which A2A agents a live gateway serves, and their Agent Cards (ADR 0037).

Two kinds, both a set of the gateway's tools, each tool a skill:

- each ``a2a`` target is an agent of its own name, its skills the target's tools (so the
  target's include, exclude and overrides apply);
- ``a2a_agent`` (when configured) publishes the gateway's tools matching its globs.

A card's skills are the caller's visible tools (policy applies); the card served at the
well-known path to a caller not yet authenticated lists skills only on a gateway without auth
(loopback only); elsewhere its skills come in the extended card, after authentication.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    APIKeySecurityScheme,
    HTTPAuthSecurityScheme,
    SecurityRequirement,
    SecurityScheme,
    StringList,
)
from a2a.utils import TransportProtocol

from gateway.config import ApiKeyAuth, JwtAuth
from gateway.core.types import Principal
from gateway.hub import LiveGateway

VERSION = "1.0"
MODES = ["text/plain", "application/json"]


@dataclass(frozen=True, slots=True)
class Skill:
    """One skill: its id on the card (the tool's local name for a target's agent, the published
    name for the gateway's), the tool it calls, and whether that tool takes a ``message``."""

    id: str
    tool: str
    name: str
    description: str
    conversational: bool


@dataclass(frozen=True, slots=True)
class Agent:
    """One agent of a gateway: its name, what it is for, and (for a caller) its skills."""

    name: str
    description: str
    target: str | None  # the a2a target it fronts, or None: the gateway's published tools
    skills: tuple[Skill, ...]

    def skill(self, wanted: str | None) -> Skill | None:
        """The skill a message names; when it names none, the only one, or the first that takes
        a ``message`` (a conversational agent's default)."""
        if wanted:
            return next((s for s in self.skills if s.id == wanted), None)
        if len(self.skills) == 1:
            return self.skills[0]
        return next((s for s in self.skills if s.conversational), None)


def agent(live: LiveGateway, name: str, principal: Principal | None) -> Agent | None:
    """The agent ``name`` of the gateway, with the skills ``principal`` may call (None: every
    skill, unfiltered by policy), or None when the gateway has no such agent."""
    visible = {t["name"]: t for t in live.callable_tools(principal)} if principal is not None else None
    entries = live.catalog.snapshot.tools
    target = next((t for t in live.spec.targets if t.name == name and getattr(t, "kind", "") == "a2a"), None)
    skills: list[Skill] = []
    if target is not None:
        for public, entry in entries.items():
            if entry.provider.id == name and (visible is None or public in visible):
                skills.append(_skill(entry.spec.name, public, entry.spec))
        return Agent(name, target.description or f"The A2A agent {name}", name, tuple(skills))
    published = live.spec.a2a_agent
    if published is None or published.name != name:
        return None
    for public, entry in entries.items():
        if any(fnmatch.fnmatchcase(public, g) for g in published.include) and (
            visible is None or public in visible
        ):
            skills.append(_skill(public, public, entry.spec))
    described = published.description or live.spec.description or f"The tools of gateway {live.name}"
    return Agent(name, described, None, tuple(skills))


def _skill(skill_id: str, public: str, spec: Any) -> Skill:
    properties = (spec.input_schema or {}).get("properties") or {}
    message = properties.get("message") if isinstance(properties, dict) else None
    conversational = isinstance(message, dict) and message.get("type") == "string"
    return Skill(skill_id, public, spec.title or skill_id, spec.description or "", conversational)


def card(live: LiveGateway, found: Agent, url: str, *, with_skills: bool) -> AgentCard:
    """The Agent Card of ``found`` served at ``url`` (both bindings there)."""
    auth = live.spec.auth
    schemes: dict[str, SecurityScheme] = {}
    if isinstance(auth, JwtAuth):
        schemes["bearer"] = SecurityScheme(
            http_auth_security_scheme=HTTPAuthSecurityScheme(scheme="Bearer", bearer_format="JWT")
        )
    elif isinstance(auth, ApiKeyAuth):
        schemes["bearer"] = SecurityScheme(http_auth_security_scheme=HTTPAuthSecurityScheme(scheme="Bearer"))
        schemes["apiKey"] = SecurityScheme(
            api_key_security_scheme=APIKeySecurityScheme(location="header", name="X-Api-Key")
        )
    made = AgentCard(
        name=found.name,
        description=found.description,
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=url, protocol_binding=TransportProtocol.JSONRPC, protocol_version=VERSION),
            AgentInterface(url=url, protocol_binding=TransportProtocol.HTTP_JSON, protocol_version=VERSION),
        ],
        capabilities=AgentCapabilities(streaming=True, push_notifications=True, extended_agent_card=True),
        default_input_modes=MODES,
        default_output_modes=MODES,
        security_schemes=schemes,
        security_requirements=[SecurityRequirement(schemes={n: StringList()}) for n in schemes],
    )
    if with_skills:
        for skill in found.skills:
            made.skills.append(
                AgentSkill(id=skill.id, name=skill.name, description=skill.description, tags=[found.name])
            )
    return made
