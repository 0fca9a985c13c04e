"""An Amazon API Gateway REST API as a gateway target (``targetConfiguration.mcp.apiGateway``):
its stage's exported OpenAPI document becomes an ``openapi`` target, the tool filters its
``include_paths`` and the tool overrides its ``overrides``.

The export is read with the gateway host's own AWS identity (botocore's usual endpoint, region
and credentials; the region is the one the request was signed for), so, as for documents in S3,
only the operator's tenant may name an API.
"""

from __future__ import annotations

import json
from typing import Any

import anyio

from gateway.agentcore._call import AwsError, Params, validation
from gateway.capabilities import is_operator
from gateway.openapi.compiler import tool_name

WHERE = "targetConfiguration.mcp.apiGateway"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch")


async def target_parts(
    config: Params, tenant: str | None, region: str
) -> tuple[Any, list[str], dict[str, Any]]:
    """The exported document, the paths to include (``METHOD /path`` globs) and the overrides
    by the tool's name in the document."""
    if not is_operator(tenant or ""):
        raise AwsError(
            "AccessDeniedException",
            f"{WHERE}: exporting an API Gateway API uses the gateway host's own AWS identity, which only "
            "the operator's tenant may use; give its OpenAPI document inline instead",
            403,
        )
    doc = await anyio.to_thread.run_sync(_export, config["restApiId"], config["stage"], region)
    tools = config.get("apiGatewayToolConfiguration") or {}
    include = [f"{m} {f['filterPath']}" for f in tools.get("toolFilters") or [] for m in f["methods"]]
    overrides: dict[str, Any] = {}
    for i, override in enumerate(tools.get("toolOverrides") or []):
        path, method = override["path"], override["method"].lower()
        operation = (doc.get("paths") or {}).get(path, {}).get(method)
        if not isinstance(operation, dict):
            raise validation(
                f"{WHERE}.apiGatewayToolConfiguration.toolOverrides.{i + 1}: the API has no "
                f"{override['method']} {path}"
            )
        change = {"name": override["name"], "description": override.get("description")}
        overrides[tool_name(operation.get("operationId"), method, path)] = {
            k: v for k, v in change.items() if v is not None
        }
    return doc, include, overrides


def _export(rest_api_id: str, stage: str, region: str) -> Any:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client = boto3.client("apigateway", region_name=region)
        answer = client.get_export(
            restApiId=rest_api_id, stageName=stage, exportType="oas30", accepts="application/json"
        )
        doc = json.loads(answer["body"].read())
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise validation(
            f"{WHERE}: the API {rest_api_id} (stage {stage}) cannot be exported ({code})"
        ) from None
    except (BotoCoreError, ValueError) as exc:
        raise validation(
            f"{WHERE}: the API {rest_api_id} (stage {stage}) cannot be exported: {exc}"
        ) from None
    if not isinstance(doc, dict):
        raise validation(f"{WHERE}: the export of {rest_api_id} is not an OpenAPI document")
    for item in (doc.get("paths") or {}).values():  # method keys as OpenAPI spells them
        if isinstance(item, dict):
            for key in [k for k in item if k.lower() in METHODS and k != k.lower()]:
                item[key.lower()] = item.pop(key)
    return doc
