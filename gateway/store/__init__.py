"""Persistence: gateways, targets and admin API keys per tenant.

SQLite (a file in the data dir) is the embedded default; PostgreSQL lets several replicas share
one configuration. `Store.open` migrates the schema (Alembic, shipped in ``migrations/``) before
anything else, and every failure of the database surfaces as `StoreError`.
"""

from gateway.store._engine import StoreError, normalize_url
from gateway.store._store import Change, GatewayDocument, GatewayRecord, PinRecord, Store, TargetRecord

__all__ = [
    "Change",
    "GatewayDocument",
    "GatewayRecord",
    "PinRecord",
    "Store",
    "StoreError",
    "TargetRecord",
    "normalize_url",
]
