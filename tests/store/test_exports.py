import gateway.store
from gateway.core.errors import SwitchboardError


def test_public_api() -> None:
    assert sorted(gateway.store.__all__) == [
        "Change",
        "GatewayDocument",
        "GatewayRecord",
        "PinRecord",
        "Store",
        "StoreError",
        "TargetRecord",
        "normalize_url",
    ]
    assert issubclass(gateway.store.StoreError, SwitchboardError)
