"""runtime: a peer of the gateway (see ARCHITECTURE.md); it never imports `gateway`.

Agent hosting (ADR 0039): deploys made immutable versions (``Deployments``), and sessions, each a
sandbox running one version's app on AgentCore Runtime's contract (``Sessions``)."""

from runtime._deploy import DeployError, Deployments, Version
from runtime._links import Links, Service, parse_services
from runtime._sessions import SESSION_HEADER, AtCapacity, Lifecycle, Listed, Session, SessionError, Sessions

__all__ = [
    "SESSION_HEADER",
    "AtCapacity",
    "DeployError",
    "Deployments",
    "Lifecycle",
    "Links",
    "Listed",
    "Service",
    "Session",
    "SessionError",
    "Sessions",
    "Version",
    "parse_services",
]
