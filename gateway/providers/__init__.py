"""Tool providers, one module per target kind.

Providers are found through one registry table (kind -> "module:Class"), so
nothing outside this package imports a provider module directly and a new kind
is one line here.
"""

from __future__ import annotations

import importlib
from typing import Any

from gateway.core.provider import ToolProvider

REGISTRY: dict[str, str] = {
    "function": "gateway.providers.function:FunctionProvider",
    "lambda": "gateway.providers.aws_lambda:LambdaProvider",
    "http": "gateway.providers.http_function:HttpFunctionProvider",
    "openapi": "gateway.providers.openapi:OpenApiProvider",
    "mcp": "gateway.providers.mcp:McpProvider",
    "plugin": "gateway.providers.plugin:PluginProvider",
    "connector": "gateway.providers.connector:ConnectorProvider",
    "code_interpreter": "gateway.providers.code_interpreter:CodeInterpreterProvider",
    "a2a": "gateway.providers.a2a:A2aProvider",
    "runtime": "gateway.providers.runtime:RuntimeProvider",
    "memory": "gateway.providers.memory:MemoryProvider",
}


def provider_class(kind: str) -> type[ToolProvider]:
    """The provider class for a target kind (imported on first use)."""
    module_name, _, attr = REGISTRY[kind].partition(":")
    cls: Any = getattr(importlib.import_module(module_name), attr)
    return cls  # type: ignore[no-any-return]
