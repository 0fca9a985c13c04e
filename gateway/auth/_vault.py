"""Wiring of the vault (identity.vault) to this process: which master key, which store."""

from __future__ import annotations

from gateway.settings import Settings
from gateway.store import Store, StoreSecrets
from identity.vault import EnvKey, KmsKey, LocalKeyring, MasterKey, Vault, VaultError


async def open_vault(settings: Settings, store: Store) -> Vault:
    """The vault for this process.

    Raises:
        VaultError: the master key is missing or unusable (the process must not start: the
            secrets in the store could not be opened, or new ones would be sealed under a
            key nobody keeps).
    """
    rows = StoreSecrets(store)
    master: MasterKey
    if settings.vault_kms_key_id:
        import boto3

        master = KmsKey(settings.vault_kms_key_id, boto3.client("kms"))
    elif settings.vault_key_env:
        master = EnvKey(settings.vault_key_env)
    else:
        path = settings.vault_key_file or settings.data_dir / "vault.keys"
        has_secrets = bool(await rows.all_secrets())
        if has_secrets and not path.exists():
            raise VaultError(
                f"the vault key file {path} is missing but the store holds sealed secrets; restore the "
                "file (or set SWITCHBOARD_VAULT_KEY_FILE to where it is). Starting with a new key would "
                "leave every stored secret unreadable."
            )
        master = LocalKeyring(path, create=True)
    return Vault(master, rows)
