"""runtime: a peer of the gateway (see ARCHITECTURE.md); it never imports `gateway`.

Agent hosting (ADR 0039): deploys made immutable versions (``Deployments``), and sessions, each a
sandbox (bubblewrap or gVisor: ``Backend``) running one version's app on AgentCore Runtime's
contract (``Sessions``)."""

from runtime._deploy import NAME, DeployError, Deployments, Settings, Version, fingerprint
from runtime._endpoints import DEFAULT, Endpoint, EndpointError, Endpoints
from runtime._links import Links, Service, parse_services
from runtime._reach import Backend, Box
from runtime._sessions import (
    SESSION_HEADER,
    AtCapacity,
    Lifecycle,
    Listed,
    NotYours,
    Secrets,
    Session,
    SessionError,
    Sessions,
)

__all__ = [
    "DEFAULT",
    "NAME",
    "SESSION_HEADER",
    "AtCapacity",
    "Backend",
    "Box",
    "DeployError",
    "Deployments",
    "Endpoint",
    "EndpointError",
    "Endpoints",
    "Lifecycle",
    "Links",
    "Listed",
    "NotYours",
    "Secrets",
    "Service",
    "Session",
    "SessionError",
    "Sessions",
    "Settings",
    "Version",
    "fingerprint",
    "parse_services",
]
