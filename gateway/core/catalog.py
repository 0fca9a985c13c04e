"""The catalog: many providers, one namespace of tools, resources and prompts.

Tools are published as ``{target}___{tool}``. A name that is not a valid MCP
tool name is sanitised; one longer than ``max_name_length`` is shortened
deterministically with a short hash of the full name. Two tools that end up
with one name are a configuration error, never silent shadowing.

Listing fans out to every provider concurrently; a provider that fails is
logged and skipped, so one broken target never empties the list. Lookup on
``tools/call`` is a dict access, and arguments are validated once against the
tool's inputSchema before any provider runs.

Schemas are checked against the JSON Schema 2020-12 metaschema when they are
listed (a broken one is a configuration error), but a tool's validators are
built on its first call: a document of a thousand operations is served without
building a thousand validators nobody may use. A provider that has already
checked its schemas (the OpenAPI compiler, with a fast validator) hands them
over as `CheckedSchema`; a tool listed again, unchanged, by the same provider
keeps what the catalog built for it, so a reload does not check it again.

Resource URIs are namespaced too, as ``switchboard://{target}/{upstream uri}``
(templates alike, so their variables stay), and map back on read; two targets
serving the same URI never shadow each other. URIs in results (read contents,
resource links and embedded resources in tool results) are published the same
way, so whatever a client is handed it can read back through the gateway.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError, best_match

from gateway.core.errors import ConfigError, ConfigIssue, InvalidArguments, RequestError, ToolNotFound
from gateway.core.provider import PromptSpec, ResourceSpec, ResourceTemplateSpec, ToolProvider
from gateway.core.types import JSON, CallContext, ToolCall, ToolResult, ToolSpec

logger = logging.getLogger(__name__)

SEPARATOR = "___"
URI_SCHEME = "switchboard"
DEFAULT_MAX_NAME_LENGTH = 64
_INVALID_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


def public_name(target: str | None, name: str, max_length: int = DEFAULT_MAX_NAME_LENGTH) -> str:
    """The published name of a provider's tool: namespaced, valid, and bounded.

    Deterministic: the same inputs always give the same name, so clients and
    policies can rely on it across restarts and replicas.
    """
    full = f"{target}{SEPARATOR}{name}" if target else name
    clean = _INVALID_CHARS.sub("_", full)
    if clean == full and len(clean) <= max_length:
        return clean
    # Sanitised or too long: add a hash of the original so that two different
    # originals can never collapse into one published name.
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{clean[: max_length - 9]}_{digest}"


def field_path(error: ValidationError) -> str:
    """``a.b[0]`` for a jsonschema error's location (empty for the root)."""
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class CheckedSchema(dict[str, Any]):
    """A JSON Schema its provider has already checked as ``Draft202012Validator.check_schema``
    does (the 2020-12 metaschema, patterns compiled by Python's ``re``).

    The catalog does not check it again. A schema made from it (``dict(s)``, ``{**s, ...}``,
    as wrappers and shaping make theirs) is a plain ``dict``, which the catalog checks, so a
    rewritten schema does not carry the mark over. Never change one in place.
    """

    __slots__ = ()


class Validators:
    """A tool's argument and result validators, built on first use.

    Its schemas were checked when the tool was listed, so building cannot fail on them.
    """

    __slots__ = ("_input", "_input_schema", "_output", "_output_schema")

    def __init__(
        self, input_schema: Mapping[str, Any] | None, output_schema: Mapping[str, Any] | None
    ) -> None:
        self._input_schema = input_schema
        self._output_schema = output_schema
        self._input: Draft202012Validator | None = None
        self._output: Draft202012Validator | None = None

    @property
    def input(self) -> Draft202012Validator | None:
        """The arguments' validator (None: the tool takes anything)."""
        if self._input is None and self._input_schema is not None:
            self._input = _build(self._input_schema)
        return self._input

    @property
    def output(self) -> Draft202012Validator | None:
        """The validator of ``structuredContent`` (None: the tool has no outputSchema)."""
        if self._output is None and self._output_schema is not None:
            self._output = _build(self._output_schema)
        return self._output


