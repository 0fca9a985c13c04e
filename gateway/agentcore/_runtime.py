"""AgentCore Runtime's data plane on the hosted agents (ADR 0039): ``InvokeAgentRuntime`` runs
the payload in the session ``runtimeSessionId`` names (its sandbox started on first use) and
answers the app's own body as it comes (JSON, or server-sent events that boto3's
``iter_lines`` reads line by line); ``InvokeAgentRuntimeCommand`` runs a shell command in the
session's sandbox; ``StopRuntimeSession`` ends a session at once.

A runtime is named by ARN (``arn:aws:bedrock-agentcore:REGION:ACCOUNT:runtime/NAME``) or bare
``NAME``, NAME being what ``switchboard runtime deploy --name`` gave it; the ``qualifier`` names
an endpoint (``DEFAULT``, the latest version, when not given; ADR 0041) or a version's number.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import AsyncIterator

from gateway.agentcore._call import AwsError, Call, Params, not_found, validation
from gateway.runtimes import AWS_KIND, Caller, Runtimes
from gateway.store import StoreAws
from runtime import AtCapacity, DeployError, EndpointError, NotYours, SessionError, Sessions, Version
from sandbox import Limits

QUALIFIER = "DEFAULT"
KIND = AWS_KIND


def _runtimes(call: Call) -> tuple[Runtimes, Sessions]:
    found = call.system.runtimes
    if found is None or found.sessions is None:
        why = found.problem if found is not None else "not started"
        raise AwsError("ServiceUnavailableException", f"hosted agents cannot run here: {why}", 503)
    return found, found.sessions


async def _name(call: Call, params: Params) -> str:
    """The runtime's name, from its ARN, its name or its agentRuntimeId."""
    named = str(params["agentRuntimeArn"])
    name = named.rsplit("runtime/", 1)[-1] if named.startswith("arn:") else named
    known = await StoreAws(call.system.store).by_id(call.tenant, KIND, name)
    return known.name if known is not None else name  # (its agentRuntimeId, as the control plane lists it)


async def _version(call: Call, runtimes: Runtimes, params: Params) -> tuple[Version, str]:
    """The version the call's session runs (its endpoint's, ``qualifier``: DEFAULT when not
    given), and the session's id (a new one when the call names none)."""
    session_id = str(params.get("runtimeSessionId") or secrets.token_hex(20))
    try:
        version = runtimes.choose(call.tenant, await _name(call, params), params.get("qualifier"), session_id)
    except (DeployError, EndpointError) as exc:
        raise not_found(str(exc)) from None
    if version.protocol == "MCP":
        raise validation(
            f"{version.tag} is an MCP server: call its tools through a gateway target of kind runtime"
        )
    return version, session_id


async def invoke_agent_runtime(call: Call, params: Params) -> Params:
    runtimes, _ = _runtimes(call)
    version, session_id = await _version(call, runtimes, params)
    headers = {k: str(params[m]) for m, k in _PASSED.items() if params.get(m)}
    if params.get("runtimeUserId"):
        headers["X-Amzn-Bedrock-AgentCore-Runtime-User-Id"] = str(params["runtimeUserId"])
    content_type = str(params.get("contentType") or "application/json")
    caller = Caller(call.tenant, call.subject, call.access_key_id)
    exits = contextlib.AsyncExitStack()
    try:
        session, answer = await exits.enter_async_context(
            runtimes.invoke(
                caller,
                version,
                session_id,
                bytes(params.get("payload") or b""),
                headers,
                content_type,
            )
        )
    except AtCapacity as exc:
        await exits.aclose()
        raise AwsError("ThrottlingException", str(exc), 429) from None
    except NotYours as exc:
        await exits.aclose()
        raise AwsError("AccessDeniedException", str(exc), 403) from None
    except SessionError as exc:
        await exits.aclose()
        raise AwsError("RuntimeClientError", str(exc), 424) from None

    if answer.status_code >= 400:  # (said as AgentCore's error: an app does not speak for AWS)
        said = b""
        async for chunk in answer.aiter_raw():
            said += chunk
            if len(said) > 2000:
                break
        await exits.aclose()
        text = said[:500].decode(errors="replace")
        raise AwsError("RuntimeClientError", f"the agent answered HTTP {answer.status_code}: {text}", 424)

    async def relayed() -> AsyncIterator[bytes]:
        async with exits:
            async for chunk in answer.aiter_raw():
                yield chunk

    return {
        "runtimeSessionId": session.id,
        "contentType": answer.headers.get("content-type", "application/json"),
        "statusCode": answer.status_code,
        "response": relayed(),
    }


