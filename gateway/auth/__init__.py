"""The gateway's edge towards identity: who calls (inbound authentication of each gateway's
``auth``, admin and API keys: ``_inbound``), how the gateway calls upstreams for them
(outbound credentials wired from ``credential_providers`` into identity's broker:
``_outbound``), the access keys AgentCore's clients sign with (``_aws_keys``) and the vault
the secrets live in (``_vault``). The identity peer
(``identity/``) does the protocol work; this package wires it to gateways.
"""

from gateway.auth._aws_keys import WORKLOAD, WORKLOAD_OPERATIONS, AccessKey, AccessKeys
from gateway.auth._inbound import KEY_PREFIX, METADATA_PREFIX, Authenticator, Revocations
from gateway.auth._outbound import (
    TENANT_VAULT,
    CredentialsFor,
    consent_user,
    credentials_for,
    provider_specs,
    qualified,
    vault_name,
)
from gateway.auth._vault import open_vault

__all__ = [
    "KEY_PREFIX",
    "METADATA_PREFIX",
    "TENANT_VAULT",
    "WORKLOAD",
    "WORKLOAD_OPERATIONS",
    "AccessKey",
    "AccessKeys",
    "Authenticator",
    "CredentialsFor",
    "Revocations",
    "consent_user",
    "credentials_for",
    "open_vault",
    "provider_specs",
    "qualified",
    "vault_name",
]
