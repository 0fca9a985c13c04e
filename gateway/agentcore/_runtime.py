"""AgentCore Runtime's data plane on the hosted agents (ADR 0039): ``InvokeAgentRuntime`` runs
the payload in the session ``runtimeSessionId`` names (its sandbox started on first use) and
answers the app's own body as it comes (JSON, or server-sent events that boto3's
``iter_lines`` reads line by line); ``StopRuntimeSession`` ends a session at once.

A runtime is named by ARN (``arn:aws:bedrock-agentcore:REGION:ACCOUNT:runtime/NAME``) or bare
``NAME``, NAME being what ``switchboard runtime deploy --name`` gave it; the qualifier
``DEFAULT`` (or none) is its latest version.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from gateway.agentcore._call import AwsError, Call, Params, not_found, validation
from gateway.runtimes import Runtimes
from runtime import DeployError, SessionError, Sessions, Version

QUALIFIER = "DEFAULT"


def _runtimes(call: Call) -> tuple[Runtimes, Sessions]:
    found = call.system.runtimes
    if found is None or found.sessions is None:
        why = found.problem if found is not None else "not started"
        raise AwsError("ServiceUnavailableException", f"hosted agents cannot run here: {why}", 503)
    return found, found.sessions


def _version(call: Call, runtimes: Runtimes, params: Params) -> Version:
    named = str(params["agentRuntimeArn"])
    name = named.rsplit("runtime/", 1)[-1] if named.startswith("arn:") else named
    qualifier = params.get("qualifier") or QUALIFIER
    if qualifier != QUALIFIER:
        raise validation(
            f"qualifier {qualifier!r}: runtime endpoints other than {QUALIFIER} are not served yet"
        )
    try:
        return runtimes.deployments(call.tenant).version(name)
    except DeployError as exc:
        raise not_found(str(exc)) from None


async def invoke_agent_runtime(call: Call, params: Params) -> Params:
    runtimes, sessions = _runtimes(call)
    version = _version(call, runtimes, params)
    try:
        session = await sessions.session(version, params.get("runtimeSessionId"), owner=call.tenant)
    except SessionError as exc:
        raise AwsError("RuntimeClientError", str(exc), 424) from None
    headers = {k: str(params[m]) for m, k in _PASSED.items() if params.get(m)}
    if params.get("runtimeUserId"):
        headers["X-Amzn-Bedrock-AgentCore-Runtime-User-Id"] = str(params["runtimeUserId"])
    content_type = str(params.get("contentType") or "application/json")
    exits = contextlib.AsyncExitStack()
    try:
        answer = await exits.enter_async_context(
            session.invoke(bytes(params.get("payload") or b""), headers, content_type=content_type)
        )
    except SessionError as exc:
        await exits.aclose()
        raise AwsError("RuntimeClientError", str(exc), 424) from None

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


_PASSED = {"traceParent": "traceparent", "traceState": "tracestate", "baggage": "baggage", "accept": "Accept"}


async def stop_runtime_session(call: Call, params: Params) -> Params:
    runtimes, sessions = _runtimes(call)
    _version(call, runtimes, params)
    session_id = str(params.get("runtimeSessionId") or "")
    if not await sessions.stop(session_id, call.tenant):
        raise not_found(f"no session {session_id} of this runtime is running")
    return {"runtimeSessionId": session_id, "statusCode": 200}


DATA = {"InvokeAgentRuntime": invoke_agent_runtime, "StopRuntimeSession": stop_runtime_session}
