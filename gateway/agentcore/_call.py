"""What an AgentCore operation's handler is given (the caller, the process's services) and the
errors it raises (answered as AgentCore's error shapes by the front); identifiers and ARNs."""

from __future__ import annotations

import hashlib
import secrets
import string
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.auth import AccessKeys
from gateway.system import Switchboard
from identity.api import IdentityServices
from identity.vault import Vault

Params = dict[str, Any]


class AwsError(Exception):
    """A refusal in AgentCore's terms: an error shape's name, a message, an HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def validation(message: str) -> AwsError:
    return AwsError("ValidationException", message, 400)


def not_found(message: str) -> AwsError:
    return AwsError("ResourceNotFoundException", message, 404)


def conflict(message: str) -> AwsError:
    return AwsError("ConflictException", message, 409)


def access_denied(message: str) -> AwsError:
    return AwsError("AccessDeniedException", message, 403)


@dataclass(frozen=True, slots=True)
class Call:
    """One verified request: whose it is, and what serves it."""

    tenant: str
    subject: str  # who the access key stands for
    access_key_id: str
    region: str  # the region the request was signed for: ARNs carry it
    base_url: str  # where this process is reached (the MCP URLs it answers)
    system: Switchboard
    identity: IdentityServices
    account_ids: Mapping[str, str] = field(default_factory=dict)  # tenant -> account id the operator set

    @property
    def account(self) -> str:
        return self.account_ids.get(self.tenant) or account_id(self.tenant)

    @property
    def vault(self) -> Vault:
        """The process's vault (open whenever requests are served)."""
        if self.system.vault is None:
            raise AwsError("InternalServerException", "the vault is not open", 500)
        return self.system.vault

    def arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{self.account}:{resource}"


Handler = Callable[[Call, Params], Awaitable[Params]]


@dataclass(frozen=True, slots=True)
class Backend:
    """What the AgentCore front needs of the running process."""

    system: Switchboard
    identity: IdentityServices
    keys: AccessKeys
    public_url: str | None  # where clients reach this process, when the operator says so
    unsigned_loopback: bool = False  # the operator takes unsigned requests from loopback as theirs
    accounts: Mapping[str, str] = field(default_factory=dict)  # tenant -> account id in its ARNs
    regions: Mapping[str, str] = field(default_factory=dict)  # tenant -> the one region it signs for
    throttle: Callable[[str], Awaitable[float | None]] | None = None  # seconds to wait, or None: go on


def account_id(tenant: str) -> str:
    """The tenant's 12-digit account id, the same on every replica."""
    digest = hashlib.sha256(b"switchboard account\x00" + tenant.encode()).digest()
    return str(int.from_bytes(digest[:8], "big") % 10**12).zfill(12)


def gateway_id(name: str) -> str:
    """A new gateway id: the name in AgentCore's id alphabet, a dash, 10 random characters."""
    stem = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-") or "gateway"
    while "--" in stem:
        stem = stem.replace("--", "-")
    alphabet = string.ascii_lowercase + string.digits
    return f"{stem[:48]}-{''.join(secrets.choice(alphabet) for _ in range(10))}"


def target_id() -> str:
    """A new target id: 10 random upper-case letters and digits."""
    alphabet = string.ascii_uppercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(10))
