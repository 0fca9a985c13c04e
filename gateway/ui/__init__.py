"""The gateway's own web pages: the trace viewer (``/ui/traces``)."""

from __future__ import annotations

from gateway.ui._traces import ui_routes

__all__ = ["ui_routes"]