async def invoke_agent_runtime_command(call: Call, params: Params) -> Params:
    """A shell command in the session's sandbox (started on first use), as the app's user, its
    output answered as AgentCore's events: contentStart, contentDelta (stdout, stderr),
    contentStop (exitCode, COMPLETED or TIMED_OUT)."""
    runtimes, sessions = _runtimes(call)
    version, session_id = await _version(call, runtimes, params)
    body = params.get("body") or {}
    command = str(body.get("command") or "")
    if not command.strip():
        raise validation("body.command: give the command to run")
    timeout = int(body.get("timeout") or COMMAND_SECONDS)
    if not 1 <= timeout <= MAX_COMMAND_SECONDS:
        raise validation(f"body.timeout: 1 to {MAX_COMMAND_SECONDS} seconds, not {timeout}")
    try:
        session = await sessions.session(version, session_id, owner=call.tenant, user=call.subject)
    except AtCapacity as exc:
        raise AwsError("ThrottlingException", str(exc), 429) from None
    except NotYours as exc:
        raise AwsError("AccessDeniedException", str(exc), 403) from None
    except SessionError as exc:
        raise AwsError("RuntimeClientError", str(exc), 424) from None
    session.used = time.monotonic()
    done = await session.box.run(
        ["/bin/sh", "-c", command], limits=Limits(wall_seconds=timeout, cpu_seconds=timeout)
    )
    session.used = time.monotonic()
    delta: Params = {}
    if done.stdout:
        delta["stdout"] = done.stdout.decode(errors="replace")
    if done.stderr:
        delta["stderr"] = done.stderr.decode(errors="replace")
    events: list[Params] = [{"chunk": {"contentStart": {}}}]
    if delta:
        events.append({"chunk": {"contentDelta": delta}})
    timed_out = done.stopped in ("wall time", "cpu time")
    code = done.exit_code if done.exit_code is not None else -1
    events.append(
        {"chunk": {"contentStop": {"exitCode": code, "status": "TIMED_OUT" if timed_out else "COMPLETED"}}}
    )
    return {
        "runtimeSessionId": session.id,
        "contentType": "application/vnd.amazon.eventstream",
        "stream": events,
    }


COMMAND_SECONDS = 60
MAX_COMMAND_SECONDS = 3600
_PASSED = {"traceParent": "traceparent", "traceState": "tracestate", "baggage": "baggage", "accept": "Accept"}


async def stop_runtime_session(call: Call, params: Params) -> Params:
    _, sessions = _runtimes(call)
    name = await _name(call, params)
    session_id = str(params.get("runtimeSessionId") or "")
    running = next((s for s in sessions.listed(call.tenant) if s.id == session_id), None)
    if running is None or running.version.split(":")[0] != name:
        raise not_found(f"no session {session_id} of this runtime is running")
    if not await sessions.stop(session_id, call.tenant, user=call.subject):
        raise not_found(f"no session {session_id} of this runtime is running")
    return {"runtimeSessionId": session_id, "statusCode": 200}


async def get_agent_card(call: Call, params: Params) -> Params:
    """The Agent Card of a hosted A2A server."""
    runtimes, _ = _runtimes(call)
    try:
        card = await runtimes.card(
            Caller(call.tenant, call.subject, call.access_key_id),
            await _name(call, params),
            params.get("qualifier"),
        )
    except (DeployError, EndpointError) as exc:
        raise not_found(str(exc)) from None
    except SessionError as exc:
        raise AwsError("RuntimeClientError", str(exc), 424) from None
    return {"agentCard": card, "statusCode": 200}


DATA = {
    "GetAgentCard": get_agent_card,
    "InvokeAgentRuntime": invoke_agent_runtime,
    "InvokeAgentRuntimeCommand": invoke_agent_runtime_command,
    "StopRuntimeSession": stop_runtime_session,
}
