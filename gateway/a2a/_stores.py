"""The A2A front's tasks and push configs in the gateway's store (ADR 0037), so they survive a
restart and every replica sees them; and the guard on push URLs.

Everything is scoped by tenant, gateway, agent and caller (the principal's subject): a caller
never reads, lists or changes another's task, and a task id that is not theirs is not found.
A push config may hold a credential for the webhook, so it is stored sealed.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence

import anyio
from a2a.server.context import ServerCallContext
from a2a.server.id_generator import IDGenerator, IDGeneratorContext
from a2a.server.tasks import PushNotificationConfigStore, TaskStore
from a2a.server.tasks.push_notification_config_store import normalize_push_notification_config
from a2a.types import ListTasksRequest, ListTasksResponse, Task, TaskPushNotificationConfig, TaskState
from a2a.utils.constants import DEFAULT_LIST_TASKS_PAGE_SIZE
from a2a.utils.errors import InvalidParamsError
from a2a.utils.task import ListTasksCursor, decode_list_tasks_cursor, encode_list_tasks_cursor
from google.protobuf.json_format import MessageToJson, Parse

from gateway.core.types import Principal
from gateway.egress import EgressRefused, check
from gateway.store import StoreA2a, StoreError, TaskRow

logger = logging.getLogger(__name__)
TERMINAL = {
    TaskState.TASK_STATE_COMPLETED,
    TaskState.TASK_STATE_FAILED,
    TaskState.TASK_STATE_CANCELED,
    TaskState.TASK_STATE_REJECTED,
}
SETTLED = TERMINAL | {TaskState.TASK_STATE_INPUT_REQUIRED, TaskState.TASK_STATE_AUTH_REQUIRED}
PUSH_LOOKUP = 1.0  # seconds a task's push configs, once read for its notifications, are used again
ENDED = 1024  # ended tasks kept at hand (they never change again)
FRESH = 4096  # new task ids known for new until their first save
MAX_PUSH_CONFIGS = 10  # a task's push notification configs
WRITE_BEHIND = 0.25  # seconds a running task's state waits before it is written
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


def _row(task: Task, key: tuple[str, str, str]) -> TaskRow:
    tenant, agent, owner = key
    stamped = task.status.HasField("timestamp")
    return TaskRow(
        id=task.id,
        tenant=tenant,
        agent=agent,
        owner=owner,
        context_id=task.context_id,
        state=int(task.status.state),
        updated_ns=task.status.timestamp.ToNanoseconds() if stamped else 0,
        body=MessageToJson(task, indent=None),
    )


class StoredTasks(TaskStore):
    """A2A tasks in the store, written behind.

    The SDK saves a task at every event (a dozen for a short one), and reads it back as often;
    a write costs a millisecond or two. So each task's latest state is kept here until written,
    and written in the background, newest state first, one write in flight a task: a running
    state after ``WRITE_BEHIND`` (a short task is written once, when it ends), a settled one
    (ended, or waiting for input or authorization) at once. Reads of a task kept here are
    answered here; ended tasks stay at hand (``ENDED``: they never change). Other replicas see
    a running task up to ``WRITE_BEHIND`` late, and a settled one as soon as it is written.
    """

    def __init__(self, store: StoreA2a) -> None:
        self.store = store
        self.live: dict[str, tuple[tuple[str, str, str], Task]] = {}  # (scope, latest) until written
        self.queued: set[str] = set()  # running tasks whose latest state is not written yet
        self.locks: dict[str, asyncio.Lock] = {}
        self.writers: set[asyncio.Task[None]] = set()
        self.ended: dict[str, tuple[tuple[str, str, str], Task]] = {}  # recently ended here, newest last
        self.fresh: dict[str, None] = {}  # ids just made for new tasks: not in the store, nothing to read
        self.batches = _Batches(store)

    def new_id(self) -> str:
        """An id for a new task (``Fresh``): reads of it are answered here until it is saved."""
        made = str(uuid.uuid4())
        self.fresh[made] = None
        if len(self.fresh) > FRESH:
            del self.fresh[next(iter(self.fresh))]
        return made

    async def save(self, task: Task, context: ServerCallContext) -> None:
        key = scope(context)
        self.fresh.pop(task.id, None)
        kept = Task()
        kept.CopyFrom(task)
        self.live[task.id] = (key, kept)
        settled = task.status.state in SETTLED
        if settled and task.status.state in TERMINAL:
            self.ended[task.id] = (key, kept)
            if len(self.ended) > ENDED:
                del self.ended[next(iter(self.ended))]
        if task.id not in self.queued or settled:  # (a settled state does not wait)
            self.queued.add(task.id)
            lock = self.locks.setdefault(task.id, asyncio.Lock())
            writer = asyncio.get_running_loop().create_task(
                self._write(task.id, lock, 0 if settled else WRITE_BEHIND)
            )
            self.writers.add(writer)
            writer.add_done_callback(self.writers.discard)

    async def _write(self, task_id: str, lock: asyncio.Lock, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)  # (a short task has ended meanwhile: its end is its one write)
        async with lock:
            await self._flush(task_id)

    async def _flush(self, task_id: str) -> None:
        """Write the latest state of a task, if one waits (its lock held); a settled one is then
        no longer kept here (an ended one stays in ``ended``)."""
        latest = self.live.get(task_id)
        if task_id not in self.queued or latest is None:
            return
        self.queued.discard(task_id)
        try:
            await self.batches.save(_row(latest[1], latest[0]))
        except StoreError as exc:
            logger.warning("A2A task %s was not saved: %s", task_id, exc)
        if (
            task_id not in self.queued
            and self.live.get(task_id) is latest
            and latest[1].status.state in SETTLED
        ):
            del self.live[task_id]
            self.locks.pop(task_id, None)

    async def aclose(self) -> None:
        """Write what waits, then close the store's connection for tasks."""
        await self.drain()
        await self.store.aclose()

    async def drain(self) -> None:
        """Write what waits, now, and wait for the writes in flight (before a listing, and at
        shutdown): a task whose write had begun was no longer queued, and a listing made
        meanwhile missed it (the full suite saw ListTasks total 1 of 2 under load)."""
        for task_id, lock in list(self.locks.items()):
            async with lock:
                await self._flush(task_id)

    async def get(self, task_id: str, context: ServerCallContext) -> Task | None:
        key = scope(context)
        running = self.live.get(task_id) or self.ended.get(task_id)
        if running is not None:
            if running[0] != key:
                return None
            found = Task()
            found.CopyFrom(running[1])
            return found
        if task_id in self.fresh:
            return None
        tenant, agent, owner = key
        body = await self.store.get_task(tenant, agent, owner, task_id)
        return Parse(body, Task(), ignore_unknown_fields=True) if body is not None else None

    async def list(self, params: ListTasksRequest, context: ServerCallContext) -> ListTasksResponse:
        tenant, agent, owner = scope(context)
        await self.drain()
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
        await self.drain()
        self.live.pop(task_id, None)
        self.ended.pop(task_id, None)
        await self.store.delete_task(tenant, agent, owner, task_id)


