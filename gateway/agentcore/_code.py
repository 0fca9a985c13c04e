"""AgentCore's Code Interpreter operations (ADR 0035): the control plane's interpreters
(``aws.codeinterpreter.v1``, which every tenant has, and a tenant's own, kept as AgentCore
resources of kind ``code_interpreter``) and the data plane's sessions, run by the process's
``CodeInterpreters``. ``InvokeCodeInterpreter`` answers one ``result`` event, in AWS's event-stream
framing; a failure of the program is a result with ``isError``, a wrong call an error."""

from __future__ import annotations

import base64
import binascii
import secrets
import string
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from gateway.agentcore._call import AwsError, Call, Params, conflict, not_found, validation
from gateway.agentcore._gateways import page, paged
from gateway.core.types import Principal
from gateway.interpreters import BUILTIN, CodeInterpreters
from gateway.store import AwsResource, StoreAws
from sandbox import TOOLS, AtCapacity, CodeSession, Interpreter, NoSession, SandboxError, Unavailable

KIND = "code_interpreter"
NETWORK_MODES = ("SANDBOX", "PUBLIC")
MAX_PER_TENANT = 50


def _interpreters(call: Call) -> CodeInterpreters:
    found = call.system.interpreters
    if found is None:
        raise AwsError("InternalServerException", "code interpreters are not running in this process", 500)
    return found


def _new_id(name: str) -> str:
    alphabet = string.ascii_letters + string.digits
    return f"{name}-{''.join(secrets.choice(alphabet) for _ in range(10))}"


def _arn(call: Call, identifier: str) -> str:
    if identifier == BUILTIN:
        return f"arn:aws:bedrock-agentcore:{call.region}:aws:code-interpreter/{BUILTIN}"
    return call.arn("bedrock-agentcore", f"code-interpreter-custom/{identifier}")


def _out(call: Call, res: AwsResource, status: str = "READY") -> Params:
    out: Params = {
        "codeInterpreterId": res.resource_id,
        "codeInterpreterArn": _arn(call, res.resource_id),
        "name": res.name,
        "networkConfiguration": {"networkMode": res.attrs.get("networkMode", "SANDBOX")},
        "status": status,
        "createdAt": res.created_at,
        "lastUpdatedAt": res.updated_at,
    }
    for key in ("description", "executionRoleArn"):
        if res.attrs.get(key):
            out[key] = res.attrs[key]
    return out


_BORN = datetime(2025, 7, 16, tzinfo=UTC)  # (the built-in interpreter's creation date, as shown)


def _builtin(call: Call) -> Params:
    return {
        "codeInterpreterId": BUILTIN,
        "codeInterpreterArn": _arn(call, BUILTIN),
        "name": BUILTIN,
        "description": "The built-in code interpreter: python, javascript and typescript, no network.",
        "networkConfiguration": {"networkMode": "SANDBOX"},
        "status": "READY",
        "createdAt": _BORN,
        "lastUpdatedAt": _BORN,
    }


async def _custom(call: Call, identifier: str) -> AwsResource:
    found = await StoreAws(call.system.store).by_id(call.tenant, KIND, identifier)
    if found is None:
        raise not_found(f"no code interpreter {identifier}")
    return found


# -- control plane ---------------------------------------------------------------------------


async def create_code_interpreter(call: Call, params: Params) -> Params:
    aws = StoreAws(call.system.store)
    token = params.get("clientToken")
    if token:
        earlier = await aws.by_client_token(call.tenant, KIND, token)
        if earlier is not None:
            return _created(call, earlier)  # the same request again: the same answer
    mode = (params.get("networkConfiguration") or {}).get("networkMode")
    if mode not in NETWORK_MODES:
        raise validation(
            f"networkConfiguration.networkMode {mode!r} is not served here: give SANDBOX (no network) or "
            "PUBLIC (public hosts through the gateway's egress proxy)"
        )
    for unserved in ("certificates", "filesystemConfigurations"):
        if params.get(unserved):
            raise validation(f"{unserved} is not served by Switchboard's code interpreters; leave it out")
    name = params["name"]
    if await aws.get(call.tenant, KIND, name) is not None:
        raise conflict(f"a code interpreter named {name} exists")
    if len(await aws.list(call.tenant, KIND)) >= MAX_PER_TENANT:
        raise AwsError(
            "ServiceQuotaExceededException",
            f"the tenant has {MAX_PER_TENANT} code interpreters, its limit; delete one first",
            402,
        )
    attrs = {k: params[k] for k in ("description", "executionRoleArn", "tags") if params.get(k)}
    attrs["networkMode"] = mode
    res = await aws.ensure(call.tenant, KIND, name, lambda: _new_id(name), attrs, token)
    return _created(call, res)


def _created(call: Call, res: AwsResource) -> Params:
    out = _out(call, res)
    return {k: out[k] for k in ("codeInterpreterId", "codeInterpreterArn", "createdAt", "status")}


async def get_code_interpreter(call: Call, params: Params) -> Params:
    identifier = params["codeInterpreterId"]
    if identifier == BUILTIN:
        return _builtin(call)
    return _out(call, await _custom(call, identifier))


async def list_code_interpreters(call: Call, params: Params) -> Params:
    kind = params.get("type")
    keep = ("codeInterpreterId", "codeInterpreterArn", "name", "description", "status", "createdAt")
    summaries: list[Params] = []

    def summary(found: Params) -> Params:
        return {k: found[k] for k in (*keep, "lastUpdatedAt") if k in found}

    rows = [] if kind == "SYSTEM" else await StoreAws(call.system.store).list(call.tenant, KIND)
    if kind != "CUSTOM" and not params.get("nextToken"):
        summaries.append(summary(_builtin(call)))
    items, more = paged(rows, params, lambda r: summary(_out(call, r)))
    return {"codeInterpreterSummaries": [*summaries, *items], **more}


