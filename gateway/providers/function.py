"""Python callables as tools ("Lambda-like" functions in the gateway process).

A function's input schema comes from its type hints (through pydantic) unless
the config gives one; its docstring's first paragraph becomes the description.
A parameter annotated ``CallContext`` receives the call's context, through which
the function can report progress, ask the user (elicitation) or ask the
client's model (sampling), in either protocol era. Sync functions run in a
worker thread so they never block the event loop.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, get_type_hints

import anyio
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from gateway.capabilities import import_object
from gateway.config import FunctionRef, FunctionTarget
from gateway.core.errors import ConfigError, ConfigIssue, ToolExecutionError, ToolNotFound
from gateway.core.provider import ToolProvider
from gateway.core.types import CallContext, ToolCall, ToolResult, ToolSpec
from gateway.providers._results import to_result


@dataclass(frozen=True, slots=True)
class _Function:
    spec: ToolSpec
    fn: Callable[..., Any]
    args_model: type[BaseModel]
    context_param: str | None
    is_async: bool


def _describe(fn: Callable[..., Any]) -> str:
    doc = inspect.getdoc(fn) or ""
    return doc.split("\n\n", 1)[0].strip()


def _compile(ref: FunctionRef) -> _Function:
    fn = import_object(ref.function, "function")
    if not callable(fn):
        raise ConfigError(f"function {ref.function!r} is not callable")
    try:
        hints = get_type_hints(fn)
    except Exception as exc:  # noqa: BLE001 - boundary: user code's annotations may not resolve
        raise ConfigError(f"function {ref.function!r}: cannot read its type hints: {exc}") from None
    fields: dict[str, Any] = {}
    context_param = None
    for pname, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(pname, Any)
        if annotation is CallContext:
            context_param = pname
            continue
        default = ... if param.default is param.empty else param.default
        fields[pname] = (annotation, default)
    model = create_model(
        f"{getattr(fn, '__name__', 'fn')}_arguments",
        __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=True),
        **fields,
    )
    schema = ref.input_schema
    if schema is None:
        try:
            schema = model.model_json_schema()
        except Exception as exc:  # noqa: BLE001 - boundary: pydantic cannot describe every annotation
            raise ConfigError(
                f"function {ref.function!r}: cannot derive a JSON Schema from its type hints ({exc}); "
                "give `input_schema` in the config"
            ) from None
        schema.pop("title", None)
        schema.setdefault("properties", {})
        for prop in schema["properties"].values():
            prop.pop("title", None)
    name: str = ref.name or str(getattr(fn, "__name__", ref.function.rpartition(":")[2]))
    spec = ToolSpec(name=name, description=ref.description or _describe(fn), input_schema=schema)
    target = inspect.unwrap(fn)
    is_async = inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(type(fn).__call__)
    return _Function(spec, fn, model, context_param, is_async)


class FunctionProvider(ToolProvider):
    """Serves the Python callables of a ``kind: function`` target."""

    kind: ClassVar[str] = "function"

    def __init__(self, config: FunctionTarget, *, gateway: str = "default") -> None:
        super().__init__(config.name)
        self.config = config
        functions: dict[str, _Function] = {}
        issues: list[ConfigIssue] = []
        for i, entry in enumerate(config.functions):
            ref = FunctionRef(function=entry) if isinstance(entry, str) else entry
            try:
                compiled = _compile(ref)
            except ConfigError as exc:
                issues.extend(ConfigIssue(i_.message, f"functions[{i}]") for i_ in exc.issues)
                continue
            if compiled.spec.name in functions:
                issues.append(
                    ConfigIssue(
                        f"two functions are named {compiled.spec.name!r}; give one a `name`",
                        f"functions[{i}]",
                    )
                )
            functions[compiled.spec.name] = compiled
        if issues:
            raise ConfigError(issues)
        self.functions = functions

    async def list_tools(self, ctx: CallContext) -> Sequence[ToolSpec]:
        return [f.spec for f in self.functions.values()]

    async def call_tool(self, call: ToolCall, ctx: CallContext) -> ToolResult:
        fn = self.functions.get(call.name)
        if fn is None:
            raise ToolNotFound(call.public_name or call.name)
        try:
            parsed = fn.args_model.model_validate(call.arguments)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ToolExecutionError(f"Invalid argument {where!r}: {first['msg']}") from None
        kwargs = {k: getattr(parsed, k) for k in fn.args_model.model_fields}
        if fn.context_param:
            kwargs[fn.context_param] = ctx
        if fn.is_async:
            value = await fn.fn(**kwargs)
        else:
            value = await anyio.to_thread.run_sync(functools.partial(fn.fn, **kwargs), abandon_on_cancel=True)
        return to_result(value)
