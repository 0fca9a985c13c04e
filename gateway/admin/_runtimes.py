"""Admin API: the tenant's hosted agents (ADR 0039, 0041).

- sessions in this process, with their age, last use, CPU and memory; killing one (its sandbox
  and everything in it, at once);
- runtimes with their versions and endpoints; a new version from a zip of the agent's folder
  (``POST /admin/v1/runtimes/{runtime}/versions``, the zip as the body, its settings in the query:
  ``entry``, ``protocol``, ``description``, ``env=NAME=VALUE`` and ``secret=NAME=PROVIDER``,
  each as often as needed); a tenant's requirements may name packages only;
- endpoints, canary weights included (``PUT .../endpoints/{endpoint}``).
"""

from __future__ import annotations

from dataclasses import asdict

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.admin._bodies import RuntimeEndpoint
from gateway.admin._http import body_as, error
from gateway.runtimes import AWS_KIND, Runtimes
from gateway.serving import read_body
from gateway.store import StoreAws
from gateway.system import Switchboard
from runtime import DeployError, Deployments, EndpointError, Settings, Version

MAX_ZIP_BYTES = 64 * 1024 * 1024


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


def _deployments(system: Switchboard, tenant: str) -> Deployments:
    runtimes = system.runtimes or Runtimes(system.settings)
    return runtimes.deployments(tenant)


def _version(version: Version) -> dict[str, object]:
    return {
        "number": version.number,
        "entry": version.entry,
        "protocol": version.protocol,
        "description": version.description,
        "environment": sorted(version.environment),  # (names: values may be sensitive)
        "secrets": dict(version.secrets),  # (variable: provider; never the key)
        "created": version.created,
    }


def _runtime(deployments: Deployments, name: str) -> dict[str, object]:
    versions = deployments.versions(name)
    latest = versions[-1].number
    endpoints = [{**asdict(e), "version": e.version or latest} for e in deployments.endpoints.all(name)]
    return {"name": name, "versions": [_version(v) for v in versions], "endpoints": endpoints}


async def list_runtimes(request: Request, system: Switchboard, tenant: str) -> Response:
    deployments = _deployments(system, tenant)
    return JSONResponse({"runtimes": [_runtime(deployments, n) for n in deployments.runtimes()]})


async def get_runtime(request: Request, system: Switchboard, tenant: str) -> Response:
    deployments, name = _deployments(system, tenant), request.path_params["runtime"]
    if not deployments.versions(name):
        return error(404, f"no runtime {name!r}: deploy it first (POST /admin/v1/runtimes/{name}/versions)")
    return JSONResponse(_runtime(deployments, name))


def _pairs(request: Request, key: str) -> dict[str, str] | str:
    out: dict[str, str] = {}
    for given in request.query_params.getlist(key):
        name, sep, value = given.partition("=")
        if not sep or not name:
            return f"{key}={given!r}: give NAME=VALUE"
        out[name] = value
    return out


async def deploy_runtime(request: Request, system: Switchboard, tenant: str) -> Response:
    name = request.path_params["runtime"]
    environment, secrets = _pairs(request, "env"), _pairs(request, "secret")
    for said in (environment, secrets):
        if isinstance(said, str):
            return error(422, said)
    assert isinstance(environment, dict) and isinstance(secrets, dict)
    body, _ = await read_body(request.receive, MAX_ZIP_BYTES)
    if body is None:
        return error(413, f"the zip is larger than {MAX_ZIP_BYTES // 2**20} MiB")
    if not body:
        return error(422, "send the zip of the agent's folder as the request body")
    query = request.query_params
    settings = Settings(
        entry=query.get("entry", "main.py"),
        protocol=query.get("protocol", "HTTP"),
        environment=environment,
        secrets=secrets,
        description=query.get("description", ""),
    )
    try:
        version = await _deployments(system, tenant).deploy_archive(name, body, settings)
    except DeployError as exc:
        return error(422, f"the deploy was refused: {exc}")
    return JSONResponse({"runtime": name, **_version(version)}, 201)


async def delete_runtime(request: Request, system: Switchboard, tenant: str) -> Response:
    deployments, name = _deployments(system, tenant), request.path_params["runtime"]
    sessions = system.runtimes.sessions if system.runtimes is not None else None
    for listed in sessions.listed(tenant) if sessions is not None else []:
        if listed.version.split(":")[0] == name and sessions is not None:
            await sessions.stop(listed.id, tenant)
    if not await deployments.delete(name):
        return error(404, f"no runtime {name!r}")
    await StoreAws(system.store).delete(tenant, AWS_KIND, name)  # (its AgentCore id goes with it)
    if system.runtimes is not None:
        await system.runtimes.forget(tenant, name)  # (and its access key)
    return Response(status_code=204)


async def put_endpoint(request: Request, system: Switchboard, tenant: str) -> Response:
    deployments = _deployments(system, tenant)
    name, endpoint = request.path_params["runtime"], request.path_params["endpoint"]
    wanted = await body_as(request, RuntimeEndpoint)
    versions = [v.number for v in deployments.versions(name)]
    if not versions:
        return error(404, f"no runtime {name!r}")
    try:
        made = await anyio.to_thread.run_sync(
            lambda: deployments.endpoints.put(
                name,
                endpoint,
                versions,
                version=wanted.version,
                canary=wanted.canary,
                weight=wanted.weight,
                description=wanted.description,
            )
        )
    except EndpointError as exc:
        return error(422, str(exc))
    return JSONResponse(asdict(made))


async def delete_endpoint(request: Request, system: Switchboard, tenant: str) -> Response:
    deployments = _deployments(system, tenant)
    name, endpoint = request.path_params["runtime"], request.path_params["endpoint"]
    try:
        gone = deployments.endpoints.delete(name, endpoint)
    except EndpointError as exc:
        return error(422, str(exc))
    if not gone:
        return error(404, f"runtime {name!r} has no endpoint {endpoint!r}")
    return Response(status_code=204)
