"""Persistence: gateways, targets and admin API keys per tenant.

SQLite (a file in the data dir) is the embedded default; PostgreSQL lets several replicas share
one configuration. `Store.open` migrates the schema (Alembic, shipped in ``migrations/``) before
anything else, and every failure of the database surfaces as `StoreError`.
"""

from gateway.store._a2a import StoreA2a, TaskRow
from gateway.store._approvals import StoreApprovals
from gateway.store._aws import AwsResource, StoreAws
from gateway.store._calls import CallRecord, StoreCalls
from gateway.store._engine import StoreError, normalize_url
from gateway.store._rows import Change, GatewayDocument, GatewayRecord, PinRecord, TargetRecord
from gateway.store._secrets import StoreSecrets
from gateway.store._store import Store
from gateway.store._traces import SessionFilter, StoreTraces

__all__ = [
    "AwsResource",
    "CallRecord",
    "Change",
    "GatewayDocument",
    "GatewayRecord",
    "PinRecord",
    "SessionFilter",
    "Store",
    "StoreA2a",
    "StoreApprovals",
    "StoreAws",
    "StoreCalls",
    "StoreError",
    "StoreSecrets",
    "StoreTraces",
    "TargetRecord",
    "TaskRow",
    "normalize_url",
]
