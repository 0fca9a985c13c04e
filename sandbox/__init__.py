"""sandbox: a peer of the gateway (see ARCHITECTURE.md); it never imports `gateway`.

Isolation for code the gateway must not trust (model-written code, hosted agents, tenants' local
MCP servers): one contract (``Sandbox``: run a command under limits, files in and out of a private
work directory, stop leaving nothing) and its backends. Bubblewrap is the first (ADR 0034).
On them, code interpreters: sessions with a kernel, AgentCore's tools and a warm pool (ADR 0035)."""

from sandbox._bwrap import BWRAP, HOST_ENVIRONMENT, BwrapBackend, BwrapSandbox, available
from sandbox._contract import (
    AtCapacity,
    Execution,
    Limits,
    NoSession,
    Options,
    Sandbox,
    SandboxError,
    Unavailable,
    Usage,
)
from sandbox._egress import FORWARD, FORWARD_INSIDE
from sandbox._forward import APP_NOT_LISTENING
from sandbox._gvisor import GvisorBackend, GvisorSandbox
from sandbox._interpreter import CodeSession, Interpreter, InterpreterConfig, backend_for, backend_problem
from sandbox._kernel import ToolHandler
from sandbox._microvm import MicrovmBackend, MicrovmSandbox
from sandbox._proxy import EgressDecision, EgressPolicy, EgressProxy
from sandbox._tools import TOOLS

__all__ = [
    "APP_NOT_LISTENING",
    "BWRAP",
    "FORWARD",
    "FORWARD_INSIDE",
    "HOST_ENVIRONMENT",
    "TOOLS",
    "AtCapacity",
    "BwrapBackend",
    "BwrapSandbox",
    "CodeSession",
    "EgressDecision",
    "EgressPolicy",
    "EgressProxy",
    "Execution",
    "GvisorBackend",
    "GvisorSandbox",
    "Interpreter",
    "InterpreterConfig",
    "Limits",
    "MicrovmBackend",
    "MicrovmSandbox",
    "NoSession",
    "Options",
    "Sandbox",
    "SandboxError",
    "ToolHandler",
    "Unavailable",
    "Usage",
    "available",
    "backend_for",
    "backend_problem",
]