class _Batches:
    """Task rows written together: the rows that come while a write is in flight go in the next
    one, in one transaction (many tasks ending at once cost one commit, not one each). A batch
    the store refuses whole is written again a row at a time, so a row that cannot be written
    fails alone, not the other callers' rows beside it."""

    def __init__(self, store: StoreA2a) -> None:
        self.store = store
        self.waiting: dict[str, tuple[TaskRow, list[asyncio.Future[None]]]] = {}
        self.writing: asyncio.Task[None] | None = None

    async def save(self, row: TaskRow) -> None:
        """Save ``row`` with the next batch. A row of the same task already waiting is replaced
        (a task's rows are made from its latest state, so the later one is as new or newer) and
        its waiter told with this one's.

        Raises:
            StoreError: the store did not take it, or it is another caller's task.
        """
        loop = asyncio.get_running_loop()
        saved: asyncio.Future[None] = loop.create_future()
        earlier = self.waiting.get(row.id)
        self.waiting[row.id] = (row, [*(earlier[1] if earlier is not None else []), saved])
        if self.writing is None:
            self.writing = loop.create_task(self._write())
        await saved

    async def _write(self) -> None:
        batch: dict[str, tuple[TaskRow, list[asyncio.Future[None]]]] = {}
        try:
            while self.waiting:
                batch, self.waiting = self.waiting, {}
                rows = [row for row, _ in batch.values()]
                outcome = await self._save(rows)
                if isinstance(outcome, StoreError) and len(rows) > 1:
                    outcomes = [await self._save([row]) for row in rows]
                else:
                    outcomes = [outcome] * len(rows)
                for (task_id, (_, waiters)), done in zip(batch.items(), outcomes, strict=True):
                    if isinstance(done, set) and task_id in done:
                        done = StoreError(f"A2A task {task_id!r} belongs to another caller or agent")
                    for saved in waiters:
                        if saved.done():
                            continue
                        if isinstance(done, StoreError):
                            saved.set_exception(done)
                        else:
                            saved.set_result(None)
        finally:
            self.writing = None
            for _, waiters in [*batch.values(), *self.waiting.values()]:
                for saved in waiters:
                    if not saved.done():  # (this writer was cancelled: the process is ending)
                        saved.cancel()

    async def _save(self, rows: list[TaskRow]) -> set[str] | StoreError:
        """The ids the store refused, or why it took none of ``rows``."""
        try:
            return set(await self.store.save_tasks(rows))
        except StoreError as exc:
            return exc
        except Exception as exc:  # noqa: BLE001 - a value the driver cannot bind fails its rows, not the writer
            return StoreError(f"A2A tasks could not be saved: {type(exc).__name__}: {exc}")


