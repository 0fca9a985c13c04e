"""The call pipeline's stages, one module each, and the registry that orders them (``chain``).

What the rest of the gateway takes from here: ``build_chain`` (a gateway's pipeline from its
spec), ``Shared`` (what every gateway's stages share), and the shared parts that start-up makes.
"""

from gateway.stages.audit import AuditLog
from gateway.stages.cache import ResultStore, result_store
from gateway.stages.chain import ORDER, Chain, Shared, StageKind, build_chain
from gateway.stages.policy import GatewayPolicy
from gateway.stages.ratelimit import Counters, RequestRate, shared_counters
from gateway.stages.resilience import GatewayResilience

__all__ = [
    "ORDER",
    "AuditLog",
    "Chain",
    "Counters",
    "GatewayPolicy",
    "GatewayResilience",
    "RequestRate",
    "ResultStore",
    "Shared",
    "StageKind",
    "build_chain",
    "result_store",
    "shared_counters",
]
