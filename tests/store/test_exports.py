import gateway.store
from gateway.core.errors import SwitchboardError


def test_public_api() -> None:
    assert sorted(gateway.store.__all__) == [
        "CallRecord",
        "Change",
        "GatewayDocument",
        "GatewayRecord",
        "PinRecord",
        "SessionFilter",
        "Store",
        "StoreApprovals",
        "StoreCalls",
        "StoreError",
        "StoreSecrets",
        "StoreTraces",
        "TargetRecord",
        "normalize_url",
    ]
    assert issubclass(gateway.store.StoreError, SwitchboardError)
