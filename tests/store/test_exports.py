import gateway.store
from gateway.core.errors import SwitchboardError


def test_public_api() -> None:
    assert sorted(gateway.store.__all__) == [
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
    assert issubclass(gateway.store.StoreError, SwitchboardError)
