"""Admin API: the tenant's hosted agent sessions in this process (ADR 0039), with their age,
last use, CPU and memory; and killing one (its sandbox and everything in it, at once)."""

from __future__ import annotations

from dataclasses import asdict

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.admin._http import error
from gateway.system import Switchboard


async def list_runtime_sessions(request: Request, system: Switchboard, tenant: str) -> Response:
    sessions = system.runtimes.sessions if system.runtimes is not None else None
    listed = sessions.listed(tenant) if sessions is not None else []
    return JSONResponse({"sessions": [{**asdict(s), "runtime_version": s.version} for s in listed]})


async def kill_runtime_session(request: Request, system: Switchboard, tenant: str) -> Response:
    session_id = request.path_params["session_id"]
    sessions = system.runtimes.sessions if system.runtimes is not None else None
    if sessions is None or not await sessions.stop(session_id, tenant):
        return error(404, f"no hosted agent session {session_id!r} in this process")
    return Response(status_code=204)
