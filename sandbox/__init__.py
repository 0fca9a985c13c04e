"""sandbox: a peer of the gateway (see ARCHITECTURE.md); it never imports `gateway`.

Isolation for code the gateway must not trust (model-written code, hosted agents, tenants' local
MCP servers): one contract (``Sandbox``: run a command under limits, files in and out of a private
work directory, stop leaving nothing) and its backends. Bubblewrap is the first (ADR 0034)."""

from sandbox._bwrap import BwrapBackend, BwrapSandbox, available
from sandbox._contract import Execution, Limits, Sandbox, SandboxError

__all__ = ["BwrapBackend", "BwrapSandbox", "Execution", "Limits", "Sandbox", "SandboxError", "available"]
