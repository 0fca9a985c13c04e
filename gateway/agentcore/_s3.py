"""Documents named by an S3 URI in a target's configuration (``openApiSchema.s3``,
``toolSchema.s3``), read with the gateway host's own AWS identity.

Reading S3 as the host is a host capability: only the operator's tenant may name an S3 object
(a tenant admin would read whatever the host's credentials can). The endpoint, region and
credentials are botocore's usual ones (``AWS_ENDPOINT_URL_S3``, ``AWS_REGION``, ...).
"""

from __future__ import annotations

import json
from typing import Any

import anyio

from gateway.agentcore._call import AwsError, validation
from gateway.capabilities import is_operator

MAX_BYTES = 2 * 1024 * 1024


async def read(uri: str, tenant: str, where: str, limit: int = MAX_BYTES) -> bytes:
    """The object at ``uri`` (``s3://bucket/key``), at most ``limit`` bytes; refusals name ``where``."""
    if not is_operator(tenant):
        raise AwsError(
            "AccessDeniedException",
            f"{where}: reading S3 uses the gateway host's own AWS identity, which only the operator's "
            "tenant may use; send the document inline",
            403,
        )
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise validation(f"{where}: {uri!r} is not s3://bucket/key")
    return await anyio.to_thread.run_sync(_get, bucket, key, where, limit)


def _get(bucket: str, key: str, where: str, limit: int) -> bytes:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        answer = boto3.client("s3").get_object(Bucket=bucket, Key=key)
        size = int(answer.get("ContentLength") or 0)
        if size > limit:
            raise validation(f"{where}: s3://{bucket}/{key} is larger than {limit} bytes")
        body: bytes = answer["Body"].read(limit + 1)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise validation(f"{where}: s3://{bucket}/{key} cannot be read ({code})") from None
    except BotoCoreError as exc:
        raise validation(f"{where}: s3://{bucket}/{key} cannot be read: {exc}") from None
    if len(body) > limit:
        raise validation(f"{where}: s3://{bucket}/{key} is larger than {limit} bytes")
    return body


def tools(text: str, where: str) -> list[dict[str, Any]]:
    """Tool definitions read from S3: a JSON list of objects with a ``name``."""
    try:
        stored = json.loads(text)
    except ValueError as exc:
        raise validation(f"{where}.s3 is not JSON: {exc}") from None
    if not isinstance(stored, list) or not all(isinstance(t, dict) and "name" in t for t in stored):
        raise validation(f"{where}.s3 does not hold a list of tool definitions")
    return stored
