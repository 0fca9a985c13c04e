"""Admin API: the tenant's code interpreter sessions in this process (ADR 0035), whichever way
they were started (AgentCore's API, a gateway target's MCP tools), with what they use; and
stopping one."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.admin._http import error
from gateway.interpreters import Running
from gateway.system import Switchboard
from sandbox import CodeSession


def _described(running: Running, session: CodeSession) -> dict[str, Any]:
    now = time.monotonic()
    out: dict[str, Any] = {
        "session_id": session.id,
        "interpreter": running.key,
        "name": session.name,
        "status": session.status,
        "owner": session.owner or None,
        "created_at": session.created.isoformat(),
        "timeout_seconds": session.timeout_seconds,
        "calls": session.calls,
        "busy": session.busy > 0,
    }
    if session.status == "READY" and session.box is not None:
        usage = session.box.usage()
        out |= {
            "age_seconds": round(now - session.started, 3),
            "idle_seconds": round(now - session.last_used, 3),
            "cpu_seconds": round(usage.cpu_seconds, 3),
            "memory_bytes": usage.memory_bytes,
        }
    else:
        out["ended_at"] = session.updated().isoformat()
    return out


async def list_sessions(request: Request, system: Switchboard, tenant: str) -> Response:
    status = request.query_params.get("status")
    if status not in (None, "READY", "TERMINATED"):
        return error(400, "status is READY or TERMINATED")
    found = system.interpreters.sessions(tenant) if system.interpreters is not None else []
    items = [_described(r, s) for r, s in found if status is None or s.status == status]
    return JSONResponse({"sessions": items})


async def stop_session(request: Request, system: Switchboard, tenant: str) -> Response:
    session_id = request.path_params["session_id"]
    found = system.interpreters.find(tenant, session_id) if system.interpreters is not None else None
    if found is None:
        return error(404, f"no code interpreter session {session_id!r} in this process")
    running, session = found
    await running.interpreter.stop(session.id, tenant)
    return JSONResponse(_described(running, session))
