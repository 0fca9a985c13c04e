"""Wrappers shape what a provider shows without changing how it runs.

Each wrapper is a small ToolProvider around another one. They compose:
``Filtered(Renamed(provider, ...), ...)``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any, ClassVar, Self

from gateway.core.errors import ToolNotFound
from gateway.core.provider import PromptSpec, ResourceSpec, ResourceTemplateSpec, ToolProvider
from gateway.core.types import JSON, CallContext, ToolCall, ToolResult, ToolSpec


class WrapperProvider(ToolProvider):
    """Delegates everything to ``inner``; subclasses override what they shape."""

    kind: ClassVar[str] = "wrapper"

    def __init__(self, inner: ToolProvider) -> None:
        super().__init__(inner.id)
        self.inner = inner
        inner.subscribe(self.changed)

    async def __aenter__(self) -> Self:
        if self.egress_allow is not None and self.inner.egress_allow is None:
            self.inner.egress_allow = self.egress_allow  # a tenant's wrapper: so is what it wraps
        await self.inner.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.inner.__aexit__(exc_type, exc, tb)

    async def list_tools(self, ctx: CallContext) -> Sequence[ToolSpec]:
        return await self.inner.list_tools(ctx)

    async def call_tool(self, call: ToolCall, ctx: CallContext) -> ToolResult:
        return await self.inner.call_tool(call, ctx)

    def problems(self) -> Sequence[str]:
        return self.inner.problems()

    def healthy(self) -> bool:
        return self.inner.healthy()

    def withheld(self) -> Mapping[str, str]:
        return self.inner.withheld()

    async def list_resources(self, ctx: CallContext) -> Sequence[ResourceSpec]:
        return await self.inner.list_resources(ctx)

    async def list_resource_templates(self, ctx: CallContext) -> Sequence[ResourceTemplateSpec]:
        return await self.inner.list_resource_templates(ctx)

    async def read_resource(self, uri: str, ctx: CallContext) -> Sequence[JSON]:
        return await self.inner.read_resource(uri, ctx)

    async def list_prompts(self, ctx: CallContext) -> Sequence[PromptSpec]:
        return await self.inner.list_prompts(ctx)

    async def get_prompt(self, name: str, arguments: Mapping[str, str], ctx: CallContext) -> JSON:
        return await self.inner.get_prompt(name, arguments, ctx)

    async def complete(self, ref: JSON, argument: JSON, context: JSON | None, ctx: CallContext) -> JSON:
        return await self.inner.complete(ref, argument, context, ctx)


class Filtered(WrapperProvider):
    """Shows only tools matching ``include`` globs and not matching ``exclude`` globs."""

    def __init__(self, inner: ToolProvider, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> None:
        super().__init__(inner)
        self.include = tuple(include)
        self.exclude = tuple(exclude)

    def allows(self, name: str) -> bool:
        if self.include and not any(fnmatch.fnmatchcase(name, p) for p in self.include):
            return False
        return not any(fnmatch.fnmatchcase(name, p) for p in self.exclude)

    async def list_tools(self, ctx: CallContext) -> Sequence[ToolSpec]:
        return [t for t in await self.inner.list_tools(ctx) if self.allows(t.name)]

    async def call_tool(self, call: ToolCall, ctx: CallContext) -> ToolResult:
        if not self.allows(call.name):
            raise ToolNotFound(call.public_name or call.name)
        return await self.inner.call_tool(call, ctx)

    def withheld(self) -> Mapping[str, str]:
        return {n: why for n, why in self.inner.withheld().items() if self.allows(n)}


class Overridden(WrapperProvider):
    """Renames tools, replaces their descriptions or titles, and fixes argument values.

    ``overrides`` maps the inner tool name to ``{"name"?, "description"?, "title"?,
    "arguments"?}``. Fixed arguments disappear from the inputSchema the model sees
    and are always sent with the value given, whatever the model passes.
    """

    def __init__(self, inner: ToolProvider, overrides: Mapping[str, Mapping[str, Any]]) -> None:
        super().__init__(inner)
        self.overrides = dict(overrides)
        self._back = {o["name"]: inner_name for inner_name, o in self.overrides.items() if o.get("name")}

    async def list_tools(self, ctx: CallContext) -> Sequence[ToolSpec]:
        out = []
        for tool in await self.inner.list_tools(ctx):
            o = self.overrides.get(tool.name)
            if o:
                tool = replace(
                    tool,
                    name=o.get("name") or tool.name,
                    description=o.get("description") or tool.description,
                    title=o.get("title") or tool.title,
                    input_schema=_without(tool.input_schema, o.get("arguments") or {}),
                    annotations={**(tool.annotations or {}), **o["annotations"]}
                    if o.get("annotations")
                    else tool.annotations,
                )
            out.append(tool)
        return out

    def withheld(self) -> Mapping[str, str]:
        return {(self.overrides.get(n, {}).get("name") or n): why for n, why in self.inner.withheld().items()}

    async def call_tool(self, call: ToolCall, ctx: CallContext) -> ToolResult:
        inner_name = self._back.get(call.name, call.name)
        new_name = self.overrides.get(call.name, {}).get("name")
        renamed_away = inner_name == call.name and bool(new_name) and new_name != call.name
        if renamed_away:
            raise ToolNotFound(call.public_name or call.name)
        fixed = self.overrides.get(inner_name, {}).get("arguments") or {}
        arguments = {**{k: v for k, v in call.arguments.items() if k not in fixed}, **fixed}
        return await self.inner.call_tool(replace(call, name=inner_name, arguments=arguments), ctx)


def _without(schema: Mapping[str, Any], fixed: Mapping[str, Any]) -> Mapping[str, Any]:
    if not fixed:
        return schema
    out = dict(schema)
    out["properties"] = {k: v for k, v in (schema.get("properties") or {}).items() if k not in fixed}
    if "required" in schema:
        out["required"] = [r for r in schema["required"] if r not in fixed]
        if not out["required"]:
            del out["required"]
    return out