@dataclass(frozen=True, slots=True)
class Entry:
    """One published tool: who serves it, under which local name, and its validators."""

    public: str
    provider: ToolProvider
    spec: ToolSpec
    validators: Validators

    def check_output(self, result: ToolResult) -> ToolResult:
        """A result whose structuredContent breaks the published outputSchema becomes a tool error.

        Clients reject such results outright (the MCP spec says structured results MUST
        conform); saying what was wrong, with the data, serves the model better.
        """
        if result.is_error or result.structured is None:
            return result
        validator = self.validators.output
        if validator is None or validator.is_valid(result.structured):
            return result
        error = best_match(validator.iter_errors(result.structured))
        if error is None:
            return result
        where = field_path(error) or "the result"
        text = "".join(str(c.get("text", "")) for c in result.content if c.get("type") == "text")[:2000]
        return ToolResult.error(
            f"The upstream's answer does not match this tool's output schema at {where}: {error.message}."
            + (f" Answer: {text}" if text else "")
        )

    def wire(self) -> JSON:
        """The MCP ``Tool`` object."""
        tool: JSON = {"name": self.public, "inputSchema": dict(self.spec.input_schema)}
        if self.spec.title:
            tool["title"] = self.spec.title
        if self.spec.description:
            tool["description"] = self.spec.description
        if self.spec.output_schema is not None:
            tool["outputSchema"] = dict(self.spec.output_schema)
        if self.spec.annotations:
            tool["annotations"] = dict(self.spec.annotations)
        if self.spec.meta:
            tool["_meta"] = dict(self.spec.meta)
        if self.spec.task_support != "forbidden":
            # 2025-11-25 names it here; the 2026-07-28 Tool has no such field (its sieve drops it).
            tool["execution"] = {"taskSupport": self.spec.task_support}
        return tool


