"""``kind: connector``: a SaaS platform from the connector catalog (gateway.connectors).

Runs as the OpenAPI provider over the connector's document, with the connector's
curation on top: only its operations, under its names and descriptions, with its fixed
arguments, uniform paging and trimmed results.
"""

from __future__ import annotations

from typing import ClassVar, Self

from gateway.config import ConnectorTarget
from gateway.connectors import Entry, check, curation, expand, find
from gateway.core.errors import ConfigError
from gateway.core.wrappers import Filtered, Overridden, WrapperProvider
from gateway.providers.openapi import OpenApiProvider


class ConnectorProvider(WrapperProvider):
    kind: ClassVar[str] = "connector"

    def __init__(self, config: ConnectorTarget, *, gateway: str = "default") -> None:
        self.entry: Entry = find(config.connector)
        self.api = OpenApiProvider(expand(config, self.entry), gateway=gateway)
        overrides, shown = curation(self.entry.connector)
        super().__init__(Filtered(Overridden(self.api, overrides), shown))

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        assert self.api.compiled is not None
        issues = check(self.entry, self.api.compiled)
        if issues:
            await self.__aexit__(None, None, None)
            raise ConfigError(issues)
        return self
