"""The spans the gateway records: one small object each, gathered under the request's span.

A tools/call makes three spans or more (the request, the policy decision, the upstream
request). Recording each as an OpenTelemetry SDK span, handed to the processors as it
ends, cost more than routing the call: a span object with a dozen fields, the processor
hand-off and its lock, and the trace store holding each span until its parent ended, to
write the request as one row. Here a span is a ``Record``: an OpenTelemetry API span
(anything that takes the current span, such as the ``mcp`` SDK's client instrumentation,
takes it as it is) with its attributes in a plain dict. A record whose parent is in this
process joins its *root* (the request's record) when it ends; when the root ends, the
whole tree goes to the outlets at once: the trace store takes the tree as it is (one row
a request, built by its writer), and only when an exporter is configured are the records
turned into SDK spans (``readable``) for the SDK's processors. A record that ends after its
root has gone out (work the request left running) goes out on its own.
"""

from __future__ import annotations

import random
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace import Event, SpanLimits
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.util import types

from gateway.telemetry._capture import clip, masked, serialized

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

TENANT_ATTR = "switchboard.tenant"
# Records a root holds until it ends; past that (a request running for hours, say), each goes out on its own.
MAX_CHILDREN = 256
_PLAIN = frozenset({str, bool, int, float})
_UNSET = Status(StatusCode.UNSET)


def clean(value: Any) -> types.AnyValue:
    """An attribute value the exporters can encode: sequences become tuples of plain values,
    anything else its text (None stays None: not recorded)."""
    if value is None or type(value) in _PLAIN:
        return value  # type: ignore[no-any-return]
    if isinstance(value, (bool, int, float, str)):  # subclasses (enums, say)
        return value
    if isinstance(value, (list, tuple)):
        return tuple(v if type(v) in _PLAIN else str(v) for v in value)
    return str(value)


_NO_STATE = TraceState()


def local_context(trace_id: int, flags: TraceFlags, state: TraceState | None) -> SpanContext:
    """A new local span's context (a random span id, not zero), made as ``SpanContext`` makes
    it without the range checks: the trace id is a valid parent's or a new one."""
    span_id = random.getrandbits(64) or 1
    return tuple.__new__(SpanContext, (trace_id, span_id, False, flags, state or _NO_STATE, True))


class Outlet(Protocol):
    """Where finished records go (the tracer's provider): a root with what ended under it,
    or a record that ended after its root had gone."""

    def deliver(self, record: Record) -> None: ...


