"""The vault on the store (SQLite and PostgreSQL): sealed at rest, bound to its owner, audited
before use, re-wrapped on rotation; the master key sources refuse what they cannot trust."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.store import Store, StoreSecrets
from gateway.store._schema import secrets
from identity.vault import EnvKey, KmsKey, LocalKeyring, Owner, Sealed, Vault, VaultError

pytestmark = pytest.mark.anyio
SECRET = "ghp_THIS-IS-A-KNOWN-TEST-SECRET-0123456789"
ALICE = Owner("default", "alice", "github")
BOB = Owner("default", "bob", "github")


async def test_secrets_are_sealed_at_rest_and_open_for_their_owner(store: Store, tmp_path: Path) -> None:
    vault = Vault(LocalKeyring(tmp_path / "vault.keys"), StoreSecrets(store))
    await vault.put(ALICE, SECRET)
    assert await vault.get(ALICE, tool="github___list_repos") == SECRET.encode()
    assert await vault.get(BOB) is None
    # Nothing stored shows the secret: every column of every row, as bytes and as text.
    async with store._read("scan") as conn:
        rows = (await conn.execute(sa.select(secrets))).all()
    blob = b"".join(
        bytes(v) if isinstance(v, bytes | memoryview) else str(v).encode() for r in rows for v in r
    )
    assert rows and SECRET.encode() not in blob and base64.b64encode(SECRET.encode()) not in blob
    if store.url.startswith("sqlite"):  # and not in the database file itself (nor its WAL)
        db = Path(store.url.split("///", 1)[1])
        for path in (db, db.with_name(db.name + "-wal")):
            if path.exists():
                assert SECRET.encode() not in path.read_bytes()
    log = await StoreSecrets(store).audit_log("default")
    assert [(e["user"], e["action"], e["tool"], e["outcome"]) for e in reversed(log)] == [
        ("alice", "store", None, "ok"),
        ("alice", "use", "github___list_repos", "ok"),
        ("bob", "use", None, "missing"),
    ]


async def test_a_row_copied_to_another_owner_does_not_open(store: Store, tmp_path: Path) -> None:
    rows = StoreSecrets(store)
    vault = Vault(LocalKeyring(tmp_path / "vault.keys"), rows)
    await vault.put(ALICE, SECRET)
    sealed = await rows.get_secret(ALICE)
    assert sealed is not None
    await rows.put_secret(BOB, sealed)  # what an attacker with database access might try
    with pytest.raises(VaultError, match="wrapped for another secret or altered"):
        await vault.get(BOB)
    tampered = Sealed(
        sealed.ciphertext[:-1] + bytes([sealed.ciphertext[-1] ^ 1]),
        sealed.nonce,
        sealed.wrapped_key,
        sealed.key_id,
    )
    await rows.put_secret(ALICE, tampered)
    with pytest.raises(VaultError, match="another owner or was altered"):
        await vault.get(ALICE)
    outcomes = [e["outcome"] for e in await rows.audit_log("default")]
    assert outcomes[:2] == ["refused", "refused"]


class _AuditDown(StoreSecrets):
    async def audit(self, owner: Owner, *, action: str, tool: str | None, outcome: str) -> None:
        if action == "use":
            raise RuntimeError("the audit log cannot be written")
        await super().audit(owner, action=action, tool=tool, outcome=outcome)


async def test_no_audit_record_no_secret(store: Store, tmp_path: Path) -> None:
    vault = Vault(LocalKeyring(tmp_path / "vault.keys"), _AuditDown(store))
    await vault.put(ALICE, SECRET)
    with pytest.raises(RuntimeError, match="audit log cannot be written"):
        await vault.get(ALICE)


async def test_rotation_rewraps_every_data_key(store: Store, tmp_path: Path) -> None:
    keyring = LocalKeyring(tmp_path / "vault.keys")
    rows = StoreSecrets(store)
    vault = Vault(keyring, rows)
    for owner in (ALICE, BOB, Owner("other-tenant", "carol", "slack", "refresh_token")):
        await vault.put(owner, f"{SECRET}-{owner.user}")
    before = {o: s for o, s in await rows.all_secrets()}
    new = keyring.add_key()
    assert await vault.rotate() == 3
    assert await vault.rotate() == 0
    after = {o: s for o, s in await rows.all_secrets()}
    assert {s.key_id for s in after.values()} == {new}
    assert all(after[o].ciphertext == before[o].ciphertext for o in before)  # only the wrapping changed
    # The old key can go now: everything opens with the new one alone.
    doc = (tmp_path / "vault.keys").read_bytes()
    import orjson

    parsed = orjson.loads(doc)
    parsed["keys"] = {new: parsed["keys"][new]}
    (tmp_path / "vault.keys").write_bytes(orjson.dumps(parsed))
    fresh = Vault(LocalKeyring(tmp_path / "vault.keys"), rows)
    assert await fresh.get(BOB) == f"{SECRET}-bob".encode()


def test_master_key_sources_refuse_what_they_cannot_trust(tmp_path: Path) -> None:
    with pytest.raises(VaultError, match="does not exist"):
        LocalKeyring(tmp_path / "missing.keys", create=False)
    path = tmp_path / "vault.keys"
    LocalKeyring(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    os.chmod(path, 0o644)
    with pytest.raises(VaultError, match="readable by others"):
        LocalKeyring(path)
    with pytest.raises(VaultError, match="is not set"):
        EnvKey("SB_VAULT_KEY", {})
    with pytest.raises(VaultError, match="not base64"):
        EnvKey("SB_VAULT_KEY", {"SB_VAULT_KEY": "not base64!"})
    with pytest.raises(VaultError, match="must be 32"):
        EnvKey("SB_VAULT_KEY", {"SB_VAULT_KEY": base64.b64encode(b"short").decode()})


@pytest.fixture(scope="module")
def kms_endpoint() -> Iterator[str]:
    """moto's KMS API served over HTTP on loopback: boto3 talks to it as to AWS."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


async def test_kms_wraps_the_data_keys(store: Store, kms_endpoint: str) -> None:
    import boto3

    client = boto3.client(
        "kms",
        endpoint_url=kms_endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    key_id = client.create_key(Description="switchboard vault test")["KeyMetadata"]["KeyId"]
    rows = StoreSecrets(store)
    vault = Vault(KmsKey(key_id, client), rows)
    await vault.put(ALICE, SECRET)
    assert await vault.get(ALICE) == SECRET.encode()
    sealed = await rows.get_secret(ALICE)
    assert sealed is not None and sealed.key_id == f"kms:{key_id}"
    await rows.put_secret(BOB, sealed)  # the encryption context names alice: KMS refuses bob's copy
    with pytest.raises(VaultError, match="AWS KMS could not unwrap"):
        await vault.get(BOB)