@dataclass(slots=True)
class CatalogSnapshot:
    """An immutable view of every provider's lists at one moment."""

    tools: dict[str, Entry] = field(default_factory=dict)
    resources: dict[str, tuple[ToolProvider, ResourceSpec]] = field(default_factory=dict)
    templates: list[tuple[ToolProvider, ResourceTemplateSpec]] = field(default_factory=list)
    prompts: dict[str, tuple[ToolProvider, PromptSpec]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    withheld: dict[str, str] = field(default_factory=dict)
    tool_list: list[JSON] = field(default_factory=list)

    def fingerprint(self) -> tuple[Any, ...]:
        """Equal for two snapshots whose lists a client would see as the same."""
        return (
            self.tool_list,
            [(name, p) for name, (_, p) in self.prompts.items()],
            [r for _, r in self.resources.values()],
            [t for _, t in self.templates],
        )


class Catalog:
    """Combines providers under one namespace.

    Args:
        providers: The targets' providers, keyed by target name.
        prefix: Namespace tools by target. Only a single-target catalog may turn it off.
        max_name_length: Longest published tool name; longer names are hashed down.
    """

    def __init__(
        self,
        providers: Mapping[str, ToolProvider],
        *,
        prefix: bool = True,
        max_name_length: int = DEFAULT_MAX_NAME_LENGTH,
    ) -> None:
        if not prefix and sum(p.namespaced for p in providers.values()) > 1:
            raise ConfigError(
                "tool prefixes can only be turned off on a gateway with a single target; "
                f"this one has {len(providers)} ({', '.join(providers)}). Remove `prefix_tools: false`."
            )
        self.providers = dict(providers)
        self.prefix = prefix
        self.max_name_length = max_name_length
        self.snapshot = CatalogSnapshot()
        self._uri_prefix = {
            id(p): f"{URI_SCHEME}://{target}/" if prefix else "" for target, p in self.providers.items()
        }

    def public_uri(self, provider: ToolProvider, uri: str) -> str:
        """The URI (or URI template) under which a provider's resource is published."""
        return self._uri_prefix.get(id(provider), "") + uri

    def local_uri(self, provider: ToolProvider, uri: str) -> str:
        """The provider's own URI for a published one."""
        return uri.removeprefix(self._uri_prefix.get(id(provider), ""))

    def publish(self, provider: ToolProvider, items: Sequence[JSON]) -> list[JSON]:
        """Content items with their resource URIs published (``resource_link``, embedded, read contents)."""
        if not self._uri_prefix.get(id(provider)):
            return list(items)
        out: list[JSON] = []
        for item in items:
            if item.get("type") == "resource" and isinstance(item.get("resource"), Mapping):
                inner = dict(item["resource"])
                if isinstance(inner.get("uri"), str):
                    inner["uri"] = self.public_uri(provider, inner["uri"])
                item = {**item, "resource": inner}
            elif isinstance(item.get("uri"), str) and item.get("type") in (None, "resource_link"):
                item = {**item, "uri": self.public_uri(provider, item["uri"])}
            out.append(item)
        return out

    def finish(self, entry: Entry, result: ToolResult) -> ToolResult:
        """A provider's result as published: output schema enforced, resource URIs mapped."""
        result = entry.check_output(result)
        if self._uri_prefix.get(id(entry.provider)) and any(
            c.get("type") in ("resource_link", "resource") for c in result.content
        ):
            result = dataclasses.replace(result, content=tuple(self.publish(entry.provider, result.content)))
        return result

    def _name(self, target: str, name: str) -> str:
        provider = self.providers.get(target)
        prefixed = self.prefix and (provider is None or provider.namespaced)
        return public_name(target if prefixed else None, name, self.max_name_length)

    async def refresh(self, ctx: CallContext) -> CatalogSnapshot:
        """Ask every provider for its lists, concurrently, and publish a new snapshot.

        Raises:
            ConfigError: two tools would be published under one name.
        """
        results: dict[str, tuple[Any, ...]] = {}
        failed: dict[str, str] = {}

        async def fetch(target: str, provider: ToolProvider) -> None:
            try:
                results[target] = (
                    await provider.list_tools(ctx),
                    await provider.list_resources(ctx),
                    await provider.list_resource_templates(ctx),
                    await provider.list_prompts(ctx),
                )
            except Exception as exc:  # noqa: BLE001 - boundary: one broken target must not empty the list
                logger.warning("target %r failed to list its tools: %s", target, exc)
                failed[target] = str(exc) or type(exc).__name__

        async with anyio.create_task_group() as tg:
            for target, provider in self.providers.items():
                tg.start_soon(fetch, target, provider)

        snap = CatalogSnapshot(failed=failed)
        issues: list[ConfigIssue] = []
        origin: dict[str, str] = {}
        before = self.snapshot
        for target in self.providers:  # config order: deterministic
            provider = self.providers[target]
            if target not in results:
                # Down now, listed before: keep what it served, marked unavailable, so a client's
                # list stays whole; calls reach the provider, which answers with the reason.
                _carry_over(before, snap, provider, failed[target])
                continue
            tools, resources, templates, prompts = results[target]
            for local, reason in provider.withheld().items():
                snap.withheld[self._name(target, local)] = reason
            for spec in tools:
                name = self._name(target, spec.name)
                if name in snap.tools:
                    issues.append(
                        ConfigIssue(
                            f"tool name {name!r} is published by both {origin[name]} and "
                            f"{target}/{spec.name}; rename one of them (overrides) or keep tool prefixes on",
                            location=f"targets.{target}",
                        )
                    )
                    continue
                origin[name] = f"{target}/{spec.name}"
                snap.tools[name] = Entry(
                    name, provider, spec, _validators(before, target, name, provider, spec, issues)
                )
            for res in resources:
                public = self.public_uri(provider, res.uri)
                snap.resources.setdefault(public, (provider, dataclasses.replace(res, uri=public)))
            snap.templates.extend(
                (provider, dataclasses.replace(t, uri_template=self.public_uri(provider, t.uri_template)))
                for t in templates
            )
            for prompt in prompts:
                pname = self._name(target, prompt.name)
                if pname in snap.prompts:
                    issues.append(
                        ConfigIssue(f"prompt name {pname!r} is published twice", f"targets.{target}")
                    )
                    continue
                snap.prompts[pname] = (provider, prompt)
        if issues:
            raise ConfigError(issues)
        snap.tool_list = [e.wire() for e in snap.tools.values()]
        self.snapshot = snap
        return snap

    def resolve(self, name: str, arguments: Mapping[str, Any] | None) -> tuple[Entry, ToolCall]:
        """Find a tool by published name and validate its arguments.

        Raises:
            ToolNotFound: no such tool.
            InvalidArguments: arguments do not match the inputSchema (names the field).
        """
        entry = self.snapshot.tools.get(name)
        if entry is None:
            raise ToolNotFound(name)
        args = dict(arguments or {})
        validator = entry.validators.input
        if validator is not None and not validator.is_valid(args):
            error = best_match(validator.iter_errors(args))
            if error is not None:
                raise InvalidArguments(name, field_path(error), error.message)
        return entry, ToolCall(name=entry.spec.name, arguments=args, public_name=name)

    async def read_resource(self, uri: str, ctx: CallContext) -> Sequence[JSON]:
        hit = self.snapshot.resources.get(uri)
        provider = hit[0] if hit is not None else None
        if provider is None:
            provider = next(
                (p for p, t in self.snapshot.templates if _template_matches(t.uri_template, uri)), None
            )
        if provider is not None:
            return self.publish(provider, await provider.read_resource(self.local_uri(provider, uri), ctx))
        raise RequestError(
            f"Resource {uri!r} not found: call resources/list for the resources this gateway serves."
        )

    async def get_prompt(self, name: str, arguments: Mapping[str, str], ctx: CallContext) -> JSON:
        hit = self.snapshot.prompts.get(name)
        if hit is None:
            raise RequestError(
                f"Unknown prompt {name!r}: call prompts/list for the names this gateway serves."
            )
        return await hit[0].get_prompt(hit[1].name, arguments, ctx)

    def provider_for_prompt(self, name: str) -> ToolProvider | None:
        hit = self.snapshot.prompts.get(name)
        return hit[0] if hit else None

    def provider_for_template(self, uri_template: str) -> ToolProvider | None:
        return next((p for p, t in self.snapshot.templates if t.uri_template == uri_template), None)


UNAVAILABLE = "io.switchboard/unavailable"


def _carry_over(before: CatalogSnapshot, snap: CatalogSnapshot, provider: ToolProvider, reason: str) -> None:
    for name, entry in before.tools.items():
        if entry.provider is provider:
            meta = {**(entry.spec.meta or {}), UNAVAILABLE: reason}
            snap.tools[name] = dataclasses.replace(entry, spec=dataclasses.replace(entry.spec, meta=meta))
    snap.resources.update({u: hit for u, hit in before.resources.items() if hit[0] is provider})
    snap.templates.extend(hit for hit in before.templates if hit[0] is provider)
    snap.prompts.update({n: hit for n, hit in before.prompts.items() if hit[0] is provider})


def _validators(
    before: CatalogSnapshot,
    target: str,
    name: str,
    provider: ToolProvider,
    spec: ToolSpec,
    issues: list[ConfigIssue],
) -> Validators:
    """The validators of a listed tool; its schemas checked, unless it was listed unchanged before."""
    old = before.tools.get(name)
    if old is not None and old.provider is provider and (old.spec is spec or old.spec == spec):
        return old.validators
    input_schema = _checked(target, spec.name, spec.input_schema or {}, issues)
    output_schema = (
        _checked(target, spec.name, spec.output_schema, issues) if spec.output_schema is not None else None
    )
    return Validators(input_schema, output_schema)


def _checked(
    target: str, tool: str, schema: Mapping[str, Any], issues: list[ConfigIssue]
) -> Mapping[str, Any] | None:
    """``schema`` once it passes the 2020-12 metaschema; None (and an issue) when it does not."""
    if not isinstance(schema, CheckedSchema):
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            issues.append(
                ConfigIssue(
                    f"a schema of tool {tool!r} is not valid JSON Schema: {exc.message}", f"targets.{target}"
                )
            )
            return None
    return schema


def _build(schema: Mapping[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


_TEMPLATE_VAR = re.compile(r"\{[^}]+\}")


def _template_matches(template: str, uri: str) -> bool:
    parts = _TEMPLATE_VAR.split(template)
    pattern = "[^/]+".join(re.escape(p) for p in parts)
    return re.fullmatch(pattern, uri) is not None
