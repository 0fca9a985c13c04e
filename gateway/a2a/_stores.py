"""The A2A front's tasks and push configs in the gateway's store (ADR 0037), so they survive a
restart and every replica sees them; and the guard on push URLs.

Everything is scoped by tenant, gateway, agent and caller (the principal's subject): a caller
never reads, lists or changes another's task, and a task id that is not theirs is not found.
A push config may hold a credential for the webhook, so it is stored sealed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import anyio
from a2a.server.context import ServerCallContext
from a2a.server.tasks import PushNotificationConfigStore, TaskStore
from a2a.server.tasks.push_notification_config_store import normalize_push_notification_config
from a2a.types import ListTasksRequest, ListTasksResponse, Task, TaskPushNotificationConfig
from a2a.utils.constants import DEFAULT_LIST_TASKS_PAGE_SIZE
from a2a.utils.errors import InvalidParamsError
from a2a.utils.task import ListTasksCursor, decode_list_tasks_cursor, encode_list_tasks_cursor
from google.protobuf.json_format import MessageToJson, Parse

from gateway.core.types import Principal
from gateway.egress import EgressRefused, check
from gateway.store import StoreA2a, TaskRow

PUSH_PURPOSE = b"a2a-push-config"
PUSH_SECONDS = 30 * 86400  # a sealed push config opens this long (a task's webhooks outlive no task)

Seal = Callable[[dict[str, object], bytes], str]
Unseal = Callable[[str, bytes], "dict[str, object] | None"]


def scope(context: ServerCallContext | None) -> tuple[str, str, str]:
    """(tenant, ``{gateway}/{agent}``, owner) of the call; the front always sets them."""
    state = context.state if context is not None else {}
    tenant, gateway, agent = state["target"]
    principal: Principal = state["principal"]
    return tenant, f"{gateway}/{agent}", principal.subject


class StoredTasks(TaskStore):
    """A2A tasks in the store."""

    def __init__(self, store: StoreA2a) -> None:
        self.store = store

    async def save(self, task: Task, context: ServerCallContext) -> None:
        tenant, agent, owner = scope(context)
        stamped = task.status.HasField("timestamp")
        row = TaskRow(
            id=task.id,
            tenant=tenant,
            agent=agent,
            owner=owner,
            context_id=task.context_id,
            state=int(task.status.state),
            updated_ns=task.status.timestamp.ToNanoseconds() if stamped else 0,
            body=MessageToJson(task, indent=None),
        )
        await self.store.save_task(row)

    async def get(self, task_id: str, context: ServerCallContext) -> Task | None:
        tenant, agent, owner = scope(context)
        body = await self.store.get_task(tenant, agent, owner, task_id)
        return Parse(body, Task(), ignore_unknown_fields=True) if body is not None else None

    async def list(self, params: ListTasksRequest, context: ServerCallContext) -> ListTasksResponse:
        tenant, agent, owner = scope(context)
        before = None
        if params.page_token:
            cursor = decode_list_tasks_cursor(params.page_token)
            if cursor is None:
                raise InvalidParamsError(message="pageToken is not one this server gave: start without it")
            before = (cursor.timestamp_ns or 0, cursor.task_id)
        size = params.page_size or DEFAULT_LIST_TASKS_PAGE_SIZE
        after = (
            params.status_timestamp_after.ToNanoseconds()
            if params.HasField("status_timestamp_after")
            else None
        )
        rows, total = await self.store.list_tasks(
            tenant,
            agent,
            owner,
            context_id=params.context_id,
            state=int(params.status),
            after_ns=after,
            before=before,
            limit=size + 1,
        )
        page = rows[:size]
        token = ""
        if len(rows) > size:
            last = page[-1]
            token = encode_list_tasks_cursor(ListTasksCursor(last.updated_ns or None, last.id))
        tasks = [Parse(r.body, Task(), ignore_unknown_fields=True) for r in page]
        return ListTasksResponse(tasks=tasks, next_page_token=token, page_size=size, total_size=total)

    async def delete(self, task_id: str, context: ServerCallContext) -> None:
        tenant, agent, owner = scope(context)
        await self.store.delete_task(tenant, agent, owner, task_id)


class StoredPushConfigs(PushNotificationConfigStore):
    """Push notification configs in the store, sealed."""

    def __init__(self, store: StoreA2a, seal: Seal, unseal: Unseal) -> None:
        self.store, self.seal, self.unseal = store, seal, unseal

    async def set_info(
        self, task_id: str, notification_config: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        tenant, _, owner = scope(context)
        config = normalize_push_notification_config(task_id, notification_config)
        doc: dict[str, object] = {
            "config": MessageToJson(config, indent=None),
            "exp": time.time() + PUSH_SECONDS,
        }
        await self.store.set_push(task_id, config.id, tenant, owner, self.seal(doc, PUSH_PURPOSE))
        return config

    async def get_info(self, task_id: str, context: ServerCallContext) -> list[TaskPushNotificationConfig]:
        tenant, _, owner = scope(context)
        return self._opened(await self.store.get_push(task_id, tenant, owner))

    async def get_info_for_dispatch(self, task_id: str) -> list[TaskPushNotificationConfig]:
        return self._opened(await self.store.get_push(task_id))

    async def delete_info(
        self, task_id: str, context: ServerCallContext, config_id: str | None = None
    ) -> None:
        tenant, _, owner = scope(context)
        await self.store.delete_push(task_id, tenant, owner, config_id)

    def _opened(self, sealed: Sequence[str]) -> list[TaskPushNotificationConfig]:
        configs = []
        for token in sealed:
            doc = self.unseal(str(token), PUSH_PURPOSE)
            if doc is not None and isinstance(doc.get("config"), str):
                configs.append(
                    Parse(str(doc["config"]), TaskPushNotificationConfig(), ignore_unknown_fields=True)
                )
        return configs


def push_url_guard(allow: tuple[str, ...]) -> Callable[[str], object]:
    """The check of a webhook URL when a config is made: http(s), and an address the egress
    guard allows (never private, loopback, link-local or metadata unless the operator allows
    it); the sender's connections are checked again, on the address they go to."""

    async def guard(url: str) -> bool:
        if not url.startswith(("https://", "http://")):
            raise InvalidParamsError(message=f"push notification URL {url!r} must be http(s)")
        try:
            await anyio.to_thread.run_sync(check, url, list(allow))
        except EgressRefused as exc:
            raise InvalidParamsError(message=f"push notification URL refused: {exc}") from None
        return True

    return guard