async def delete_code_interpreter(call: Call, params: Params) -> Params:
    identifier = params["codeInterpreterId"]
    if identifier == BUILTIN:
        raise validation(f"{BUILTIN} is built in and cannot be deleted")
    res = await _custom(call, identifier)
    await _interpreters(call).forget(call.tenant, identifier)
    await StoreAws(call.system.store).delete(call.tenant, KIND, res.name)
    return {"codeInterpreterId": identifier, "status": "DELETING", "lastUpdatedAt": datetime.now(UTC)}


# -- data plane ------------------------------------------------------------------------------


def _identifier(params: Params) -> str:
    """An interpreter's id, given as itself or as its ARN."""
    given = str(params["codeInterpreterIdentifier"])
    return given.rsplit("/", 1)[-1] if given.startswith("arn:") else given


async def _running(call: Call, identifier: str) -> Interpreter:
    interpreters = _interpreters(call)
    try:
        if identifier == BUILTIN:
            return await interpreters.builtin()
        res = await _custom(call, identifier)
        return await interpreters.custom(call.tenant, identifier, res.attrs.get("networkMode", "SANDBOX"))
    except Unavailable as exc:
        raise AwsError(
            "ServiceUnavailableException", f"code interpreters cannot run here: {exc}", 503
        ) from None


def _session(running: Interpreter, call: Call, params: Params) -> CodeSession:
    try:
        return running.get(str(params["sessionId"]), call.tenant)
    except NoSession as exc:
        raise not_found(str(exc)) from None


def _session_out(identifier: str, session: CodeSession) -> Params:
    return {
        "codeInterpreterIdentifier": identifier,
        "sessionId": session.id,
        "name": session.name,
        "createdAt": session.created,
        "sessionTimeoutSeconds": int(session.timeout_seconds),
        "status": session.status,
    }


async def start_session(call: Call, params: Params) -> Params:
    identifier = _identifier(params)
    running = await _running(call, identifier)
    for unserved in ("certificates", "filesystemConfigurations"):
        if params.get(unserved):
            raise validation(f"{unserved} is not served by Switchboard's code interpreters; leave it out")
    try:
        session = await running.start(
            call.tenant,
            "",
            str(params.get("name") or ""),
            params.get("sessionTimeoutSeconds"),
            params.get("clientToken"),
        )
    except AtCapacity as exc:
        raise AwsError("ServiceQuotaExceededException", str(exc), 402) from None
    except SandboxError as exc:
        raise validation(str(exc)) from None
    return {"codeInterpreterIdentifier": identifier, "sessionId": session.id, "createdAt": session.created}


async def get_session(call: Call, params: Params) -> Params:
    identifier = _identifier(params)
    return _session_out(identifier, _session(await _running(call, identifier), call, params))


async def list_sessions(call: Call, params: Params) -> Params:
    identifier = _identifier(params)
    running = await _running(call, identifier)
    found = running.sessions(call.tenant, params.get("status"))
    items = [
        {
            "codeInterpreterIdentifier": identifier,
            "sessionId": s.id,
            "name": s.name,
            "status": s.status,
            "createdAt": s.created,
            "lastUpdatedAt": s.updated(),
        }
        for s in found
    ]
    chunk, token = page(items, params, key="sessionId")
    return {"items": chunk, **({"nextToken": token} if token else {})}


async def stop_session(call: Call, params: Params) -> Params:
    identifier = _identifier(params)
    running = await _running(call, identifier)
    session = _session(running, call, params)
    await running.stop(session.id, call.tenant)
    return {
        "codeInterpreterIdentifier": identifier,
        "sessionId": session.id,
        "lastUpdatedAt": session.updated(),
    }


def _blobs(result: Params) -> Params:
    """Base64 in the sandbox's answer made bytes, as the wire's blob members want them."""
    decoded = base64.b64decode

    def fix(block: Any, key: str, convert: Callable[[str], bytes]) -> None:
        if isinstance(block, dict) and isinstance(block.get(key), str):
            try:
                block[key] = convert(block[key])
            except (binascii.Error, ValueError):
                block[key] = block[key].encode()

    for block in result.get("content") or ():
        fix(block, "data", decoded)
        fix(block.get("resource") if isinstance(block, dict) else None, "blob", decoded)
    return result


async def invoke(call: Call, params: Params) -> Params:
    identifier = _identifier(params)
    session_id = params.get("sessionId")
    if not session_id:
        raise validation("give the session (header x-amzn-code-interpreter-session-id); start one first")
    name = params["name"]
    if name not in TOOLS:
        raise validation(f"unknown tool {name!r}; the tools are {', '.join(TOOLS)}")
    running = await _running(call, identifier)
    principal = Principal(tenant=call.tenant, subject=call.subject, client_id=call.access_key_id)
    try:
        result = await _interpreters(call).invoke(
            running, identifier, principal, str(session_id), name, params.get("arguments") or {}
        )
    except NoSession as exc:
        raise not_found(str(exc)) from None
    except SandboxError as exc:
        raise validation(str(exc)) from None
    return {"sessionId": session_id, "stream": [{"result": _blobs(result)}]}


CONTROL = {
    "CreateCodeInterpreter": create_code_interpreter,
    "GetCodeInterpreter": get_code_interpreter,
    "ListCodeInterpreters": list_code_interpreters,
    "DeleteCodeInterpreter": delete_code_interpreter,
}

DATA = {
    "StartCodeInterpreterSession": start_session,
    "GetCodeInterpreterSession": get_session,
    "ListCodeInterpreterSessions": list_sessions,
    "StopCodeInterpreterSession": stop_session,
    "InvokeCodeInterpreter": invoke,
}
