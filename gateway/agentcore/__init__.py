"""The AgentCore wire front: Bedrock AgentCore's own REST-JSON APIs (data plane and control plane),
routed and (de)serialised from botocore's service models, authenticated with SigV4 (ADR 0031).

``agentcore_routes`` mounts the control plane at ``CONTROL_PREFIX`` and the data plane at
``DATA_PREFIX``; the service models (and botocore) load on the first request, not at start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.agentcore._call import Backend
from gateway.auth import AccessKey, AccessKeys

CONTROL_PREFIX = "/aws/agentcore-control"
DATA_PREFIX = "/aws/agentcore"

__all__ = ["CONTROL_PREFIX", "DATA_PREFIX", "AccessKey", "AccessKeys", "Backend", "agentcore_routes"]


class _Lazy:
    """An ASGI app made on its first request."""

    def __init__(self, make: Callable[[], ASGIApp]) -> None:
        self._make = make
        self._app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            self._app = self._make()
        await self._app(scope, receive, send)


def agentcore_routes(backend: Callable[[], Backend], *, max_body: int) -> list[BaseRoute]:
    """The two planes' routes; ``backend`` gives the running process's parts, per request."""

    def plane(service: str, prefix: str, control: bool) -> Callable[[], ASGIApp]:
        def make() -> Any:
            from gateway.agentcore import (
                _code,
                _gateways,
                _identity,
                _limits,
                _memory,
                _oauth,
                _policy,
                _runtime,
                _runtime_control,
            )
            from gateway.agentcore._front import Plane
            from gateway.agentcore._wire import Service

            handlers = (
                {
                    **_gateways.HANDLERS,
                    **_limits.HANDLERS,
                    **_identity.CONTROL,
                    **_oauth.CONTROL,
                    **_policy.CONTROL,
                    **_code.CONTROL,
                    **_runtime_control.CONTROL,
                    **_memory.CONTROL,
                }
                if control
                else {**_identity.DATA, **_oauth.DATA, **_code.DATA, **_runtime.DATA, **_memory.DATA}
            )
            kind = "control" if control else "data"
            return Plane(
                Service.load(service), handlers, backend, plane=kind, prefix=prefix, max_body=max_body
            )

        return make

    return [
        Mount(CONTROL_PREFIX, app=_Lazy(plane("bedrock-agentcore-control", CONTROL_PREFIX, True))),
        Mount(DATA_PREFIX, app=_Lazy(plane("bedrock-agentcore", DATA_PREFIX, False))),
    ]
