"""Observability: OpenTelemetry traces (exported over OTLP and kept in the gateway's own
database), Prometheus metrics and JSON logs carrying trace ids.

``Telemetry`` is one running app's share of it, opened and closed by the app's lifespan;
the rest are the seams the front, the pipeline and the providers call.
"""

from __future__ import annotations

from gateway.telemetry._calls import DECISIONS, GatewayTelemetry, decided
from gateway.telemetry._capture import capture
from gateway.telemetry._http import trace_headers, upstream_request, upstream_url
from gateway.telemetry._logs import JsonFormatter, log_config
from gateway.telemetry._metrics import Health, Metrics
from gateway.telemetry._record import TENANT_ATTR, Record
from gateway.telemetry._setup import Telemetry
from gateway.telemetry._sink import TraceSink, span_row
from gateway.telemetry._spans import HttpSpans, fail, mcp_span, tag_tenant, tool_failed, tool_span
from gateway.telemetry._tracing import enabled, exporters_from_env, wanted_exporters

__all__ = [
    "DECISIONS",
    "TENANT_ATTR",
    "GatewayTelemetry",
    "Health",
    "HttpSpans",
    "JsonFormatter",
    "Metrics",
    "Record",
    "Telemetry",
    "TraceSink",
    "capture",
    "decided",
    "enabled",
    "exporters_from_env",
    "fail",
    "log_config",
    "mcp_span",
    "span_row",
    "tag_tenant",
    "tool_failed",
    "tool_span",
    "trace_headers",
    "upstream_request",
    "upstream_url",
    "wanted_exporters",
]
