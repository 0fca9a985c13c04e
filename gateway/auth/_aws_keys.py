"""AWS-style access keys: the credentials AgentCore's clients sign their requests with (SigV4).

An access key belongs to one tenant and stands for one subject. Its id is a row of the API-key
table (purpose ``aws``, with a hash of the secret for the record); the secret access key is
sealed in the vault, shown once when the key is made, and opened again only to verify
signatures: this process keeps it for a short while (``REMEMBER_SECONDS``) and forgets it at
once when any key is revoked on any replica (the same revocation count as API keys).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from gateway.auth._inbound import Revocations
from gateway.store import Store
from identity.vault import Owner, Vault

PURPOSE = "aws"
PLANES = frozenset({"control", "data"})
# A hosted agent's own key (ADR 0041): the token vault's data-plane operations, with the workload
# access token each invocation hands the agent; nothing else (no invoking, no minting tokens).
WORKLOAD = "workload"
WORKLOAD_OPERATIONS = frozenset({"GetResourceApiKey", "GetResourceOauth2Token", "CompleteResourceTokenAuth"})
SERVICE = "aws"
REMEMBER_SECONDS = 30.0  # as API keys: a revocation reaches replicas without Redis within this
_REMEMBERED = 4096
_KEY_ID_PREFIX = "SBAK"


@dataclass(frozen=True, slots=True)
class AccessKey:
    """Who signs with an access key, and the secret that verifies its signatures."""

    access_key_id: str
    tenant: str
    subject: str
    secret: str
    planes: frozenset[str] = PLANES  # "control" (administer the tenant), "data" (act as the subject)


@dataclass(frozen=True, slots=True)
class _Remembered:
    key: AccessKey
    until: float
    epoch: int


def _owner(tenant: str, access_key_id: str) -> Owner:
    return Owner(tenant, SERVICE, access_key_id, "secret_access_key")


def _new_pair() -> tuple[str, str]:
    """An access key id shaped like AWS's (20 upper-case letters and digits) and a 40-character
    secret."""
    key_id = _KEY_ID_PREFIX + base64.b32encode(secrets.token_bytes(10)).decode()[:16]
    secret = base64.b64encode(secrets.token_bytes(30)).decode().replace("+", "A").replace("/", "B")
    return key_id, secret


class AccessKeys:
    """Makes, lists, revokes and looks up access keys."""

    def __init__(self, store: Store, vault: Vault, revocations: Revocations) -> None:
        self.store = store
        self.vault = vault
        self.revocations = revocations
        self._seen: OrderedDict[str, _Remembered] = OrderedDict()

    async def create(self, tenant: str, subject: str, planes: frozenset[str] = PLANES) -> AccessKey:
        """A new key pair of ``tenant`` standing for ``subject``; its secret is returned this once.

        ``planes``: what it may use. The control plane administers the tenant (its gateways,
        credential providers and their secrets); an agent's key needs the data plane alone."""
        if not planes or not planes <= {*PLANES, WORKLOAD}:
            raise ValueError(f"an access key's planes are some of {', '.join(sorted(PLANES))}")
        key_id, secret = _new_pair()
        digest = hashlib.sha256(secret.encode()).hexdigest()
        await self.vault.put(_owner(tenant, key_id), secret)
        await self.store.add_api_key(tenant, key_id, digest, PURPOSE, subject=subject, scopes=sorted(planes))
        return AccessKey(key_id, tenant, subject, secret, planes)

    async def list(self, tenant: str) -> list[dict[str, Any]]:
        """The tenant's access keys (ids, subjects, when made; never the secrets)."""
        return [
            {
                "access_key_id": k["key_id"],
                "subject": k["subject"],
                "planes": k["scopes"],
                "created_at": k["created_at"],
            }
            for k in await self.store.list_keys(tenant, PURPOSE)
        ]

    async def revoke(self, tenant: str, access_key_id: str) -> bool:
        """Revoke a key of the tenant; every replica stops accepting it. False: no such key."""
        if not await self.store.revoke_api_key(tenant, access_key_id, PURPOSE):
            return False
        await self.vault.delete(_owner(tenant, access_key_id))
        self._seen.clear()
        await self.revocations.revoked()
        return True

    def forget(self) -> None:
        """Drop the keys this process remembers (the store changed under it: maybe a revocation)."""
        self._seen.clear()

    async def find(self, access_key_id: str) -> AccessKey | None:
        """The key with this id, or None when there is none (or it was revoked)."""
        epoch = await self.revocations.epoch()
        seen = self._seen.get(access_key_id)
        now = time.monotonic()
        if seen is not None and seen.until > now and epoch is not None and seen.epoch == epoch:
            self._seen.move_to_end(access_key_id)
            return seen.key
        record = await self.store.key(access_key_id, PURPOSE)
        if record is None:
            self._seen.pop(access_key_id, None)
            return None
        tenant = str(record["tenant"])
        plain = await self.vault.get(_owner(tenant, access_key_id), tool="sigv4")
        if plain is None:
            return None
        planes = frozenset(record["scopes"] or PLANES) & {*PLANES, WORKLOAD}
        key = AccessKey(
            access_key_id, tenant, str(record["subject"] or access_key_id), plain.decode(), planes
        )
        if epoch is not None:
            self._seen[access_key_id] = _Remembered(key, now + REMEMBER_SECONDS, epoch)
            self._seen.move_to_end(access_key_id)
            while len(self._seen) > _REMEMBERED:
                self._seen.popitem(last=False)
        return key
