from __future__ import annotations

from collections.abc import Sequence

import pytest

from gateway.core.catalog import Catalog, CheckedSchema, public_name
from gateway.core.errors import ConfigError, InvalidArguments, ToolNotFound
from gateway.core.provider import ResourceSpec, ToolProvider
from gateway.core.types import CallContext, ToolCall, ToolResult, ToolSpec
from gateway.core.wrappers import Overridden

pytestmark = pytest.mark.anyio


class Echo(ToolProvider):
    kind = "test"

    def __init__(self, id: str, names: Sequence[str], schema: dict | None = None) -> None:
        super().__init__(id)
        self.names = list(names)
        self.schema = schema or {"type": "object"}

    async def list_tools(self, ctx: CallContext) -> Sequence[ToolSpec]:
        return [ToolSpec(name=n, description=f"{n} tool", input_schema=self.schema) for n in self.names]

    async def call_tool(self, call: ToolCall, ctx: CallContext) -> ToolResult:
        return ToolResult.text(f"{self.id}:{call.name}:{call.arguments}")


class Broken(ToolProvider):
    kind = "test"

    async def list_tools(self, ctx: CallContext) -> Sequence[ToolSpec]:
        raise RuntimeError("upstream down")

    async def call_tool(self, call: ToolCall, ctx: CallContext) -> ToolResult:
        raise AssertionError


def test_names_are_prefixed_and_valid() -> None:
    assert public_name("tickets", "open") == "tickets___open"
    assert public_name(None, "open") == "open"


def test_long_names_are_shortened_deterministically_within_64() -> None:
    long = "x" * 100
    a = public_name("target", long)
    assert len(a) == 64
    assert a == public_name("target", long)
    assert a != public_name("target", long + "y")


def test_invalid_characters_are_replaced_and_hashed_so_they_cannot_collide() -> None:
    a, b = public_name("t", "get user"), public_name("t", "get/user")
    assert a != b
    assert all(c.isalnum() or c in "_.-" for c in a + b)


async def test_two_targets_with_same_tool_get_distinct_names() -> None:
    cat = Catalog({"a": Echo("a", ["search"]), "b": Echo("b", ["search"])})
    snap = await cat.refresh(CallContext())
    assert sorted(snap.tools) == ["a___search", "b___search"]


async def test_collision_is_a_config_error_not_shadowing() -> None:
    # Without prefixes two tools of one target can only collide by name
    cat = Catalog({"a": Echo("a", ["x", "x"])}, prefix=False)
    with pytest.raises(ConfigError, match="published by both"):
        await cat.refresh(CallContext())


def test_prefix_opt_out_needs_single_target() -> None:
    with pytest.raises(ConfigError, match="single target"):
        Catalog({"a": Echo("a", ["x"]), "b": Echo("b", ["y"])}, prefix=False)


async def test_one_failing_provider_is_skipped_not_fatal() -> None:
    cat = Catalog({"ok": Echo("ok", ["t"]), "bad": Broken("bad")})
    snap = await cat.refresh(CallContext())
    assert list(snap.tools) == ["ok___t"]
    assert "upstream down" in snap.failed["bad"]


async def test_arguments_are_validated_with_the_field_named() -> None:
    schema = {
        "type": "object",
        "properties": {"user": {"type": "object", "properties": {"age": {"type": "integer"}}}},
        "required": ["user"],
    }
    cat = Catalog({"a": Echo("a", ["t"], schema)})
    await cat.refresh(CallContext())
    with pytest.raises(InvalidArguments) as err:
        cat.resolve("a___t", {"user": {"age": "old"}})
    assert err.value.field_path == "user.age"
    assert "'old' is not of type 'integer'" in str(err.value)
    with pytest.raises(InvalidArguments, match="'user' is a required property"):
        cat.resolve("a___t", {})
    _, call = cat.resolve("a___t", {"user": {"age": 3}})
    assert call.name == "t" and call.public_name == "a___t"


async def test_unknown_tool() -> None:
    cat = Catalog({"a": Echo("a", ["t"])})
    await cat.refresh(CallContext())
    with pytest.raises(ToolNotFound):
        cat.resolve("a___nope", {})


async def test_invalid_input_schema_is_a_config_error() -> None:
    cat = Catalog({"a": Echo("a", ["t"], {"type": "objekt"})})
    with pytest.raises(ConfigError, match="is not valid JSON Schema"):
        await cat.refresh(CallContext())


class Shaped(ToolProvider):
    """One tool with an output schema and resources; its answers are set by the test."""

    kind = "test"

    def __init__(self, id: str, structured: dict | None = None) -> None:
        super().__init__(id)
        self.structured = structured or {"n": 1}

    async def list_tools(self, ctx: CallContext) -> Sequence[ToolSpec]:
        schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
        return [ToolSpec(name="count", input_schema={"type": "object"}, output_schema=schema)]

    async def call_tool(self, call: ToolCall, ctx: CallContext) -> ToolResult:
        link = {"type": "resource_link", "uri": "notes://today", "name": "today"}
        return ToolResult(content=({"type": "text", "text": "x"}, link), structured=self.structured)

    async def list_resources(self, ctx: CallContext) -> Sequence[ResourceSpec]:
        return [ResourceSpec(uri="notes://today", name="today")]

    async def read_resource(self, uri: str, ctx: CallContext) -> Sequence[dict]:
        return [{"uri": uri, "text": f"read {uri}"}]


