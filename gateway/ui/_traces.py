"""The trace viewer: a tenant's agent sessions, one session's steps as a timeline, search.

Server-rendered HTML (Jinja2, autoescaped), no scripts, no build step. Signing in takes a
tenant admin key (the one ``serve`` prints at first start, or ``switchboard tenants
create`` makes); it is kept in an HttpOnly, SameSite=Strict cookie scoped to ``/ui`` and
checked on every page, so a page only ever shows the key's tenant. ``Authorization:
Bearer`` works too (for curl).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.store import SessionFilter, StoreTraces

if TYPE_CHECKING:
    from jinja2 import Environment

COOKIE = "sb_ui"
LOGIN_BODY_LIMIT = 4096  # a form with one key in it
_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


@functools.cache
def _templates() -> Environment:
    """The pages' templates, set up when the first page is asked for (not at start-up)."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    return Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def ui_routes(system: Callable[[], Any], traces: Callable[[], StoreTraces]) -> list[BaseRoute]:
    """The viewer's routes; ``system`` and ``traces`` are read per request (they open later)."""

    async def tenant_of(request: Request) -> str | None:
        authorization = request.headers.get("authorization")
        if not authorization and request.cookies.get(COOKIE):
            authorization = f"Bearer {request.cookies[COOKIE]}"
        tenant: str | None = await system().admin_tenant(authorization)
        return tenant

    async def sessions(request: Request) -> Response:
        tenant = await tenant_of(request)
        if tenant is None:
            return _render("login.html", 401, error=None)
        q = request.query_params
        problems: list[str] = []
        where = SessionFilter(
            tool=q.get("tool") or None,
            subject=q.get("principal") or None,
            errors_only=q.get("errors") == "1",
            since_ns=_time(q.get("since"), "since", problems),
            until_ns=_time(q.get("until"), "until", problems),
        )
        found = await traces().sessions(tenant, where) if not problems else []
        rows = [
            {
                **s,
                "started": _clock(s["start_ns"]),
                "duration": _ms(s["end_ns"] - s["start_ns"]),
            }
            for s in found
        ]
        return _render(
            "sessions.html", 400 if problems else 200, tenant=tenant, q=q, rows=rows, problems=problems
        )

    async def session(request: Request) -> Response:
        tenant = await tenant_of(request)
        if tenant is None:
            return _render("login.html", 401, error=None)
        name = request.path_params["session"]
        spans = await traces().session(tenant, name)
        steps = _steps(spans, name)
        if not steps:
            return _render("missing.html", 404, tenant=tenant, session=name)
        return _render("session.html", 200, tenant=tenant, session=name, **steps)

    async def login(request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > LOGIN_BODY_LIMIT:
                return _render("login.html", 413, error="That is not an admin key of this gateway.")
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=4)
        key = (fields.get("key") or [""])[0].strip()
        if not key or await system().admin_tenant(f"Bearer {key}") is None:
            return _render("login.html", 401, error="That is not an admin key of this gateway.")
        response = RedirectResponse("/ui/traces", 303)
        public = getattr(getattr(system(), "settings", None), "public_url", None) or ""
        secure = request.url.scheme == "https" or public.startswith("https:")  # (TLS ended by a proxy)
        response.set_cookie(COOKIE, key, httponly=True, samesite="strict", path="/ui", secure=secure)
        return response

    async def logout(request: Request) -> Response:
        response = RedirectResponse("/ui/traces", 303)
        response.delete_cookie(COOKIE, path="/ui")
        return response

    return [
        Route("/ui/traces", endpoint=sessions, methods=["GET"]),
        Route("/ui/traces/sessions/{session}", endpoint=session, methods=["GET"]),
        Route("/ui/login", endpoint=login, methods=["POST"]),
        Route("/ui/logout", endpoint=logout, methods=["POST"]),
    ]


def _render(template: str, status: int, **values: Any) -> HTMLResponse:
    body = _templates().get_template(template).render(**values)
    return HTMLResponse(
        body,
        status,
        headers={
            "Content-Security-Policy": _CSP,
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
        },
    )


