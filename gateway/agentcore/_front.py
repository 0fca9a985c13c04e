"""The AgentCore front: one ASGI app per plane, mounted where an AWS endpoint URL can point.

A request is routed by the service model (``_wire``), its SigV4 signature verified against the
access key it names (``_sigv4``, ``_keys``), its input rebuilt and checked against the model, and
handed to the operation's handler; the handler's answer, or its refusal, goes back in the shapes
botocore parses. An operation of the model that Switchboard does not serve is answered with one
``ValidationException`` that names it. Nothing here knows an operation by name.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Mapping
from urllib.parse import unquote_to_bytes

import anyio
from opentelemetry import trace
from starlette.types import Receive, Scope, Send

from gateway.agentcore._call import AwsError, Backend, Call, Handler
from gateway.agentcore._sigv4 import SignatureError, verify_async
from gateway.agentcore._wire import Response, Service, WireError, error_response, parse_input, serialize_error
from gateway.agentcore._wire import serialize_output as serialize
from gateway.auth import WORKLOAD, WORKLOAD_OPERATIONS, AccessKey, AccessKeys
from gateway.store import StoreError
from gateway.system import DEFAULT_TENANT
from gateway.telemetry import tag_tenant
from identity.vault import VaultError

logger = logging.getLogger(__name__)

SERVED_DOC = "docs/agentcore.md"


class _TooLarge(Exception):
    pass


class Plane:
    """The ASGI app of one AgentCore plane (the data plane or the control plane)."""

    def __init__(
        self,
        service: Service,
        handlers: Mapping[str, Handler],
        backend: Callable[[], Backend],
        *,
        plane: str,
        prefix: str,
        max_body: int,
    ) -> None:
        self.plane = plane  # "control" or "data": what an access key must be allowed
        self._writers: dict[str, anyio.Lock] = {}  # per tenant: control-plane changes, one at a time
        self.service = service
        self.handlers = dict(handlers)
        self.backend = backend
        self.prefix = prefix.rstrip("/")
        self.max_body = max_body
        unknown = set(self.handlers) - set(service.model.operation_names)
        if unknown:
            raise ValueError(f"handlers for operations {service.name} does not have: {sorted(unknown)}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            status, headers, body = await self._answer(scope, receive)
        except _TooLarge:
            too_large = f"the request body is larger than {self.max_body} bytes"
            code = "RequestEntityTooLargeException"  # not in the models: the status stays 413
            status, headers, body = serialize_error(self.service, code, too_large, 413)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
            }
        )
        if isinstance(body, bytes):
            await send({"type": "http.response.body", "body": body})
            return
        try:  # a streaming answer: each piece as it comes
            async for chunk in body:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            closing = getattr(body, "aclose", None)
            if closing is not None:
                await closing()

    async def _read(self, receive: Receive) -> bytes:
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > self.max_body:
                raise _TooLarge
            if not message.get("more_body", False):
                return bytes(body)

    async def _answer(self, scope: Scope, receive: Receive) -> Response:
        raw_path: bytes = scope["raw_path"]  # as the client signed it (a mount leaves it whole)
        path = raw_path.decode("latin-1")
        if path.startswith(self.prefix):
            path = path[len(self.prefix) :] or "/"
        query_string: bytes = scope.get("query_string", b"")
        try:
            query = _query(query_string)
        except UnicodeDecodeError:
            not_utf8 = "the query string is not UTF-8"
            return serialize_error(self.service, "SerializationException", not_utf8, 400)
        headers: list[tuple[bytes, bytes]] = list(scope.get("headers", []))
        body = await self._read(receive)
        try:
            operation, labels = self.service.route(scope["method"], path, query)
        except WireError as exc:
            return error_response(self.service, exc)
        backend = self.backend()
        try:
            if backend.unsigned_loopback and _unsigned_from_loopback(scope):
                key, region = AccessKey("unsigned", DEFAULT_TENANT, "local", ""), "us-east-1"
            else:
                key, region = await self._caller(backend.keys, scope, body)
        except SignatureError as exc:
            return serialize_error(self.service, exc.code, exc.message, exc.status)
        except (StoreError, VaultError) as exc:
            unavailable = f"the caller's access key cannot be looked up now: {exc}"
            return serialize_error(self.service, "ServiceUnavailableException", unavailable, 503)
        pinned = backend.regions.get(key.tenant)
        if pinned is not None and region != pinned:
            wrong = (
                f"Credential should be scoped to a valid region, not '{region}'; this tenant's is '{pinned}'."
            )
            return serialize_error(self.service, "InvalidSignatureException", wrong, 403)
        wait = await backend.throttle(key.access_key_id) if backend.throttle is not None else None
        if wait is not None:
            slow = f"access key {key.access_key_id} made too many requests; try again in {wait:g} s"
            return serialize_error(self.service, "ThrottlingException", slow, 429)
        workload = WORKLOAD in key.planes and self.plane == "data" and operation.name in WORKLOAD_OPERATIONS
        if self.plane not in key.planes and not workload:
            denied = f"access key {key.access_key_id} may not use the {self.plane} plane (its planes: "
            denied += f"{', '.join(sorted(key.planes))})"
            return serialize_error(self.service, "AccessDeniedException", denied, 403)
        _traced(key, operation.name, self.service.name)
        handler = self.handlers.get(operation.name)
        if handler is None:
            return serialize_error(
                self.service,
                "ValidationException",
                f"Switchboard does not implement {operation.name} ({self.service.name}); the operations it "
                f"serves are listed in {SERVED_DOC}",
                400,
            )
        try:
            text_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]
            params = parse_input(operation, labels, query, text_headers, body)
            call = Call(
                tenant=key.tenant,
                subject=key.subject,
                access_key_id=key.access_key_id,
                region=region,
                base_url=backend.public_url or _base_url(scope),
                system=backend.system,
                identity=backend.identity,
                account_ids=backend.accounts,
            )
            if self.plane == "control" and operation.http.get("method") != "GET":
                # A change reads what other resources say (an engine's policies, a provider's
                # configuration) and rewrites gateways from it: one at a time per tenant, or two at
                # once would each store what the other had not seen (a lost or revived policy).
                async with self._writers.setdefault(key.tenant, anyio.Lock()):
                    return serialize(operation, await handler(call, params))
            return serialize(operation, await handler(call, params))
        except WireError as exc:
            return error_response(self.service, exc)
        except RecursionError:
            nested = "the request is nested too deeply"
            return serialize_error(self.service, "SerializationException", nested, 400)
        except AwsError as exc:
            return serialize_error(self.service, exc.code, exc.message, exc.status)
        except StoreError as exc:
            return serialize_error(
                self.service,
                "ServiceUnavailableException",
                f"the store is unavailable; nothing changed: {exc}",
                503,
            )
        except Exception:
            logger.exception("AgentCore %s failed", operation.name)
            return serialize_error(
                self.service, "InternalServerException", f"{operation.name} failed inside Switchboard", 500
            )

    async def _caller(self, keys: AccessKeys, scope: Scope, body: bytes) -> tuple[AccessKey, str]:
        """The access key that signed the request, and the region it signed for."""
        found: list[AccessKey] = []

        async def secret(access_key_id: str) -> str | None:
            key = await keys.find(access_key_id)  # asked only once everything else is checked
            if key is None:
                return None
            found.append(key)
            return key.secret

        auth = await verify_async(
            method=scope["method"],
            raw_path=scope["raw_path"],
            query_string=scope.get("query_string", b""),
            headers=scope.get("headers", []),
            body=body,
            secret=secret,
        )
        return found[0], auth.region


def _query(query_string: bytes) -> list[tuple[str, str]]:
    """The query's pairs decoded as the signature verifier decodes them (``%XX`` only: a ``+`` is a
    plus), so what a handler reads is what was signed."""
    pairs = []
    for part in query_string.split(b"&") if query_string else ():
        key, _, value = part.partition(b"=")
        pairs.append((unquote_to_bytes(key).decode(), unquote_to_bytes(value).decode()))
    return pairs


def _traced(key: AccessKey, operation: str, service: str) -> None:
    """The request's span: in the caller's tenant's traces, named by the AWS operation and caller."""
    tag_tenant(key.tenant)
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(
            {
                "rpc.system": "aws-api",
                "rpc.service": service,
                "rpc.method": operation,
                "enduser.id": key.subject,
                "switchboard.access_key_id": key.access_key_id,
            }
        )


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def _unsigned_from_loopback(scope: Scope) -> bool:
    """No signature at all, from a loopback client (the operator's own machine), addressed to a
    loopback name, and not from a web page (no Origin): a page the operator's browser shows must
    not act as the operator through DNS rebinding or a cross-site form."""
    headers = {k.lower(): v for k, v in scope.get("headers", [])}
    if b"authorization" in headers or b"origin" in headers:
        return False
    host = headers.get(b"host", b"").decode("latin-1").rsplit(":", 1)[0] if b"host" in headers else ""
    if host not in LOOPBACK_NAMES:
        return False
    client = scope.get("client")
    try:
        return client is not None and ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


def _base_url(scope: Scope) -> str:
    scheme = scope.get("scheme", "http")
    host = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"host"), None)
    if host is None:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scheme}://{host}"
