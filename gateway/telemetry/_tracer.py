"""The tracer the gateway installs: the SDK's spans, made without the SDK's per-span costs.

A tools/call makes three spans or more (the request, the policy decision, the upstream
request), and the SDK's ``Tracer`` spends more on each than the gateway spends routing the
call: a lock, ``BoundedAttributes`` checking every attribute as it is set, bounded lists,
the sampler's result objects, and at ``end`` a second object (the ``ReadableSpan`` copy)
for the processors. Under load that was most of the gap between tracing on and off.

``LeanSpan`` *is* an SDK span (a subclass of ``opentelemetry.sdk.trace.Span``, so a
``ReadableSpan``: the SDK's processors and the OTLP and console exporters take it as
they are), built directly: attributes in a plain dict, where a value of a plain type
(str, bool, int, float) is stored as given and anything else is cleaned the SDK's way;
no lock (a span is written by the task that made it); and at ``end`` the span itself
goes to the processors, since nothing changes it afterwards (setting an attribute or a
status on an ended span does nothing, as in the SDK). Sampling follows the SDK's sampler
from ``OTEL_TRACES_SAMPLER``; the default (parent-based, always on) is decided inline.
The tracer also stamps each span with the tenant the context carries.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider, sampling
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.util import types
from opentelemetry.util._decorator import _agnosticcontextmanager

_PLAIN = frozenset({str, bool, int, float})
_UNSET = Status(StatusCode.UNSET)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_SAMPLED_RANDOM = TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)
_NO_STATE = TraceState()


def _clean(value: Any) -> types.AnyValue:
    """An attribute value the exporters can encode: sequences become tuples of plain values,
    anything else its text (None stays None: not recorded)."""
    if value is None or type(value) in _PLAIN:
        return value  # type: ignore[no-any-return]
    if isinstance(value, (bool, int, float, str)):  # subclasses (enums, say)
        return value
    if isinstance(value, (list, tuple)):
        return tuple(v if type(v) in _PLAIN else str(v) for v in value)
    return str(value)


def new_trace_id() -> int:
    """A trace id for a trace the gateway starts: the time in milliseconds in its first six
    bytes, ten random bytes after it.

    Trace ids key the trace store's indexes (``sb_spans_trace``, and ``sb_spans_session``
    for stateless clients, whose session is their trace id). Random keys scatter each
    batch's index entries over the whole index, a page written per row once it outgrows the
    cache; keys that grow with time append. W3C Trace Context (level 2) asks for the
    rightmost seven bytes to be random when the random flag is set, and the SDK's ratio
    sampler reads the low eight bytes: both are. (AWS X-Ray's trace ids start with the time
    too.)
    """
    return (time.time_ns() // 1_000_000) << 80 | random.getrandbits(80)


def _span_context(trace_id: int, span_id: int, flags: TraceFlags, state: TraceState | None) -> SpanContext:
    """A local span's context, made as ``SpanContext`` makes it without the range checks: the
    trace id is a valid parent's or ``new_trace_id``'s, the span id 64 random bits, not zero."""
    return tuple.__new__(SpanContext, (trace_id, span_id, False, flags, state or _NO_STATE, True))


class LeanSpan(SdkSpan):
    """An SDK span without the per-attribute checks, the lock and the copy at ``end``."""

    # What the inherited, rarely used methods (events, links, exceptions) read.
    _limits = SpanLimits()
    _lock = threading.Lock()
    _instrumentation_info = None
    _record_end_metrics = None
    _sampler = None
    _trace_config = None

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, types.AnyValue],
        links: Sequence[Link],
        resource: Resource,
        scope: InstrumentationScope,
        processor: SpanProcessor,
        start_time: int,
        record_exception: bool,
        set_status_on_exception: bool,
    ) -> None:
        # Deliberately not SdkSpan.__init__: the fields are set as they are read.
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._attributes = attributes
        self._events = []
        self._links = list(links) if links else []
        self._resource = resource
        self._instrumentation_scope = scope
        self._span_processor = processor
        self._status = _UNSET
        self._start_time = start_time
        self._end_time = None
        self._record_exception = record_exception
        self._set_status_on_exception = set_status_on_exception

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        if self._end_time is None and value is not None:
            self._attributes[key] = value if type(value) in _PLAIN else _clean(value)  # type: ignore[index]

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        if self._end_time is None:
            mine = self._attributes
            for key, value in attributes.items():
                if value is not None:
                    mine[key] = value if type(value) in _PLAIN else _clean(value)  # type: ignore[index]

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, Status):
            if status.status_code is not StatusCode.UNSET:
                self._status = status
        elif status is not StatusCode.UNSET:
            self._status = Status(status, description)

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            return
        self._end_time = end_time if end_time is not None else time.time_ns()
        self._span_processor.on_end(self)


class LeanTracer(trace_api.Tracer):
    """Makes ``LeanSpan``s; the sampler is the provider's (the SDK's, from the environment)."""

    def __init__(
        self,
        sampler: sampling.Sampler,
        resource: Resource,
        processor: SpanProcessor,
        scope: InstrumentationScope,
        tenant_key: str,
        tenant_attr: str,
    ) -> None:
        self.sampler = sampler
        self.resource = resource
        self.processor = processor
        self.scope = scope
        self.tenant_key = tenant_key
        self.tenant_attr = tenant_attr
        # ParentBased(ALWAYS_ON), the default: sampled unless the parent says not.
        self.inline = sampler is sampling.DEFAULT_ON

    def _set_resource(self, resource: Resource) -> None:
        """The provider's resource after a fork (the SDK provider calls this)."""
        self.resource = resource

    def start_span(
        self,
        name: str,
        context: otel_context.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace_api.Span:
        if context is None:
            context = otel_context.get_current()  # once: the parent and the tenant are both in it
        current = context.get(_SPAN_KEY)
        parent: SpanContext | None = (
            current.get_span_context() if isinstance(current, trace_api.Span) else None
        )
        if parent is not None and not parent.is_valid:
            parent = None
        if parent is None:
            trace_id = new_trace_id()
            flags = _SAMPLED_RANDOM
        else:
            trace_id = parent.trace_id
            flags = _SAMPLED_RANDOM if parent.trace_flags.random_trace_id else _SAMPLED
        trace_state = parent.trace_state if parent is not None else None
        recorded: dict[str, types.AnyValue] = {}
        if self.inline:
            if parent is not None and not parent.trace_flags.sampled:
                unsampled = SpanContext(trace_id, random.getrandbits(64) or 1, False, TraceFlags(flags & ~1))
                return trace_api.NonRecordingSpan(unsampled)
        else:
            result = self.sampler.should_sample(context, trace_id, name, kind, attributes, links)
            trace_state = result.trace_state
            if result.decision is not sampling.Decision.RECORD_AND_SAMPLE:
                flags = TraceFlags(flags & ~TraceFlags.SAMPLED)
            if result.decision is sampling.Decision.DROP:
                return trace_api.NonRecordingSpan(
                    SpanContext(trace_id, random.getrandbits(64) or 1, False, flags, trace_state)
                )
            if result.attributes:
                recorded.update({k: _clean(v) for k, v in result.attributes.items()})
        if attributes:
            recorded.update(
                {k: v if type(v) in _PLAIN else _clean(v) for k, v in attributes.items() if v is not None}
            )
        if self.tenant_attr not in recorded:
            tenant = context.get(self.tenant_key)
            if isinstance(tenant, str):
                recorded[self.tenant_attr] = tenant
        span = LeanSpan(
            name,
            _span_context(trace_id, random.getrandbits(64) or 1, flags, trace_state),
            parent,
            kind,
            recorded,
            links or (),
            self.resource,
            self.scope,
            self.processor,
            start_time if start_time is not None else time.time_ns(),
            record_exception,
            set_status_on_exception,
        )
        self.processor.on_start(span, context)
        return span

    @_agnosticcontextmanager  # as the SDK's tracer: usable as a decorator of coroutines too
    def start_as_current_span(
        self,
        name: str,
        context: otel_context.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace_api.Span]:
        span = self.start_span(
            name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception
        )
        with trace_api.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            yield current


class LeanTracerProvider(TracerProvider):
    """The SDK's provider (resource, sampler from the environment, shutdown at exit) whose
    tracers are ``LeanTracer``s handing every span to one ``processor``."""

    def __init__(
        self, resource: Resource, processor: SpanProcessor, tenant_key: str, tenant_attr: str
    ) -> None:
        super().__init__(resource=resource)
        self.add_span_processor(processor)  # shut down with the provider
        self.processor = processor
        self.tenant_key = tenant_key
        self.tenant_attr = tenant_attr
        self._lean: dict[InstrumentationScope, LeanTracer] = {}

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: types.Attributes = None,
    ) -> trace_api.Tracer:
        if self._disabled:  # OTEL_SDK_DISABLED=true
            return trace_api.NoOpTracer()
        scope = InstrumentationScope(
            instrumenting_module_name or "", instrumenting_library_version or "", schema_url, attributes
        )
        with self._tracers_lock:
            tracer = self._lean.get(scope)
            if tracer is None:
                tracer = self._lean[scope] = LeanTracer(
                    self.sampler, self.resource, self.processor, scope, self.tenant_key, self.tenant_attr
                )
                self._tracers[scope] = tracer  # type: ignore[assignment]  # the resource after a fork
            return tracer