def _time(value: str | None, field: str, problems: list[str]) -> int | None:
    """A search bound (``YYYY-MM-DDTHH:MM``, UTC, as an <input type=datetime-local> sends)."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        if not 1970 <= moment.year <= 2200:
            raise ValueError(value)
        return int(moment.timestamp() * 1e9)
    except (ValueError, OverflowError):
        problems.append(f"{field}: {value!r} is not a time this viewer knows; use YYYY-MM-DDTHH:MM (UTC)")
        return None


def _clock(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _ms(ns: int) -> str:
    return f"{ns / 1e6:,.1f} ms"


def _pretty(text: Any) -> str | None:
    if text is None:
        return None
    try:
        return orjson.dumps(orjson.loads(text), option=orjson.OPT_INDENT_2).decode()
    except (orjson.JSONDecodeError, TypeError):
        return str(text)


def _steps(spans: list[dict[str, Any]], session: str) -> dict[str, Any]:
    """A session's MCP requests in order, each with what ran under it."""
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in spans:
        children.setdefault(span["parent_id"], []).append(span)

    def under(span_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        waiting = list(reversed(children.get(span_id, [])))
        seen = {span_id}
        while waiting:  # (not recursive: a chain of parent ids can be as deep as a client makes it)
            child = waiting.pop()
            if child["span_id"] in seen:
                continue
            seen.add(child["span_id"])
            found.append(child)
            waiting += reversed(children.get(child["span_id"], []))
        return found

    steps = [s for s in spans if s["session"] == session]
    if not steps:
        return {}
    start = min(s["start_ns"] for s in steps)
    end = max(s["end_ns"] for s in steps)
    total = max(end - start, 1)
    shown = []
    for number, step in enumerate(steps, 1):
        attrs = step["attributes"]
        inner = under(step["span_id"])
        shown.append(
            {
                "number": number,
                "id": step["span_id"],
                "name": step["name"],
                "trace_id": step["trace_id"],
                "at": _ms(step["start_ns"] - start),
                "duration": _ms(step["end_ns"] - step["start_ns"]),
                "offset": f"{100 * (step['start_ns'] - start) / total:.2f}",
                "width": f"{max(0.5, 100 * (step['end_ns'] - step['start_ns']) / total):.2f}",
                "error": step["error"],
                "status": step["status_message"],
                "outcome": attrs.get("switchboard.outcome") or ("error" if step["error"] else "ok"),
                "subject": step["subject"],
                "target": attrs.get("switchboard.target"),
                "inputs": _pretty(attrs.get("gen_ai.tool.call.arguments")),
                "outputs": _pretty(attrs.get("gen_ai.tool.call.result")),
                "tokens_in": attrs.get("switchboard.tool.input_tokens_estimate"),
                "tokens_out": attrs.get("switchboard.tool.output_tokens_estimate"),
                "decisions": [
                    {
                        "stage": c["attributes"].get("switchboard.stage"),
                        "decision": c["attributes"].get("switchboard.decision"),
                        "duration": _ms(c["end_ns"] - c["start_ns"]),
                        "error": c["status_message"],
                    }
                    for c in inner
                    if "switchboard.stage" in c["attributes"]
                ],
                "calls": [
                    {
                        "name": c["name"],
                        "kind": c["kind"],
                        "url": c["attributes"].get("url.full") or c["attributes"].get("mcp.method.name"),
                        "status": c["attributes"].get("http.response.status_code")
                        or c["attributes"].get("error.type")
                        or "",
                        "duration": _ms(c["end_ns"] - c["start_ns"]),
                        "error": c["error"],
                    }
                    for c in inner
                    if c["kind"] == "client"
                ],
                "attributes": sorted(
                    (k, v)
                    for k, v in attrs.items()
                    if k not in ("gen_ai.tool.call.arguments", "gen_ai.tool.call.result")
                ),
            }
        )
    return {
        "steps": shown,
        "started": _clock(start),
        "duration": _ms(end - start),
        "errors": sum(1 for s in steps if s["error"]),
        "subject": next((s["subject"] for s in steps if s["subject"]), None),
        "scale": [f"{math.floor(total * i / 4 / 1e6):,} ms" for i in range(5)],
    }
