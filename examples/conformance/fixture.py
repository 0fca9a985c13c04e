"""The fixture target the MCP conformance suite's server scenarios call.

Written from the scenario descriptions of `@modelcontextprotocol/conformance`
(requirement sets 2025-11-25 and 2026-07-28). It is an ordinary ToolProvider
served through the gateway (``kind: plugin``), so the suite exercises the real
front, catalog and pipeline. Questions to the client go through the call's
ClientChannel, which speaks server-to-client requests in the 2025 era and
``input_required`` rounds in the 2026-07-28 era. The tools of the tasks scenarios (2026-07-28
tasks extension) say in their ToolSpec whether they may or must run as a task (ADR 0038).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import anyio

from gateway.core.errors import RequestError, ToolExecutionError, ToolNotFound
from gateway.core.provider import PromptSpec, ResourceSpec, ResourceTemplateSpec, ToolProvider
from gateway.core.types import JSON, CallContext, TaskSupport, ToolCall, ToolResult, ToolSpec

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
WAV = "UklGRsQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YaAAAAAA" + "A" * 212
EMPTY: JSON = {"type": "object", "properties": {}}
NAME_SCHEMA: JSON = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def _text(text: str) -> JSON:
    return {"type": "text", "text": text}


def _tool(
    name: str,
    description: str,
    schema: JSON | None = None,
    *,
    task: TaskSupport = "forbidden",
    ask_first: bool = False,
) -> ToolSpec:
    return ToolSpec(
        name=name,
        description=description,
        input_schema=schema or EMPTY,
        task_support=task,
        ask_before_task=ask_first,
    )


def _string_args(*names: str) -> JSON:
    return {
        "type": "object",
        "properties": {n: {"type": "string", "description": f"The {n}"} for n in names},
        "required": list(names),
    }


def _elicit(message: str, schema: JSON) -> JSON:
    return {
        "method": "elicitation/create",
        "params": {"mode": "form", "message": message, "requestedSchema": schema},
    }


def _sample(text: str, max_tokens: int) -> JSON:
    return {
        "method": "sampling/createMessage",
        "params": {"messages": [{"role": "user", "content": _text(text)}], "maxTokens": max_tokens},
    }


def _sampled_text(answer: JSON) -> str:
    content = answer.get("content")
    if isinstance(content, list):
        content = next((c for c in content if c.get("type") == "text"), {})
    return str((content or {}).get("text", ""))


SEP1034_SCHEMA: JSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "default": "John Doe"},
        "age": {"type": "integer", "default": 30},
        "score": {"type": "number", "default": 95.5},
        "status": {"type": "string", "enum": ["active", "inactive", "pending"], "default": "active"},
        "verified": {"type": "boolean", "default": True},
    },
}

SEP1330_SCHEMA: JSON = {
    "type": "object",
    "properties": {
        "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
        "titledSingle": {
            "type": "string",
            "oneOf": [
                {"const": "value1", "title": "First Option"},
                {"const": "value2", "title": "Second Option"},
                {"const": "value3", "title": "Third Option"},
            ],
        },
        "legacyEnum": {
            "type": "string",
            "enum": ["opt1", "opt2", "opt3"],
            "enumNames": ["Option One", "Option Two", "Option Three"],
        },
        "untitledMulti": {
            "type": "array",
            "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
        },
        "titledMulti": {
            "type": "array",
            "items": {
                "anyOf": [
                    {"const": "value1", "title": "First Choice"},
                    {"const": "value2", "title": "Second Choice"},
                    {"const": "value3", "title": "Third Choice"},
                ]
            },
        },
    },
}


JSON_SCHEMA_2020_12: JSON = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}

SLOW_SCHEMA: JSON = {
    "type": "object",
    "properties": {
        "seconds": {"type": "number", "minimum": 0, "maximum": 600, "description": "How long to work"},
        "label": {"type": "string", "description": "A name for the run"},
    },
}
CONFIRM_SCHEMA: JSON = {
    "type": "object",
    "properties": {"confirm": {"type": "boolean"}},
    "required": ["confirm"],
}

CUSTOM_HEADER_SCHEMA: JSON = {
    "type": "object",
    "properties": {"region": {"type": "string", "x-mcp-header": "Region", "description": "Routed by header"}},
    "required": ["region"],
}


class ConformanceFixture(ToolProvider):
    """Tools, resources and prompts named by the conformance scenarios."""

    kind = "plugin"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.extra_tool = False
        self.extra_prompt = False

    # -- tools -------------------------------------------------------------------------

    async def list_tools(self, ctx: CallContext) -> Sequence[ToolSpec]:
        tools = [
            _tool("test_simple_text", "Returns simple text."),
            _tool("test_image_content", "Returns a PNG image."),
            _tool("test_audio_content", "Returns a WAV clip."),
            _tool("test_embedded_resource", "Returns an embedded resource."),
            _tool("test_multiple_content_types", "Returns text, an image and a resource."),
            _tool("test_tool_with_logging", "Sends three log messages while it runs."),
            _tool("test_logging_tool", "Sends a log message (only to clients that opted in)."),
            _tool("test_error_handling", "Always fails."),
            _tool("test_tool_with_progress", "Reports progress 0, 50, 100 of 100."),
            _tool("test_sampling", "Asks the client's model.", _string_args("prompt")),
            _tool("test_elicitation", "Asks the user for a username and email.", _string_args("message")),
            _tool("test_elicitation_sep1034_defaults", "Elicitation with defaults for every primitive type."),
            _tool("test_elicitation_sep1330_enums", "Elicitation with every enum variant."),
            _tool("test_input_required_result_elicitation", "Asks the user's name."),
            _tool("test_input_required_result_sampling", "Asks the client's model a question."),
            _tool("test_input_required_result_list_roots", "Asks the client for its roots."),
            _tool("test_input_required_result_request_state", "Asks for confirmation, with request state."),
            _tool("test_input_required_result_multiple_inputs", "Asks three questions at once."),
            _tool("test_input_required_result_multi_round", "Asks two questions, one per round."),
            _tool("test_input_required_result_tampered_state", "Asks a question; its state is sealed."),
            _tool("test_input_required_result_capabilities", "Asks only what the client can answer."),
            _tool("test_missing_capability", "Needs the client's sampling capability."),
            _tool("test_streaming_elicitation", "Reports progress, then asks the user."),
            _tool("test_trigger_tool_change", "Adds or removes a tool (list_changed)."),
            _tool("test_trigger_prompt_change", "Adds or removes a prompt (list_changed)."),
            _tool("json_schema_2020_12_tool", "Tool with JSON Schema 2020-12 features", JSON_SCHEMA_2020_12),
            _tool(
                "test_custom_headers",
                "Echoes a parameter that travels in an Mcp-Param header.",
                CUSTOM_HEADER_SCHEMA,
            ),
            # the tasks extension's scenarios (2026-07-28)
            _tool("greet", "Greets someone (never a task).", NAME_SCHEMA),
            _tool(
                "slow_compute",
                "Works for `seconds`, as a task if the client can.",
                SLOW_SCHEMA,
                task="optional",
            ),
            _tool("failing_job", "Fails with a tool error after a second; only as a task.", task="required"),
            _tool("protocol_error_job", "Fails with a protocol error.", task="optional"),
            _tool(
                "confirm_delete",
                "Asks, within its task, to confirm.",
                _string_args("filename"),
                task="optional",
            ),
            _tool("multi_input", "Asks two questions at once, within its task.", task="optional"),
            _tool(
                "test_tool_with_task",
                "Asks the user's name first, then works on as a task.",
                task="required",
                ask_first=True,
            ),
        ]
        if self.extra_tool:
            tools.append(_tool("test_dynamic_tool", "Appears after test_trigger_tool_change."))
        return tools

    async def call_tool(self, call: ToolCall, ctx: CallContext) -> ToolResult:
        handler = getattr(self, f"_tool_{call.name}", None)
        if handler is None:
            raise ToolNotFound(call.public_name or call.name)
        result: ToolResult = await handler(call.arguments, ctx)
        return result

    async def _tool_test_simple_text(self, args: JSON, ctx: CallContext) -> ToolResult:
        return ToolResult.text("This is a simple text response for testing.")

    async def _tool_json_schema_2020_12_tool(self, args: JSON, ctx: CallContext) -> ToolResult:
        return ToolResult.text(f"contact {args.get('name')} by {args.get('contactMethod', 'email')}")

    async def _tool_test_custom_headers(self, args: JSON, ctx: CallContext) -> ToolResult:
        return ToolResult.text(f"region={args.get('region')}")

    async def _tool_test_dynamic_tool(self, args: JSON, ctx: CallContext) -> ToolResult:
        return ToolResult.text("dynamic")

    async def _tool_test_image_content(self, args: JSON, ctx: CallContext) -> ToolResult:
        return ToolResult(content=({"type": "image", "data": PNG, "mimeType": "image/png"},))

    async def _tool_test_audio_content(self, args: JSON, ctx: CallContext) -> ToolResult:
        return ToolResult(content=({"type": "audio", "data": WAV, "mimeType": "audio/wav"},))

    async def _tool_test_embedded_resource(self, args: JSON, ctx: CallContext) -> ToolResult:
        resource = {
            "uri": "test://embedded-resource",
            "mimeType": "text/plain",
            "text": "This is an embedded resource content.",
        }
        return ToolResult(content=({"type": "resource", "resource": resource},))

    async def _tool_test_multiple_content_types(self, args: JSON, ctx: CallContext) -> ToolResult:
        resource = {
            "uri": "test://mixed-content-resource",
            "mimeType": "application/json",
            "text": json.dumps({"test": "data", "value": 123}),
        }
        return ToolResult(
            content=(
                _text("Multiple content types test:"),
                {"type": "image", "data": PNG, "mimeType": "image/png"},
                {"type": "resource", "resource": resource},
            )
        )

    async def _tool_test_tool_with_logging(self, args: JSON, ctx: CallContext) -> ToolResult:
        await ctx.channel.log("info", "Tool execution started")
        await anyio.sleep(0.05)
        await ctx.channel.log("info", "Tool processing data")
        await anyio.sleep(0.05)
        await ctx.channel.log("info", "Tool execution completed")
        return ToolResult.text("Tool with logging executed successfully")

    async def _tool_test_logging_tool(self, args: JSON, ctx: CallContext) -> ToolResult:
        await ctx.channel.log("info", "test_logging_tool ran")
        return ToolResult.text("logged")

    async def _tool_test_error_handling(self, args: JSON, ctx: CallContext) -> ToolResult:
        raise ToolExecutionError("This tool intentionally returns an error for testing")

    async def _tool_test_tool_with_progress(self, args: JSON, ctx: CallContext) -> ToolResult:
        for step, value in enumerate((0, 50, 100)):
            if step:
                await anyio.sleep(0.05)
            await ctx.channel.progress(value, 100)
        return ToolResult.text("Tool with progress executed successfully")

    async def _tool_test_sampling(self, args: JSON, ctx: CallContext) -> ToolResult:
        answer = await ctx.channel.sample(_sample(str(args.get("prompt", "")), 100)["params"])
        return ToolResult.text(f"LLM response: {_sampled_text(answer)}")

    async def _tool_test_elicitation(self, args: JSON, ctx: CallContext) -> ToolResult:
        schema = {
            "type": "object",
            "properties": {
                "username": {"type": "string", "description": "User's response"},
                "email": {"type": "string", "description": "User's email address"},
            },
            "required": ["username", "email"],
        }
        answer = await ctx.channel.elicit(str(args.get("message", "")), schema)
        content = json.dumps(answer.get("content", {}))
        return ToolResult.text(f"User response: <action: {answer.get('action')}, content: {content}>")

    async def _completed(self, ctx: CallContext, schema: JSON, message: str) -> ToolResult:
        answer = await ctx.channel.elicit(message, schema)
        content = json.dumps(answer.get("content", {}))
        return ToolResult.text(f"Elicitation completed: action={answer.get('action')}, content={content}")

    async def _tool_test_elicitation_sep1034_defaults(self, args: JSON, ctx: CallContext) -> ToolResult:
        return await self._completed(ctx, SEP1034_SCHEMA, "Please review the defaults")

    async def _tool_test_elicitation_sep1330_enums(self, args: JSON, ctx: CallContext) -> ToolResult:
        return await self._completed(ctx, SEP1330_SCHEMA, "Please choose options")

    async def _tool_test_input_required_result_elicitation(self, args: JSON, ctx: CallContext) -> ToolResult:
        answer = await ctx.channel.elicit("What is your name?", NAME_SCHEMA, key="user_name")
        return ToolResult.text(f"Hello, {answer.get('content', {}).get('name', 'stranger')}!")

    async def _tool_test_input_required_result_sampling(self, args: JSON, ctx: CallContext) -> ToolResult:
        answer = await ctx.channel.sample(
            _sample("What is the capital of France?", 100)["params"], key="capital_question"
        )
        return ToolResult.text(f"The model answered: {_sampled_text(answer)}")

    async def _tool_test_input_required_result_list_roots(self, args: JSON, ctx: CallContext) -> ToolResult:
        answer = await ctx.channel.list_roots(key="client_roots")
        uris = [r.get("uri") for r in answer.get("roots", [])]
        return ToolResult.text(f"Client roots: {', '.join(map(str, uris)) or '(none)'}")

    async def _tool_test_input_required_result_request_state(
        self, args: JSON, ctx: CallContext
    ) -> ToolResult:
        schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
        answer = await ctx.channel.elicit("Please confirm", schema, key="confirm")
        # Reaching here on a retry means the sealed requestState verified (the SDK boundary checks it).
        return ToolResult.text(f"state-ok: confirmed={answer.get('content', {}).get('ok')}")

    async def _tool_test_input_required_result_multiple_inputs(
        self, args: JSON, ctx: CallContext
    ) -> ToolResult:
        answers = await ctx.channel.ask(
            {
                "user_name": _elicit("What is your name?", NAME_SCHEMA),
                "greeting": _sample("Generate a greeting", 50),
                "client_roots": {"method": "roots/list", "params": {}},
            }
        )
        name = answers["user_name"].get("content", {}).get("name")
        return ToolResult.text(
            f"name={name}; greeting={_sampled_text(answers['greeting'])}; "
            f"roots={len(answers['client_roots'].get('roots', []))}"
        )

    async def _tool_test_input_required_result_multi_round(self, args: JSON, ctx: CallContext) -> ToolResult:
        name = await ctx.channel.elicit("Step 1: What is your name?", NAME_SCHEMA, key="step1")
        color_schema = {"type": "object", "properties": {"color": {"type": "string"}}, "required": ["color"]}
        color = await ctx.channel.elicit("Step 2: What is your favorite color?", color_schema, key="step2")
        return ToolResult.text(
            f"{name.get('content', {}).get('name')} likes {color.get('content', {}).get('color')}"
        )

    async def _tool_test_input_required_result_tampered_state(
        self, args: JSON, ctx: CallContext
    ) -> ToolResult:
        schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
        await ctx.channel.elicit("Please confirm", schema, key="confirm")
        return ToolResult.text("state verified")

    async def _tool_test_input_required_result_capabilities(self, args: JSON, ctx: CallContext) -> ToolResult:
        questions: dict[str, JSON] = {}
        if ctx.channel.supports("sampling"):
            questions["capital_question"] = _sample("What is the capital of France?", 100)
        if ctx.channel.supports("elicitation"):
            questions["user_name"] = _elicit("What is your name?", NAME_SCHEMA)
        if not questions:
            return ToolResult.text("the client declared neither sampling nor elicitation")
        answers = await ctx.channel.ask(questions)
        return ToolResult.text(f"answered: {', '.join(sorted(answers))}")

    async def _tool_test_missing_capability(self, args: JSON, ctx: CallContext) -> ToolResult:
        answer = await ctx.channel.sample(_sample("Say hello", 10)["params"])
        return ToolResult.text(_sampled_text(answer))

    async def _tool_test_streaming_elicitation(self, args: JSON, ctx: CallContext) -> ToolResult:
        await ctx.channel.progress(1, 2, "about to ask")
        answer = await ctx.channel.elicit("What is your name?", NAME_SCHEMA, key="user_name")
        return ToolResult.text(f"Hello, {answer.get('content', {}).get('name')}!")

    async def _tool_test_trigger_tool_change(self, args: JSON, ctx: CallContext) -> ToolResult:
        self.extra_tool = not self.extra_tool
        self.changed()
        return ToolResult.text(f"test_dynamic_tool {'added' if self.extra_tool else 'removed'}")

    async def _tool_test_trigger_prompt_change(self, args: JSON, ctx: CallContext) -> ToolResult:
        self.extra_prompt = not self.extra_prompt
        self.changed()
        return ToolResult.text(f"test_dynamic_prompt {'added' if self.extra_prompt else 'removed'}")

    async def _tool_greet(self, args: JSON, ctx: CallContext) -> ToolResult:
        return ToolResult.text(f"Hello, {args.get('name')}!")

    async def _tool_slow_compute(self, args: JSON, ctx: CallContext) -> ToolResult:
        seconds = float(args.get("seconds", 0))
        await anyio.sleep(seconds)
        return ToolResult.text(f"{args.get('label', 'slow_compute')}: done after {seconds:g} s")

    async def _tool_failing_job(self, args: JSON, ctx: CallContext) -> ToolResult:
        await anyio.sleep(1)
        raise ToolExecutionError("failing_job fails on purpose (a tool error)")

    async def _tool_protocol_error_job(self, args: JSON, ctx: CallContext) -> ToolResult:
        raise RequestError("protocol_error_job fails on purpose, with a protocol error")

    async def _tool_confirm_delete(self, args: JSON, ctx: CallContext) -> ToolResult:
        name = args.get("filename")
        answer = await ctx.channel.elicit(f"Delete {name}?", CONFIRM_SCHEMA, key="confirm")
        confirmed = answer.get("action") == "accept" and answer.get("content", {}).get("confirm") is True
        return ToolResult.text(f"{'Deleted' if confirmed else 'Kept'} {name}")

    async def _tool_multi_input(self, args: JSON, ctx: CallContext) -> ToolResult:
        schema = {
            "type": "object",
            "properties": {"name": {"type": "string"}, "confirm": {"type": "boolean"}},
        }
        answers = await ctx.channel.ask(
            {"first": _elicit("Your name?", schema), "second": _elicit("Confirm?", schema)}
        )
        return ToolResult.text(
            "answered: " + ", ".join(f"{k}={a.get('content', {}).get('name')}" for k, a in answers.items())
        )

    async def _tool_test_tool_with_task(self, args: JSON, ctx: CallContext) -> ToolResult:
        answer = await ctx.channel.elicit("What is your name?", NAME_SCHEMA, key="user_name")
        await ctx.begin_task()  # asked first; the rest is the task
        await anyio.sleep(0.2)
        return ToolResult.text(f"Hello, {answer.get('content', {}).get('name')}! (finished as a task)")

    # -- resources ---------------------------------------------------------------------

    async def list_resources(self, ctx: CallContext) -> Sequence[ResourceSpec]:
        return [
            ResourceSpec(
                "test://static-text",
                "static-text",
                description="A static text resource",
                mime_type="text/plain",
            ),
            ResourceSpec(
                "test://static-binary",
                "static-binary",
                description="A static PNG image",
                mime_type="image/png",
            ),
            ResourceSpec(
                "test://watched-resource",
                "watched-resource",
                description="A resource to subscribe to",
                mime_type="text/plain",
            ),
        ]

    async def list_resource_templates(self, ctx: CallContext) -> Sequence[ResourceTemplateSpec]:
        return [
            ResourceTemplateSpec(
                "test://template/{id}/data",
                "template-data",
                description="Data by id",
                mime_type="application/json",
            )
        ]

    async def read_resource(self, uri: str, ctx: CallContext) -> Sequence[JSON]:
        if uri == "test://static-text":
            return [
                {
                    "uri": uri,
                    "mimeType": "text/plain",
                    "text": "This is the content of the static text resource.",
                }
            ]
        if uri == "test://static-binary":
            return [{"uri": uri, "mimeType": "image/png", "blob": PNG}]
        if uri == "test://watched-resource":
            return [{"uri": uri, "mimeType": "text/plain", "text": "Watched resource content."}]
        prefix, suffix = "test://template/", "/data"
        if uri.startswith(prefix) and uri.endswith(suffix) and len(uri) > len(prefix) + len(suffix):
            item = uri[len(prefix) : -len(suffix)]
            body = {"id": item, "templateTest": True, "data": f"Data for ID: {item}"}
            return [
                {"uri": uri, "mimeType": "application/json", "text": json.dumps(body, separators=(",", ":"))}
            ]
        raise RequestError(f"Resource not found: {uri}")

    # -- prompts -----------------------------------------------------------------------

    async def list_prompts(self, ctx: CallContext) -> Sequence[PromptSpec]:
        prompts = [
            PromptSpec("test_simple_prompt", description="A prompt without arguments"),
            PromptSpec(
                "test_prompt_with_arguments",
                description="A prompt with two arguments",
                arguments=(
                    {"name": "arg1", "description": "First test argument", "required": True},
                    {"name": "arg2", "description": "Second test argument", "required": True},
                ),
            ),
            PromptSpec(
                "test_prompt_with_embedded_resource",
                description="A prompt embedding a resource",
                arguments=(
                    {"name": "resourceUri", "description": "URI of the resource to embed", "required": True},
                ),
            ),
            PromptSpec("test_prompt_with_image", description="A prompt with an image"),
            PromptSpec("test_input_required_result_prompt", description="A prompt that asks the user first"),
        ]
        if self.extra_prompt:
            prompts.append(
                PromptSpec("test_dynamic_prompt", description="Appears after test_trigger_prompt_change")
            )
        return prompts

    async def get_prompt(self, name: str, arguments: Mapping[str, str], ctx: CallContext) -> JSON:
        def user(content: JSON) -> JSON:
            return {"role": "user", "content": content}

        if name == "test_simple_prompt":
            return {"messages": [user(_text("This is a simple prompt for testing."))]}
        if name == "test_prompt_with_arguments":
            text = f"Prompt with arguments: arg1='{arguments.get('arg1')}', arg2='{arguments.get('arg2')}'"
            return {"messages": [user(_text(text))]}
        if name == "test_prompt_with_embedded_resource":
            resource = {
                "uri": arguments.get("resourceUri", ""),
                "mimeType": "text/plain",
                "text": "Embedded resource content for testing.",
            }
            return {
                "messages": [
                    user({"type": "resource", "resource": resource}),
                    user(_text("Please process the embedded resource above.")),
                ]
            }
        if name == "test_prompt_with_image":
            return {
                "messages": [
                    user({"type": "image", "data": PNG, "mimeType": "image/png"}),
                    user(_text("Please analyze the image above.")),
                ]
            }
        if name == "test_input_required_result_prompt":
            schema = {
                "type": "object",
                "properties": {"context": {"type": "string"}},
                "required": ["context"],
            }
            answer = await ctx.channel.elicit(
                "What context should the prompt use?", schema, key="user_context"
            )
            return {"messages": [user(_text(f"Context: {answer.get('content', {}).get('context')}"))]}
        if name == "test_dynamic_prompt" and self.extra_prompt:
            return {"messages": [user(_text("dynamic"))]}
        raise RequestError(f"Unknown prompt {name!r}")

    async def complete(self, ref: JSON, argument: JSON, context: JSON | None, ctx: CallContext) -> JSON:
        words = {"arg1": ["paris", "park", "party"], "arg2": ["world", "word", "work"]}
        prefix = str(argument.get("value", ""))
        values = [w for w in words.get(str(argument.get("name")), []) if w.startswith(prefix)]
        return {"values": values, "total": len(values), "hasMore": False}