class Fresh(IDGenerator):
    """New task ids, made by ``tasks`` so that it knows them for new, and so that ``pushes``
    knows they have no push configs yet (one that comes with the message is set afterwards)."""

    def __init__(self, tasks: StoredTasks, pushes: StoredPushConfigs) -> None:
        self.tasks, self.pushes = tasks, pushes

    def generate(self, context: IDGeneratorContext) -> str:
        made = self.tasks.new_id()
        self.pushes.none_yet(made)
        return made


class StoredPushConfigs(PushNotificationConfigStore):
    """Push notification configs in the store, sealed. A task's configs are read again for its
    notifications at most every ``PUSH_LOOKUP`` seconds (every event of a task asks for them;
    a config made here counts at once, one made on another replica within that time)."""

    def __init__(self, store: StoreA2a, seal: Seal, unseal: Unseal) -> None:
        self.store, self.seal, self.unseal = store, seal, unseal
        self.recent: dict[str, tuple[float, list[TaskPushNotificationConfig]]] = {}
        self.registrants: dict[tuple[str, str], tuple[str, str]] = {}

    async def set_info(
        self, task_id: str, notification_config: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        tenant, _, owner = scope(context)
        config = normalize_push_notification_config(task_id, notification_config)
        known = self._opened(await self.store.get_push(task_id, tenant, owner))
        if len(known) >= MAX_PUSH_CONFIGS and config.id not in {c.id for c in known}:
            raise InvalidParamsError(
                message=f"a task has at most {MAX_PUSH_CONFIGS} push notification configs: delete one first"
            )
        doc: dict[str, object] = {
            "config": MessageToJson(config, indent=None),
            "tenant": tenant,
            "owner": owner,
            "exp": time.time() + PUSH_SECONDS,
        }
        await self.store.set_push(task_id, config.id, tenant, owner, self.seal(doc, PUSH_PURPOSE))
        self.recent.pop(task_id, None)
        return config

    async def get_info(self, task_id: str, context: ServerCallContext) -> list[TaskPushNotificationConfig]:
        tenant, _, owner = scope(context)
        return self._opened(await self.store.get_push(task_id, tenant, owner))

    async def get_info_for_dispatch(self, task_id: str) -> list[TaskPushNotificationConfig]:
        now = time.monotonic()
        known = self.recent.get(task_id)
        if known is not None and now - known[0] < PUSH_LOOKUP:
            return known[1]
        configs = self._opened(await self.store.get_push(task_id))
        self._remember(task_id, now, configs)
        return configs

    def none_yet(self, task_id: str) -> None:
        """A task made here just now: it has no configs to read (as if read now). A config set
        here counts at once; one set on another replica within ``PUSH_LOOKUP``, as for any read."""
        self._remember(task_id, time.monotonic(), [])

    def _remember(self, task_id: str, now: float, configs: list[TaskPushNotificationConfig]) -> None:
        if len(self.recent) > 4096:
            self.recent = {k: v for k, v in self.recent.items() if now - v[0] < PUSH_LOOKUP}
        self.recent[task_id] = (now, configs)

    async def delete_info(
        self, task_id: str, context: ServerCallContext, config_id: str | None = None
    ) -> None:
        tenant, _, owner = scope(context)
        await self.store.delete_push(task_id, tenant, owner, config_id)
        self.recent.pop(task_id, None)

    def _opened(self, sealed: Sequence[str]) -> list[TaskPushNotificationConfig]:
        configs = []
        for token in sealed:
            doc = self.unseal(str(token), PUSH_PURPOSE)
            if doc is not None and isinstance(doc.get("config"), str):
                config = Parse(str(doc["config"]), TaskPushNotificationConfig(), ignore_unknown_fields=True)
                configs.append(config)
                self.registrants[(config.task_id, config.id)] = (
                    str(doc.get("tenant")),
                    str(doc.get("owner")),
                )
                if len(self.registrants) > 4 * 4096:
                    del self.registrants[next(iter(self.registrants))]
        return configs

    def registrant(self, config: TaskPushNotificationConfig) -> tuple[str, str]:
        """(tenant, subject) of who made ``config`` (a config read for dispatch)."""
        return self.registrants.get((config.task_id, config.id), ("", ""))


def push_url_guard(allow: tuple[str, ...]) -> Callable[[str], object]:
    """The check of a webhook URL when a config is made: http(s), and an address the egress
    guard allows (never private, loopback, link-local or metadata unless the operator allows
    it); the sender's connections are checked again, on the address they go to."""

    async def guard(url: str) -> bool:
        if not url.startswith(("https://", "http://")):
            raise InvalidParamsError(message="a push notification URL must be http(s)")
        try:
            await anyio.to_thread.run_sync(check, url, list(allow))
        except (EgressRefused, ValueError):  # (what it resolved to is not said: no DNS oracle)
            raise InvalidParamsError(
                message="push notification URL refused: it must name a public host that resolves, over "
                "http(s) (private, loopback, link-local and metadata addresses are refused)"
            ) from None
        return True

    return guard
