"""A2A push notifications (ADR 0037): every event of a task that has push configs is POSTed to
each config's webhook, as the specification says (the StreamResponse as JSON, the config's
``token`` in ``X-A2A-Notification-Token``, its credentials in ``Authorization``), and:

- through the egress guard (a private, loopback, link-local or metadata address is refused
  unless the operator allows it, checked on the address each connection goes to);
- within ``TIMEOUT`` seconds, tried ``TRIES`` times with a growing pause (one failing webhook
  never holds up a task: each notification goes out on its own);
- signed: ``X-Switchboard-Signature`` is a JWT (ES256) from the gateway's key, naming the
  webhook (``aud``), who registered it (``sub``, ``tenant``: a webhook accepts only its own
  callers'), the task and the SHA-256 of the exact body, verifiable with the JWKS at
  ``/.well-known/jwks.json`` (``jku``);
- bounded: a task has at most 10 configs, ``AT_ONCE`` deliveries are in flight at a time and
  ``WAITING`` at most wait (past that a notification is dropped, and the log says so).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import secrets
import time

import httpx
from a2a.server.tasks import PushNotificationSender
from a2a.server.tasks.push_notification_sender import PushNotificationEvent
from a2a.types import TaskPushNotificationConfig
from a2a.utils.proto_utils import to_stream_response
from google.protobuf.json_format import MessageToJson
from joserfc import jwt
from joserfc.jwk import ECKey

from gateway.a2a._keys import JWKS_PATH
from gateway.a2a._stores import StoredPushConfigs

logger = logging.getLogger(__name__)

SIGNATURE = "X-Switchboard-Signature"
TIMEOUT = 10.0
TRIES = 3
SIGNED_SECONDS = 300
AT_ONCE = 16  # deliveries in flight, for the whole process
WAITING = 1024  # deliveries waiting or in flight; past this, notifications are dropped (and said)


class SignedPush(PushNotificationSender):
    """Sends each event to every webhook registered for its task."""

    def __init__(self, http: httpx.AsyncClient, configs: StoredPushConfigs, key: ECKey, issuer: str) -> None:
        self.http, self.configs, self.key, self.issuer = http, configs, key, issuer.rstrip("/")
        self.kid = key.thumbprint()
        self.sending: set[asyncio.Task[None]] = set()
        self.at_once = asyncio.Semaphore(AT_ONCE)

    async def send_notification(self, task_id: str, event: PushNotificationEvent) -> None:
        try:
            configs = await self.configs.get_info_for_dispatch(task_id)
        except Exception:  # (a store failure must not fail the task: it is said in the log)
            logger.warning("the push configs of A2A task %s could not be read", task_id, exc_info=True)
            return
        if not configs:
            return
        body = MessageToJson(to_stream_response(event), indent=None).encode()
        for config in configs:
            if len(self.sending) >= WAITING:
                logger.warning("A2A push notifications are backed up: one for task %s was dropped", task_id)
                return
            sent = asyncio.get_running_loop().create_task(self._deliver(task_id, config, body))
            self.sending.add(sent)
            sent.add_done_callback(self.sending.discard)

    def signature(self, task_id: str, config: TaskPushNotificationConfig, body: bytes) -> str:
        now = int(time.time())
        tenant, subject = self.configs.registrant(config)
        digest = base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=").decode()
        claims = {
            "iss": self.issuer,
            "aud": config.url,
            "sub": subject,  # who registered the webhook (the task's caller): a webhook checks it is theirs
            "tenant": tenant,
            "configId": config.id,
            "iat": now,
            "exp": now + SIGNED_SECONDS,
            "jti": secrets.token_urlsafe(12),
            "taskId": task_id,
            "bodySha256": digest,
        }
        header = {"alg": "ES256", "typ": "JWT", "kid": self.kid, "jku": self.issuer + JWKS_PATH}
        return jwt.encode(header, claims, self.key)

    async def _deliver(self, task_id: str, config: TaskPushNotificationConfig, body: bytes) -> None:
        async with self.at_once:
            await self._post(task_id, config, body)

    async def _post(self, task_id: str, config: TaskPushNotificationConfig, body: bytes) -> None:
        headers = {"Content-Type": "application/json", SIGNATURE: self.signature(task_id, config, body)}
        if config.token:
            headers["X-A2A-Notification-Token"] = config.token
        auth = config.authentication
        if config.HasField("authentication") and auth.scheme and auth.credentials:
            headers["Authorization"] = f"{auth.scheme} {auth.credentials}"
        for attempt in range(TRIES):
            try:
                answer = await self.http.post(config.url, content=body, headers=headers, timeout=TIMEOUT)
                if answer.status_code < 500 and answer.status_code != 429:
                    if answer.status_code >= 400:
                        logger.warning(
                            "webhook of A2A task %s refused a notification (%s)", task_id, answer.status_code
                        )
                    return
            except httpx.HTTPError as exc:
                logger.info("webhook of A2A task %s not reached (try %d): %s", task_id, attempt + 1, exc)
            await asyncio.sleep(0.5 * 2**attempt)
        logger.warning("webhook of A2A task %s was not reached after %d tries", task_id, TRIES)

    async def aclose(self) -> None:
        for sending in list(self.sending):
            sending.cancel()
