"""Persistence: gateways, targets and API keys per tenant (SQLite by default, PostgreSQL to scale out)."""

from gateway.store.store import Change, GatewayRecord, Store, StoreError, TargetRecord, normalize_url

__all__ = ["Change", "GatewayRecord", "Store", "StoreError", "TargetRecord", "normalize_url"]
