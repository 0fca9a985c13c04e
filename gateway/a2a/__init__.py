"""The A2A front: each gateway's A2A agents served over A2A 1.0 on ``a2a-sdk`` (ADR 0037).

Only what the edge needs is imported here; the front itself (``_front``) is imported when the
first A2A request arrives."""

from gateway.a2a._paths import LazyA2a, a2a_agents, a2a_endpoint

__all__ = ["LazyA2a", "a2a_agents", "a2a_endpoint"]