async def test_results_are_checked_against_the_output_schema_and_uris_published() -> None:
    good, bad = Shaped("good"), Shaped("bad", {"n": "many"})
    cat = Catalog({"good": good, "bad": bad})
    await cat.refresh(CallContext())
    # two targets serve the same URI: both are listed, under their own names
    assert set(cat.snapshot.resources) == {
        "switchboard://good/notes://today",
        "switchboard://bad/notes://today",
    }
    entry, call = cat.resolve("good___count", {})
    result = cat.finish(entry, await entry.provider.call_tool(call, CallContext()))
    assert not result.is_error
    assert result.content[1]["uri"] == "switchboard://good/notes://today"  # a link the client can read back
    read = await cat.read_resource("switchboard://good/notes://today", CallContext())
    assert read == [{"uri": "switchboard://good/notes://today", "text": "read notes://today"}]
    entry, call = cat.resolve("bad___count", {})
    result = cat.finish(entry, await entry.provider.call_tool(call, CallContext()))
    assert result.is_error
    assert "does not match this tool's output schema at n" in result.content[0]["text"]


class Listed(ToolProvider):
    """Lists the same ToolSpec objects every time (as the OpenAPI provider does)."""

    kind = "test"

    def __init__(self, id: str, specs: Sequence[ToolSpec]) -> None:
        super().__init__(id)
        self.specs = list(specs)

    async def list_tools(self, ctx: CallContext) -> Sequence[ToolSpec]:
        return self.specs

    async def call_tool(self, call: ToolCall, ctx: CallContext) -> ToolResult:
        return ToolResult.text("ok")


AGE = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}


async def test_arguments_of_a_checked_schema_are_refused_with_the_field_named() -> None:
    cat = Catalog({"a": Listed("a", [ToolSpec(name="t", input_schema=CheckedSchema(AGE))])})
    await cat.refresh(CallContext())
    with pytest.raises(InvalidArguments) as err:
        cat.resolve("a___t", {"age": "old"})
    assert err.value.field_path == "age"
    assert "'old' is not of type 'integer'" in str(err.value)
    with pytest.raises(InvalidArguments, match="'age' is a required property"):
        cat.resolve("a___t", {})


async def test_a_checked_schema_is_taken_as_checked_but_a_copy_of_it_is_checked_again() -> None:
    broken = CheckedSchema({"type": "objekt"})  # the mark is a provider's promise: the catalog keeps it
    await Catalog({"a": Listed("a", [ToolSpec(name="t", input_schema=broken)])}).refresh(CallContext())
    # A wrapper that rewrites a schema hands over a plain dict, which is checked.
    fixed = Overridden(Listed("a", [ToolSpec(name="t", input_schema=broken)]), {"t": {"arguments": {"x": 1}}})
    with pytest.raises(ConfigError, match="is not valid JSON Schema"):
        await Catalog({"a": fixed}).refresh(CallContext())


async def test_a_tool_listed_again_unchanged_keeps_its_validators() -> None:
    same = ToolSpec(name="t", input_schema=AGE)
    provider = Listed("a", [same])
    cat = Catalog({"a": provider})
    await cat.refresh(CallContext())
    first = cat.snapshot.tools["a___t"].validators
    await cat.refresh(CallContext())
    assert cat.snapshot.tools["a___t"].validators is first
    provider.specs = [ToolSpec(name="t", input_schema={**AGE, "required": []})]  # changed: built anew
    await cat.refresh(CallContext())
    assert cat.snapshot.tools["a___t"].validators is not first
    cat.resolve("a___t", {})
    # Another provider serving an equal tool does not inherit them either.
    other = Catalog({"a": Listed("a", [same])})
    other.snapshot = cat.snapshot
    await other.refresh(CallContext())
    assert other.snapshot.tools["a___t"].validators is not cat.snapshot.tools["a___t"].validators


async def test_task_support_is_published_as_execution_only_when_a_tool_has_it() -> None:
    class Tasks(Echo):
        async def list_tools(self, ctx: CallContext) -> Sequence[ToolSpec]:
            return [
                ToolSpec(name="now"),
                ToolSpec(name="maybe", task_support="optional"),
                ToolSpec(name="later", task_support="required", ask_before_task=True),
            ]

    catalog = Catalog({"t": Tasks("t", [])})
    listed = {t["name"]: t for t in (await catalog.refresh(CallContext())).tool_list}
    assert "execution" not in listed["t___now"]
    assert listed["t___maybe"]["execution"] == {"taskSupport": "optional"}
    assert listed["t___later"]["execution"] == {"taskSupport": "required"}
