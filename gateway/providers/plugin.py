"""A ToolProvider class of the user's own, by import path.

The class is called as ``Class(id, **options)`` and must be a ToolProvider.
This is how a fixture with resources and prompts (examples/conformance) or an
in-house integration plugs in without a new target kind.
"""

from __future__ import annotations

from typing import ClassVar

from gateway.capabilities import import_object
from gateway.config import PluginTarget
from gateway.core.errors import ConfigError
from gateway.core.provider import ToolProvider
from gateway.core.wrappers import WrapperProvider


class PluginProvider(WrapperProvider):
    """Delegates everything to the user's provider instance."""

    kind: ClassVar[str] = "plugin"

    def __init__(self, config: PluginTarget, *, gateway: str = "default") -> None:
        cls = import_object(config.provider, "provider")
        if not (isinstance(cls, type) and issubclass(cls, ToolProvider)):
            raise ConfigError(
                f"provider {config.provider!r} is not a gateway.core.provider.ToolProvider subclass"
            )
        try:
            inner = cls(config.name, **config.options)
        except TypeError as exc:
            raise ConfigError(f"provider {config.provider!r} does not accept these options: {exc}") from None
        super().__init__(inner)
