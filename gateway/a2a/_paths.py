"""Which paths are the A2A front's, and the front made on first use (``a2a-sdk``'s server
pieces take most of a second to import: a gateway that serves no A2A request never pays it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from starlette.types import Receive, Scope, Send

DEFAULT = ("default", "default")


def a2a_endpoint(path: str) -> tuple[str, str, str, str] | None:
    """(tenant, gateway, agent, rest) that an A2A path names, else None."""
    tenant, gateway = DEFAULT
    parts = path.split("/")
    if len(parts) > 3 and parts[1] == "tenants":
        tenant, parts = parts[2], ["", *parts[3:]]
    if len(parts) > 4 and parts[1] == "gateways" and parts[3] == "a2a":
        gateway, parts = parts[2], ["", *parts[3:]]
    elif tenant != DEFAULT[0]:
        return None
    if len(parts) < 3 or parts[1] != "a2a" or not parts[2] or not all(parts[1:3]):
        return None
    return tenant, gateway, parts[2], "/" + "/".join(parts[3:]) if len(parts) > 3 else ""


def a2a_agents(spec: Any) -> list[str]:
    """The A2A agents a gateway (its ``GatewaySpec``) serves, by name: each ``a2a`` target, and
    its published tools (``a2a_agent``)."""
    found = [t.name for t in spec.targets if getattr(t, "kind", "") == "a2a"]
    if spec.a2a_agent is not None and spec.a2a_agent.name not in found:
        found.append(spec.a2a_agent.name)
    return found


class Front(Protocol):
    """What the edge needs of the A2A front (``gateway.a2a._front.Front``)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...

    async def aclose(self) -> None: ...


class LazyA2a:
    """The A2A front, made by ``make`` on the first A2A request; closed with the process."""

    def __init__(self, make: Callable[[], Front]) -> None:
        self.make = make
        self.front: Front | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.front is None:
            self.front = self.make()
        await self.front(scope, receive, send)

    async def __aenter__(self) -> LazyA2a:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.front is not None:
            await self.front.aclose()