class Record(trace_api.Span):
    """One span, recorded cheaply (see the module's docstring).

    Not thread-safe as a whole, like the spans of one request: a span is written by the
    task that made it. Records of one root may end on several threads; joining the root is
    a list append.
    """

    __slots__ = (
        "attributes",
        "captures",
        "children",
        "context",
        "end_time",
        "events",
        "kind",
        "links",
        "name",
        "outlet",
        "owned",
        "parent",
        "record_exception_on_exit",
        "root",
        "scope",
        "start_time",
        "status",
        "status_on_exception",
        "tenant",
    )

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        root: Record | None,
        kind: SpanKind,
        attributes: dict[str, types.AnyValue],
        links: Sequence[Link],
        start_time: int,
        tenant: str | None,
        scope: InstrumentationScope,
        outlet: Outlet,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> None:
        self.name = name
        self.context = context
        self.parent = parent
        self.root = root  # None: this is a root (its parent, if any, is in another process)
        self.kind = kind
        self.attributes = attributes
        self.links = links
        self.start_time = start_time
        self.end_time: int | None = None
        self.status = _UNSET
        self.events: list[Event] | None = None
        self.children: list[Record] | None = [] if root is None else None
        self.captures: list[tuple[str, str, str, int, int]] | None = None
        self.tenant = tenant  # a root's: whose traces the tree belongs to (set_attribute may change it)
        # A root whose tenant was known when it started (an MCP request's): what runs under it
        # is that tenant's. Not so for one tagged later (an admin request, whose work may
        # touch every tenant): only its own row is filed under the tenant.
        self.owned = tenant is not None
        self.scope = scope
        self.outlet = outlet
        self.record_exception_on_exit = record_exception
        self.status_on_exception = set_status_on_exception

    def child(self, name: str, kind: SpanKind, attributes: dict[str, types.AnyValue]) -> Record:
        """A record under this one, made directly: the gateway's own spans inside a request
        (decisions, upstream requests). Under a recording parent the SDK's samplers all
        record the child too (the parent-based ones follow it; the others decide by trace
        id, as they did for the parent), so no sampler is asked. ``attributes`` are plain
        values (kept as given)."""
        ctx = self.context
        return Record(
            name,
            local_context(ctx.trace_id, ctx.trace_flags, ctx.trace_state),
            ctx,
            self.root or self,
            kind,
            attributes,
            (),
            time.time_ns(),
            None,
            self.scope,
            self.outlet,
        )

    def defer(self, key: str, tokens_key: str, value: Any, limit: int) -> None:
        """Record ``value`` under ``key`` as ``capture`` records it (and its size in tokens
        under ``tokens_key``): serialised now, masked when the record is written or
        exported (``settle``), off the call's path."""
        if self.end_time is None:
            if self.captures is None:
                self.captures = []
            self.captures.append((key, tokens_key, *clip(serialized(value), limit), limit))

    def settle(self) -> None:
        """Mask what ``defer`` held (once: the writer or the exporter, whichever comes first)."""
        captures, self.captures = self.captures, None
        for key, tokens_key, window, total, limit in captures or ():
            text, tokens = masked(window, total, limit)
            self.attributes[key] = text
            self.attributes[tokens_key] = tokens

    # -- the OpenTelemetry API ---------------------------------------------------------------

    def get_span_context(self) -> SpanContext:
        return self.context

    def is_recording(self) -> bool:
        return self.end_time is None

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        if self.end_time is None and value is not None:
            self.attributes[key] = value if type(value) in _PLAIN else clean(value)
            if key == TENANT_ATTR and self.root is None and isinstance(value, str):
                self.tenant = value

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        if self.end_time is None:
            mine = self.attributes
            for key, value in attributes.items():
                if value is not None:
                    mine[key] = value if type(value) in _PLAIN else clean(value)
            tenant = attributes.get(TENANT_ATTR)
            if self.root is None and isinstance(tenant, str):
                self.tenant = tenant

    def add_event(self, name: str, attributes: types.Attributes = None, timestamp: int | None = None) -> None:
        if self.end_time is not None:
            return
        if self.events is None:
            self.events = []
        cleaned = {k: clean(v) for k, v in (attributes or {}).items() if v is not None}
        self.events.append(Event(name, cleaned, timestamp if timestamp is not None else time.time_ns()))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if self.end_time is None and context.is_valid:
            self.links = [*self.links, Link(context, attributes)]

    def update_name(self, name: str) -> None:
        if self.end_time is None:
            self.name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self.end_time is not None or self.status.status_code is StatusCode.OK:
            return
        if isinstance(status, Status):
            if status.status_code is not StatusCode.UNSET:
                self.status = status
        elif status is not StatusCode.UNSET:
            self.status = Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """An ``exception`` event, as the SDK records it."""
        stacktrace = "".join(traceback.format_exception(type(exception), exception, exception.__traceback__))
        module, name = type(exception).__module__, type(exception).__qualname__
        described: dict[str, Any] = {
            "exception.type": f"{module}.{name}" if module and module != "builtins" else name,
            "exception.message": str(exception),
            "exception.stacktrace": stacktrace,
            "exception.escaped": str(escaped),
        }
        described.update(attributes or {})
        self.add_event("exception", described, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self.end_time is not None:
            return
        self.end_time = end_time if end_time is not None else time.time_ns()
        root = self.root
        if root is None:
            self.outlet.deliver(self)
            return
        children = root.children
        if root.end_time is None and children is not None and len(children) < MAX_CHILDREN:
            children.append(self)
        else:  # its root has gone out already (or holds as many as a row takes): on its own
            self.outlet.deliver(self)

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        """As the SDK's spans: a failure inside is recorded, then the span ends."""
        if exc_val is not None and self.is_recording():
            if self.record_exception_on_exit:
                self.record_exception(exc_val, escaped=True)
            if self.status_on_exception:
                self.set_status(Status(StatusCode.ERROR, f"{type(exc_val).__name__}: {exc_val}"))
        self.end()

    def __repr__(self) -> str:
        ctx = self.context
        return f"Record({self.name!r}, trace_id=0x{ctx.trace_id:032x}, span_id=0x{ctx.span_id:016x})"


class _Readable(SdkSpan):
    """A finished record as an SDK span (a ``ReadableSpan``), for the SDK's processors."""

    _limits = SpanLimits()
    _lock = threading.Lock()
    _instrumentation_info = None
    _record_end_metrics = None
    _sampler = None
    _trace_config = None

    def __init__(self, record: Record, resource: Resource, tenant: str | None) -> None:
        # Deliberately not SdkSpan.__init__: the fields are set as they are read.
        record.settle()
        attributes = record.attributes
        if tenant is not None and TENANT_ATTR not in attributes:
            attributes = {**attributes, TENANT_ATTR: tenant}
        self._name = record.name
        self._context = record.context
        self._parent = record.parent
        self._kind = record.kind
        self._attributes = attributes
        self._events = list(record.events or ())
        self._links = list(record.links)
        self._resource = resource
        self._instrumentation_scope = record.scope
        self._status = record.status
        self._start_time = record.start_time
        self._end_time = record.end_time
        self._record_exception = record.record_exception_on_exit
        self._set_status_on_exception = record.status_on_exception


def current_record() -> Record | None:
    """The current span when it is a record still recording (inside a traced request), else None."""
    span = otel_context.get_value(_SPAN_KEY)
    return span if type(span) is Record and span.end_time is None else None


def filed_under(record: Record) -> str | None:
    """The tenant whose traces a record belongs to: a root's own; for a record under a root,
    the root's when the root had it from its start (see ``Record.owned``), else no one's."""
    root = record.root
    if root is None:
        return record.tenant or None
    return (root.tenant or None) if root.owned else None


def readable(record: Record, resource: Resource) -> list[SdkSpan]:
    """A delivered record and the records under it as SDK spans, in the order they ended
    (each stamped with the tenant it is filed under, as the store files it)."""
    if record.root is None:
        under = (record.tenant or None) if record.owned else None
        return [
            *(_Readable(c, resource, under) for c in record.children or ()),
            _Readable(record, resource, filed_under(record)),
        ]
    return [_Readable(record, resource, filed_under(record))]
