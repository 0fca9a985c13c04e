"""The one error tree of the gateway.

Grouped by who caused the failure, so the fronts can map each branch to the
right wire form in one place (`to_wire`)::

    SwitchboardError                 base; never raised itself
    +-- ConfigError                  bad configuration; raised at load, never at call time
    +-- RequestError                 the caller sent something we cannot serve
    |   +-- ToolNotFound             no tool by that name (or not visible to the caller)
    |   +-- InvalidArguments         arguments do not match the tool's inputSchema
    |   +-- MissingClientCapability  the call needs a client capability the client did not declare
    +-- AuthError                    identity problems
    |   +-- Unauthenticated          no or bad credentials            -> HTTP 401
    |   +-- InsufficientScope        authenticated but not allowed    -> HTTP 403
    +-- CredentialRequired           an upstream credential needs the user's consent
    +-- InputRequired                control flow: the call needs the client's answer first
    +-- ToolExecutionError           the tool ran (or tried to) and failed -> isError result
        +-- UpstreamError            the upstream answered with an error
        +-- UpstreamUnavailable      the upstream could not be reached / timed out
        +-- SandboxError             an isolation backend failed

Every message a user can cause says what was wrong and how to fix it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class SwitchboardError(Exception):
    """Base of every error the gateway raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a configuration document.

    Attributes:
        message: What is wrong and how to fix it.
        location: Dotted path of the field, e.g. ``gateways[0].targets[1].kind``.
        source: The file (or "admin API", "inline") the document came from.
        line: 1-based line in ``source`` when known.
    """

    message: str
    location: str = ""
    source: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = self.source or ""
        if self.line is not None:
            where = f"{where}:{self.line}" if where else f"line {self.line}"
        parts = [p for p in (where, self.location) if p]
        prefix = ": ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message


class ConfigError(SwitchboardError):
    """The configuration cannot be used. Carries one or more located issues."""

    def __init__(self, issues: list[ConfigIssue] | str) -> None:
        if isinstance(issues, str):
            issues = [ConfigIssue(issues)]
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


class RequestError(SwitchboardError):
    """The caller sent a request we cannot serve."""


class ToolNotFound(RequestError):
    """No tool by that name is visible to the caller."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Unknown tool {name!r}: call tools/list for the names this gateway serves.")
        self.name = name


class InvalidArguments(RequestError):
    """Arguments do not validate against the tool's inputSchema."""

    def __init__(self, tool: str, field_path: str, problem: str) -> None:
        where = f"argument {field_path!r}" if field_path else "arguments"
        super().__init__(f"Invalid {where} for tool {tool!r}: {problem}")
        self.tool = tool
        self.field_path = field_path
        self.problem = problem


class MissingClientCapability(RequestError):
    """The call needs a capability (``sampling``, ``elicitation``, ``roots``) the client did not declare."""

    def __init__(self, capability: str) -> None:
        super().__init__(
            f"This call needs the client capability {capability!r}; use a client that supports {capability}."
        )
        self.capability = capability


class AuthError(SwitchboardError):
    """The caller's identity could not be established or is not enough."""


class Unauthenticated(AuthError):
    """No credentials, or credentials that do not verify."""


class InsufficientScope(AuthError):
    """Authenticated, but missing scopes; lists every scope needed."""

    def __init__(self, needed: list[str]) -> None:
        super().__init__("Insufficient scope: this call needs " + " ".join(needed))
        self.needed = needed


class CredentialRequired(SwitchboardError):
    """An upstream credential is missing; the user must consent at ``consent_url``."""

    def __init__(self, provider: str, consent_url: str) -> None:
        super().__init__(f"Authorize {provider} to continue: open {consent_url}")
        self.provider = provider
        self.consent_url = consent_url


class InputRequired(SwitchboardError):
    """The call must ask the client first (2026-07-28 era); the front answers ``input_required``.

    Attributes:
        requests: The embedded requests by key (``{"method": ..., "params": ...}``).
        answered: Answers already given, carried forward in the sealed request state.
    """

    def __init__(self, requests: dict[str, dict[str, Any]], answered: dict[str, Any]) -> None:
        super().__init__("waiting for the client to answer " + ", ".join(requests))
        self.requests = requests
        self.answered = answered


class ToolExecutionError(SwitchboardError):
    """The tool failed while running; reported as an ``isError`` result."""


class UpstreamError(ToolExecutionError):
    """The upstream answered with an error."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class UpstreamUnavailable(ToolExecutionError):
    """The upstream could not be reached or did not answer in time."""


class SandboxError(ToolExecutionError):
    """An isolation backend failed; the code did not run unsandboxed."""
