"""The tracer the gateway installs: spans recorded as ``Record``s (see ``_record``).

The SDK's ``Tracer`` spends more on each span than the gateway spends routing a call (a
lock, ``BoundedAttributes`` checking every attribute as it is set, the sampler's result
objects, a ``ReadableSpan`` copy at ``end``, a processor hand-off per span). This tracer
makes ``Record``s directly and hands each finished request's tree to the provider's
``Outlets`` at once. Sampling follows the SDK's sampler from ``OTEL_TRACES_SAMPLER``; the
default (parent-based, always on) is decided inline. A request's span names its tenant in
its attributes (``switchboard.tenant``); the spans under it are filed with it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from typing import Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider, sampling
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.util import types
from opentelemetry.util._decorator import _agnosticcontextmanager

from gateway.telemetry._record import _PLAIN, TENANT_ATTR, Record, clean, local_context
from gateway.telemetry._record import Outlet as _Deliver

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_SAMPLED_RANDOM = TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)


class Outlet(_Deliver, Protocol):
    """The provider's outlet: also shut down with it (exporters flush)."""

    def shutdown(self) -> None: ...

    def force_flush(self, timeout_millis: int = 30_000) -> bool: ...


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


class LeanTracer(trace_api.Tracer):
    """Makes ``Record``s; the sampler is the provider's (the SDK's, from the environment)."""

    def __init__(
        self,
        sampler: sampling.Sampler,
        outlet: Outlet,
        scope: InstrumentationScope,
    ) -> None:
        self.sampler = sampler
        self.outlet = outlet
        self.scope = scope
        # ParentBased(ALWAYS_ON), the default: sampled unless the parent says not.
        self.inline = sampler is sampling.DEFAULT_ON

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
        root: Record | None = None
        parent: SpanContext | None
        if type(current) is Record:  # a local parent: the new record joins its root
            parent = current.context
            root = current.root or current
        elif isinstance(current, trace_api.Span):
            parent = current.get_span_context()
            if not parent.is_valid:
                parent = None
        else:
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
                recorded.update({k: clean(v) for k, v in result.attributes.items()})
        if attributes:
            recorded.update(
                {k: v if type(v) in _PLAIN else clean(v) for k, v in attributes.items() if v is not None}
            )
        given = recorded.get(TENANT_ATTR) if root is None else None
        return Record(
            name,
            local_context(trace_id, flags, trace_state),
            parent,
            root,
            kind,
            recorded,
            links or (),
            start_time if start_time is not None else time.time_ns(),
            given if isinstance(given, str) and given else None,
            self.scope,
            self.outlet,
            record_exception,
            set_status_on_exception,
        )

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
    tracers are ``LeanTracer``s delivering every finished tree of records to ``outlet``."""

    def __init__(self, resource: Resource, outlet: Outlet) -> None:
        super().__init__(resource=resource)
        self.outlet = outlet
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
                tracer = self._lean[scope] = LeanTracer(self.sampler, self.outlet, scope)
            return tracer

    def shutdown(self) -> None:
        super().shutdown()
        self.outlet.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return super().force_flush(timeout_millis) and self.outlet.force_flush(timeout_millis)
