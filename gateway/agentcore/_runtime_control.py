"""AgentCore Runtime's control plane on the hosted agents (ADR 0039, 0041).

``CreateAgentRuntime`` and ``UpdateAgentRuntime`` make a new version from
``codeConfiguration``: a zip of the agent's folder in S3 (read with the host's AWS identity, so
only the operator's tenant may name one), its ``entryPoint`` (the ``.py`` file that starts the
app), ``protocolConfiguration`` (HTTP, MCP or A2A), ``environmentVariables`` and ``description``.
As on AgentCore, the answer comes at once (``CREATING`` / ``UPDATING``) and the version is built
in the background: ``GetAgentRuntime`` says ``READY``, or ``..._FAILED`` with its
``failureReason``, and a failed update leaves the versions before it serving. Container images
cannot run here (no container engine): ``containerConfiguration`` is refused, saying so.
``roleArn`` and ``networkConfiguration`` are kept and answered back; a session's network is what
ADR 0040 gives it, whatever they say.

Endpoints (``Create/Get/List/Update/DeleteAgentRuntimeEndpoint``) point at versions; ``DEFAULT``
follows the latest. Canary weights are Switchboard's own (the CLI and the admin API set them).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import string
from datetime import UTC, datetime
from typing import Any

from gateway.agentcore import _s3
from gateway.agentcore._call import AwsError, Call, Params, conflict, not_found, validation
from gateway.agentcore._gateways import page
from gateway.agentcore._runtime import KIND
from gateway.capabilities import is_operator
from gateway.runtimes import Runtimes
from gateway.store import AwsResource, StoreAws
from runtime import NAME, DeployError, Endpoint, EndpointError, Settings, Version

logger = logging.getLogger(__name__)
MAX_ZIP = 250 * 1024 * 1024  # (AgentCore's limit for a direct code upload)
BUSY = ("CREATING", "UPDATING")


def _runtimes(call: Call) -> Runtimes:
    found = call.system.runtimes
    if found is None:
        raise AwsError("ServiceUnavailableException", "hosted agents are not running in this process", 503)
    return found


def _new_id(name: str) -> str:
    alphabet = string.ascii_letters + string.digits
    return f"{name}-{''.join(secrets.choice(alphabet) for _ in range(10))}"


async def _identified(call: Call, runtimes: Runtimes) -> dict[str, AwsResource]:
    """Every runtime's AgentCore record by name: those made here, and those deployed with the CLI
    (a record made on first sight)."""
    aws = StoreAws(call.system.store)
    found = {r.name: r for r in await aws.list(call.tenant, KIND)}
    for name in runtimes.deployments(call.tenant).runtimes():
        if name not in found:
            found[name] = await aws.ensure(call.tenant, KIND, name, lambda name=name: _new_id(name))  # type: ignore[misc]
    return found


async def _by_id(call: Call, runtimes: Runtimes, identifier: str) -> tuple[AwsResource, list[Version]]:
    res = await StoreAws(call.system.store).by_id(call.tenant, KIND, identifier)
    versions = runtimes.deployments(call.tenant).versions(res.name) if res is not None else []
    if res is None or not (versions or res.attrs.get("status")):
        raise not_found(f"no agent runtime {identifier}")
    return res, versions


def _status(res: AwsResource) -> str:
    return str(res.attrs.get("status") or "READY")


def _item(call: Call, res: AwsResource, version: Version | None) -> Params:
    number = str(version.number) if version is not None else str(res.attrs.get("version", "1"))
    described = res.attrs.get("description") or (
        version.description
        if version is not None and version.description
        else f"deployed with switchboard runtime deploy (entry {version.entry})"
        if version is not None
        else ""
    )
    changed = version.created if version is not None else res.updated_at.timestamp()
    return {
        "agentRuntimeArn": call.arn("bedrock-agentcore", f"runtime/{res.resource_id}"),
        "agentRuntimeId": res.resource_id,
        "agentRuntimeVersion": number,
        "agentRuntimeName": res.name,
        "description": described,
        "lastUpdatedAt": datetime.fromtimestamp(changed, UTC),
        "status": _status(res),
    }


def _settings(params: Params, where: str) -> tuple[Settings, Params]:
    """What the version is made with, and where its code is (``s3``)."""
    artifact = params.get("agentRuntimeArtifact") or {}
    if "containerConfiguration" in artifact:
        raise validation(
            "agentRuntimeArtifact.containerConfiguration: container images cannot run here (no container "
            "engine); send codeConfiguration (a zip of the agent's folder) or deploy the folder with "
            "switchboard runtime deploy"
        )
    code = artifact.get("codeConfiguration")
    if not code or not (code.get("code") or {}).get("s3"):
        raise validation("agentRuntimeArtifact.codeConfiguration.code.s3: give the zip of the agent's folder")
    entries = [str(e) for e in code.get("entryPoint") or [] if str(e).endswith(".py")]
    if not entries:
        raise validation(
            f"{where}.codeConfiguration.entryPoint: name the .py file that starts the app (main.py, say)"
        )
    protocol = str((params.get("protocolConfiguration") or {}).get("serverProtocol") or "HTTP")
    settings = Settings(
        entry=entries[-1],
        protocol=protocol,
        environment=dict(params.get("environmentVariables") or {}),
        description=str(params.get("description") or ""),
    )
    try:
        settings.check()
    except DeployError as exc:
        raise validation(str(exc)) from None
    return settings, dict(code["code"]["s3"])


def _attrs(params: Params, status: str, version: int) -> dict[str, Any]:
    kept = ("roleArn", "networkConfiguration", "description", "protocolConfiguration", "environmentVariables")
    return {
        **{k: params[k] for k in kept if params.get(k) is not None},
        "status": status,
        "version": version,
    }


async def _build(call: Call, runtimes: Runtimes, res: AwsResource, s3: Params, settings: Settings) -> None:
    """Deploy in the background: READY, or ``..._FAILED`` with why (the versions before it serve)."""
    aws = StoreAws(call.system.store)
    failed = "CREATE_FAILED" if res.attrs.get("status") == "CREATING" else "UPDATE_FAILED"
    where = "agentRuntimeArtifact.codeConfiguration.code.s3"

    async def fail(reason: str) -> None:
        await aws.update(
            call.tenant, KIND, res.name, {**res.attrs, "status": failed, "failureReason": reason}
        )

    try:
        uri = f"s3://{s3.get('bucket')}/{str(s3.get('prefix') or '').lstrip('/')}"
        archive = await _s3.read(uri, call.tenant, where, limit=MAX_ZIP)
        version = await runtimes.deployments(call.tenant).deploy_archive(res.name, archive, settings)
    except (AwsError, DeployError) as exc:
        await fail(str(exc))
        return
    except Exception as exc:  # (whatever broke, the runtime says so;
        # never raised on: it would end the task group every background build shares)
        logger.exception("the background deploy of runtime %s failed", res.name)
        with contextlib.suppress(Exception):
            await fail(f"the deploy failed: {type(exc).__name__}: {exc}")
        return
    attrs = {k: v for k, v in res.attrs.items() if k not in ("status", "failureReason")}
    await aws.update(call.tenant, KIND, res.name, {**attrs, "version": version.number})


def _s3_allowed(call: Call) -> None:
    # Refused at once (not in the background): the host's AWS identity is the operator's.
    if not is_operator(call.tenant):
        raise AwsError(
            "AccessDeniedException",
            "codeConfiguration.code.s3 is read with the gateway host's own AWS identity, which only the "
            "operator's tenant may use; deploy through the admin API (POST /admin/v1/runtimes/NAME/versions "
            "with a zip) instead",
            403,
        )


async def create_agent_runtime(call: Call, params: Params) -> Params:
    runtimes = _runtimes(call)
    name = str(params["agentRuntimeName"])
    if not NAME.fullmatch(name):
        raise validation(f"agentRuntimeName {name!r}: a letter, then letters, digits or '_' (48 at most)")
    settings, s3 = _settings(params, "agentRuntimeArtifact")
    _s3_allowed(call)
    aws = StoreAws(call.system.store)
    token = params.get("clientToken")
    earlier = await aws.by_client_token(call.tenant, KIND, token) if token else None
    if earlier is not None:  # (the same request again: the same answer)
        return _created(call, earlier)
    if runtimes.deployments(call.tenant).versions(name) or await aws.get(call.tenant, KIND, name):
        raise conflict(f"agent runtime {name} already exists: update it (UpdateAgentRuntime)")
    res = await aws.ensure(
        call.tenant, KIND, name, lambda: _new_id(name), _attrs(params, "CREATING", 1), token
    )
    runtimes.later(lambda: _build(call, runtimes, res, s3, settings))
    return _created(call, res)


def _created(call: Call, res: AwsResource) -> Params:
    return {
        "agentRuntimeArn": call.arn("bedrock-agentcore", f"runtime/{res.resource_id}"),
        "agentRuntimeId": res.resource_id,
        "agentRuntimeVersion": str(res.attrs.get("version", 1)),
        "createdAt": res.created_at,
        "status": _status(res),
    }


async def update_agent_runtime(call: Call, params: Params) -> Params:
    runtimes = _runtimes(call)
    res, versions = await _by_id(call, runtimes, str(params["agentRuntimeId"]))
    if _status(res) in BUSY:
        raise conflict(f"agent runtime {res.resource_id} is {_status(res)}: wait for it to finish")
    settings, s3 = _settings(params, "agentRuntimeArtifact")
    _s3_allowed(call)
    number = max((v.number for v in versions), default=0) + 1
    attrs = {**res.attrs, **_attrs(params, "UPDATING", number)}
    attrs.pop("failureReason", None)
    await StoreAws(call.system.store).update(call.tenant, KIND, res.name, attrs)
    updating = AwsResource(
        res.tenant,
        res.kind,
        res.name,
        res.resource_id,
        attrs,
        res.client_token,
        res.created_at,
        res.updated_at,
    )
    runtimes.later(lambda: _build(call, runtimes, updating, s3, settings))
    return {
        **_created(call, updating),
        "lastUpdatedAt": datetime.now(UTC),
    }


async def get_agent_runtime(call: Call, params: Params) -> Params:
    runtimes = _runtimes(call)
    res, versions = await _by_id(call, runtimes, str(params["agentRuntimeId"]))
    wanted = params.get("agentRuntimeVersion")
    version = next((v for v in versions if str(v.number) == wanted), None) if wanted else None
    if wanted and version is None:
        raise not_found(f"agent runtime {res.resource_id} has no version {wanted}")
    version = version or (versions[-1] if versions else None)
    settings = runtimes.settings
    protocol = version.protocol if version is not None else "HTTP"
    out: Params = {
        **_item(call, res, version),
        "createdAt": res.created_at,
        "roleArn": str(res.attrs.get("roleArn") or call.arn("iam", "role/switchboard-runtime")),
        "networkConfiguration": res.attrs.get("networkConfiguration") or {"networkMode": "PUBLIC"},
        "lifecycleConfiguration": {
            "idleRuntimeSessionTimeout": int(settings.runtime_idle_seconds),
            "maxLifetime": int(settings.runtime_max_seconds),
        },
        "protocolConfiguration": {"serverProtocol": protocol},
    }
    if version is not None and version.environment:
        out["environmentVariables"] = dict(version.environment)
    if res.attrs.get("failureReason"):
        out["failureReason"] = str(res.attrs["failureReason"])
    return out


async def list_agent_runtimes(call: Call, params: Params) -> Params:
    runtimes = call.system.runtimes
    if runtimes is None:
        return {"agentRuntimes": []}
    deployments = runtimes.deployments(call.tenant)
    items = []
    for name, res in (await _identified(call, runtimes)).items():
        versions = deployments.versions(name)
        if versions or res.attrs.get("status"):
            items.append(_item(call, res, versions[-1] if versions else None))
    chunk, token = page(items, params, key="agentRuntimeName")
    return {"agentRuntimes": chunk, **({"nextToken": token} if token else {})}


async def list_agent_runtime_versions(call: Call, params: Params) -> Params:
    runtimes = _runtimes(call)
    res, versions = await _by_id(call, runtimes, str(params["agentRuntimeId"]))
    items = [_item(call, res, v) | {"status": "READY", "order": f"{v.number:05d}"} for v in versions]
    chunk, token = page(items, params, key="order")  # (by number: "10" after "9")
    listed = [{k: v for k, v in item.items() if k != "order"} for item in chunk]
    return {"agentRuntimes": listed, **({"nextToken": token} if token else {})}


async def delete_agent_runtime(call: Call, params: Params) -> Params:
    runtimes = _runtimes(call)
    res, versions = await _by_id(call, runtimes, str(params["agentRuntimeId"]))
    if params.get("agentRuntimeVersion"):
        raise validation(
            "a single version is not deleted: leave agentRuntimeVersion out to delete the runtime"
        )
    if _status(res) in BUSY:
        raise conflict(f"agent runtime {res.resource_id} is {_status(res)}: wait for it to finish")
    sessions = runtimes.sessions
    for listed in sessions.listed(call.tenant) if sessions is not None else []:
        if listed.version.split(":")[0] == res.name:
            await sessions.stop(listed.id, call.tenant)  # type: ignore[union-attr]
    await runtimes.deployments(call.tenant).delete(res.name)
    await StoreAws(call.system.store).delete(call.tenant, KIND, res.name)
    await runtimes.forget(call.tenant, res.name)
    number = str(versions[-1].number) if versions else str(res.attrs.get("version", 1))
    return {"status": "DELETING", "agentRuntimeId": res.resource_id, "agentRuntimeVersion": number}


# -- endpoints -----------------------------------------------------------------------------------


def _endpoint_out(call: Call, res: AwsResource, endpoint: Endpoint, latest: int) -> Params:
    target = str(endpoint.version if endpoint.version is not None else latest)
    created = endpoint.created or res.created_at.timestamp()
    return {
        "name": endpoint.name,
        "id": endpoint.name,
        "agentRuntimeEndpointArn": call.arn(
            "bedrock-agentcore", f"runtime/{res.resource_id}/runtime-endpoint/{endpoint.name}"
        ),
        "agentRuntimeArn": call.arn("bedrock-agentcore", f"runtime/{res.resource_id}"),
        "liveVersion": target,
        "targetVersion": target,
        "description": endpoint.description,
        "status": "READY",
        "createdAt": datetime.fromtimestamp(created, UTC),
        "lastUpdatedAt": datetime.fromtimestamp(endpoint.updated or created, UTC),
    }


async def _endpoint_call(call: Call, params: Params) -> tuple[Runtimes, AwsResource, list[Version]]:
    runtimes = _runtimes(call)
    res, versions = await _by_id(call, runtimes, str(params["agentRuntimeId"]))
    if not versions:
        raise conflict(f"agent runtime {res.resource_id} has no version yet ({_status(res)})")
    return runtimes, res, versions


def _version_of(params: Params) -> int | None:
    wanted = params.get("agentRuntimeVersion")
    if wanted is None:
        return None
    if not str(wanted).isdigit():
        raise validation(f"agentRuntimeVersion {wanted!r} is not a version number")
    return int(wanted)


async def create_agent_runtime_endpoint(call: Call, params: Params) -> Params:
    runtimes, res, versions = await _endpoint_call(call, params)
    numbers = [v.number for v in versions]
    try:
        endpoint = runtimes.deployments(call.tenant).endpoints.put(
            res.name,
            str(params["name"]),
            numbers,
            version=_version_of(params) or numbers[-1],
            description=params.get("description"),
            create=True,
        )
    except EndpointError as exc:
        raise (conflict if "already has" in str(exc) else validation)(str(exc)) from None
    out = _endpoint_out(call, res, endpoint, numbers[-1])
    return {
        "targetVersion": out["targetVersion"],
        "agentRuntimeEndpointArn": out["agentRuntimeEndpointArn"],
        "agentRuntimeArn": out["agentRuntimeArn"],
        "agentRuntimeId": res.resource_id,
        "endpointName": endpoint.name,
        "status": "READY",
        "createdAt": out["createdAt"],
    }


async def get_agent_runtime_endpoint(call: Call, params: Params) -> Params:
    runtimes, res, versions = await _endpoint_call(call, params)
    try:
        endpoint = runtimes.deployments(call.tenant).endpoints.get(res.name, str(params["endpointName"]))
    except EndpointError as exc:
        raise not_found(str(exc)) from None
    return _endpoint_out(call, res, endpoint, versions[-1].number)


async def list_agent_runtime_endpoints(call: Call, params: Params) -> Params:
    runtimes, res, versions = await _endpoint_call(call, params)
    found = runtimes.deployments(call.tenant).endpoints.all(res.name)
    items = [_endpoint_out(call, res, e, versions[-1].number) for e in found]
    chunk, token = page(items, params, key="name")
    return {"runtimeEndpoints": chunk, **({"nextToken": token} if token else {})}


async def update_agent_runtime_endpoint(call: Call, params: Params) -> Params:
    runtimes, res, versions = await _endpoint_call(call, params)
    endpoints = runtimes.deployments(call.tenant).endpoints
    name = str(params["endpointName"])
    numbers = [v.number for v in versions]
    try:
        old = endpoints.get(res.name, name)
        canary = old.canary if old.canary in numbers else None  # (a canary kept, if it still exists)
        endpoint = endpoints.put(
            res.name,
            name,
            numbers,
            version=_version_of(params) or old.version,
            canary=canary,
            weight=old.weight if canary is not None else 0,
            description=params.get("description"),
            create=False,
        )
    except EndpointError as exc:
        raise (not_found if "has no endpoint" in str(exc) else validation)(str(exc)) from None
    out = _endpoint_out(call, res, endpoint, numbers[-1])
    return {
        k: out[k] for k in ("liveVersion", "targetVersion", "agentRuntimeEndpointArn", "agentRuntimeArn")
    } | {
        "status": "READY",
        "createdAt": out["createdAt"],
        "lastUpdatedAt": out["lastUpdatedAt"],
    }


async def delete_agent_runtime_endpoint(call: Call, params: Params) -> Params:
    runtimes, res, _ = await _endpoint_call(call, params)
    name = str(params["endpointName"])
    try:
        gone = runtimes.deployments(call.tenant).endpoints.delete(res.name, name)
    except EndpointError as exc:
        raise validation(str(exc)) from None
    if not gone:
        raise not_found(f"agent runtime {res.resource_id} has no endpoint {name}")
    return {"status": "DELETING", "agentRuntimeId": res.resource_id, "endpointName": name}


CONTROL = {
    "CreateAgentRuntime": create_agent_runtime,
    "UpdateAgentRuntime": update_agent_runtime,
    "GetAgentRuntime": get_agent_runtime,
    "ListAgentRuntimes": list_agent_runtimes,
    "ListAgentRuntimeVersions": list_agent_runtime_versions,
    "DeleteAgentRuntime": delete_agent_runtime,
    "CreateAgentRuntimeEndpoint": create_agent_runtime_endpoint,
    "GetAgentRuntimeEndpoint": get_agent_runtime_endpoint,
    "ListAgentRuntimeEndpoints": list_agent_runtime_endpoints,
    "UpdateAgentRuntimeEndpoint": update_agent_runtime_endpoint,
    "DeleteAgentRuntimeEndpoint": delete_agent_runtime_endpoint,
}
