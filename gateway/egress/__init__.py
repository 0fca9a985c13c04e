"""Every connection the gateway makes to the outside: the guard that says where a tenant's
traffic may go (``Reach``, ``check``, ``fetch``) and the HTTP client that the OpenAPI and
HTTP-function targets and the HTTP interceptors share (``HttpClient``)."""

from gateway.egress._client import Answer, HttpClient, tls_context
from gateway.egress._guard import EgressRefused, Reach, Unresolvable, check, fetch, reach

__all__ = [
    "Answer",
    "EgressRefused",
    "HttpClient",
    "Reach",
    "Unresolvable",
    "check",
    "fetch",
    "reach",
    "tls_context",
]
