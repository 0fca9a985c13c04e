"""The vault: every secret encrypted at rest, bound to whom it belongs.

Envelope encryption: each secret gets its own random 256-bit data key; the secret is
sealed with AES-256-GCM under that key, with the owner (tenant, user, provider, name)
as associated data, so a row copied to another owner fails to open. The data key is
stored wrapped by a master key:

- `LocalKeyring`: keys in a file (created 0600 on first start: the embedded default);
- `EnvKey`: one key from an environment variable (base64 of 32 bytes);
- `KmsKey`: AWS KMS (``Encrypt``/``Decrypt`` of the data key, through boto3).

`Vault.rotate` re-wraps every data key under the current master key (the secrets
themselves are not touched). Every use of a secret is recorded in the audit log
*before* the secret is returned; if the record cannot be written, the secret is not
handed out.

Persistence is behind `SecretStore` (the gateway implements it on its database), so
this module never imports the gateway.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import anyio.to_thread
import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE = 12


class VaultError(Exception):
    """The vault cannot do what was asked (missing key, tampered or misplaced row)."""


@dataclass(frozen=True, slots=True)
class Owner:
    """Whose secret: a row opens only for the owner it was sealed for."""

    tenant: str
    user: str
    provider: str
    name: str = "token"

    def aad(self) -> bytes:
        return orjson.dumps([self.tenant, self.user, self.provider, self.name])


@dataclass(frozen=True, slots=True)
class Sealed:
    """A secret as stored: nothing here reveals it without the master key."""

    ciphertext: bytes
    nonce: bytes
    wrapped_key: bytes
    key_id: str


class MasterKey(Protocol):
    """Wraps and unwraps data keys."""

    @property
    def current(self) -> str: ...

    async def wrap(self, data_key: bytes, context: bytes) -> tuple[str, bytes]: ...

    async def unwrap(self, key_id: str, wrapped: bytes, context: bytes) -> bytes: ...


class _AesKeys:
    """Master keys held in memory (by id); wraps with AES-256-GCM."""

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        if current not in keys:
            raise VaultError(f"the current master key {current!r} is not in the keyring")
        for key_id, key in keys.items():
            if len(key) != 32:
                raise VaultError(f"master key {key_id!r} is {len(key)} bytes; it must be 32 (AES-256)")
        self._keys = dict(keys)
        self._current = current

    @property
    def current(self) -> str:
        return self._current

    async def wrap(self, data_key: bytes, context: bytes) -> tuple[str, bytes]:
        nonce = os.urandom(_NONCE)
        return self._current, nonce + AESGCM(self._keys[self._current]).encrypt(nonce, data_key, context)

    async def unwrap(self, key_id: str, wrapped: bytes, context: bytes) -> bytes:
        key = self._keys.get(key_id)
        if key is None:
            raise VaultError(f"master key {key_id!r} is not available; restore it to open this secret")
        try:
            return AESGCM(key).decrypt(wrapped[:_NONCE], wrapped[_NONCE:], context)
        except InvalidTag:
            raise VaultError(
                "a data key does not open: it was wrapped for another secret or altered"
            ) from None


class LocalKeyring(_AesKeys):
    """Master keys in a JSON file (``{"current": id, "keys": {id: base64}}``), 0600.

    ``create=True`` makes the file with one key when it is missing (the embedded default).
    """

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = path
        if not path.exists():
            if not create:
                raise VaultError(
                    f"the vault key file {path} does not exist; restore it, or the secrets are lost"
                )
            _write_keyring(path, {"k1": secrets.token_bytes(32)}, "k1")
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise VaultError(f"the vault key file {path} is readable by others (mode {mode:o}); chmod 600 it")
        try:
            doc = orjson.loads(path.read_bytes())
            keys = {str(k): base64.b64decode(v) for k, v in dict(doc["keys"]).items()}
            current = str(doc["current"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise VaultError(f"the vault key file {path} is not valid: {exc}") from None
        super().__init__(keys, current)

    def add_key(self) -> str:
        """Make a new current key (old ones stay, to unwrap until `Vault.rotate` re-wraps)."""
        key_id = f"k{len(self._keys) + 1}"
        while key_id in self._keys:
            key_id += "x"
        self._keys[key_id] = secrets.token_bytes(32)
        self._current = key_id
        _write_keyring(self.path, self._keys, key_id)
        return key_id


def _write_keyring(path: Path, keys: Mapping[str, bytes], current: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            orjson.dumps(
                {"current": current, "keys": {k: base64.b64encode(v).decode() for k, v in keys.items()}}
            )
        )
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class EnvKey(_AesKeys):
    """One master key from an environment variable (base64 of 32 bytes)."""

    def __init__(self, variable: str, environ: Mapping[str, str] | None = None) -> None:
        value = (environ if environ is not None else os.environ).get(variable)
        if not value:
            raise VaultError(f"the vault master key variable {variable} is not set")
        try:
            key = base64.b64decode(value, validate=True)
        except ValueError:
            raise VaultError(
                f"{variable} is not base64; generate one with: openssl rand -base64 32"
            ) from None
        super().__init__({f"env:{variable}": key}, f"env:{variable}")


class KmsKey:
    """AWS KMS as the master key: data keys are KMS-encrypted with the owner as context."""

    def __init__(self, key_id: str, client: Any) -> None:
        self.key_id = key_id
        self.client = client  # a boto3 KMS client

    @property
    def current(self) -> str:
        return f"kms:{self.key_id}"

    def _context(self, context: bytes) -> dict[str, str]:
        return {"switchboard": base64.b64encode(context).decode()}

    async def wrap(self, data_key: bytes, context: bytes) -> tuple[str, bytes]:
        def call() -> bytes:
            out = self.client.encrypt(
                KeyId=self.key_id, Plaintext=data_key, EncryptionContext=self._context(context)
            )
            return bytes(out["CiphertextBlob"])

        return self.current, await anyio.to_thread.run_sync(call)

    async def unwrap(self, key_id: str, wrapped: bytes, context: bytes) -> bytes:
        def call() -> bytes:
            try:
                out = self.client.decrypt(CiphertextBlob=wrapped, EncryptionContext=self._context(context))
            except Exception as exc:  # noqa: BLE001 - boundary: botocore's errors, worded for the operator
                raise VaultError(f"AWS KMS could not unwrap a data key: {exc}") from None
            return bytes(out["Plaintext"])

        return await anyio.to_thread.run_sync(call)


class SecretStore(Protocol):
    """Where sealed secrets and the audit log live."""

    async def get_secret(self, owner: Owner) -> Sealed | None: ...

    async def put_secret(self, owner: Owner, sealed: Sealed) -> None: ...

    async def delete_secret(self, owner: Owner) -> bool: ...

    async def all_secrets(self) -> Sequence[tuple[Owner, Sealed]]: ...

    async def audit(self, owner: Owner, *, action: str, tool: str | None, outcome: str) -> None: ...


class Vault:
    """Seals, stores and opens secrets; every opening is audited first."""

    def __init__(self, master: MasterKey, store: SecretStore) -> None:
        self.master = master
        self.store = store

    async def put(self, owner: Owner, secret: bytes | str) -> None:
        plain = secret.encode() if isinstance(secret, str) else secret
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(_NONCE)
        ciphertext = AESGCM(data_key).encrypt(nonce, plain, owner.aad())
        key_id, wrapped = await self.master.wrap(data_key, owner.aad())
        await self.store.put_secret(owner, Sealed(ciphertext, nonce, wrapped, key_id))
        await self.store.audit(owner, action="store", tool=None, outcome="ok")

    async def get(self, owner: Owner, *, tool: str | None = None) -> bytes | None:
        """The secret, or None when there is none; audited before it is returned."""
        sealed = await self.store.get_secret(owner)
        if sealed is None:
            await self.store.audit(owner, action="use", tool=tool, outcome="missing")
            return None
        try:
            plain = await self._open(owner, sealed)
        except VaultError:
            await self.store.audit(owner, action="use", tool=tool, outcome="refused")
            raise
        await self.store.audit(owner, action="use", tool=tool, outcome="ok")  # before it is handed out
        return plain

    async def delete(self, owner: Owner) -> bool:
        deleted = await self.store.delete_secret(owner)
        if deleted:
            await self.store.audit(owner, action="delete", tool=None, outcome="ok")
        return deleted

    async def _open(self, owner: Owner, sealed: Sealed) -> bytes:
        data_key = await self.master.unwrap(sealed.key_id, sealed.wrapped_key, owner.aad())
        try:
            return AESGCM(data_key).decrypt(sealed.nonce, sealed.ciphertext, owner.aad())
        except InvalidTag:
            raise VaultError(
                f"the secret of {owner} does not open: it belongs to another owner or was altered"
            ) from None

    async def rotate(self) -> int:
        """Re-wrap every data key under the current master key; returns how many changed."""
        changed = 0
        for owner, sealed in await self.store.all_secrets():
            if sealed.key_id == self.master.current:
                continue
            data_key = await self.master.unwrap(sealed.key_id, sealed.wrapped_key, owner.aad())
            key_id, wrapped = await self.master.wrap(data_key, owner.aad())
            await self.store.put_secret(owner, Sealed(sealed.ciphertext, sealed.nonce, wrapped, key_id))
            await self.store.audit(owner, action="rewrap", tool=None, outcome="ok")
            changed += 1
        return changed
