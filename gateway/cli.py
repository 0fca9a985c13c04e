"""The ``switchboard`` command: its parser, ``serve`` (the other commands are in ``gateway.commands``).

Exit codes: 0 success, 1 the configuration (or a store) was refused, 2 usage.
Errors are one readable message each, never a traceback.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from pydantic import ValidationError

from gateway import __version__, runtime_commands
from gateway.commands import (
    DEFAULT_TENANT,
    check_file,
    cmd_apply,
    cmd_aws_keys,
    cmd_check,
    cmd_connectors,
    cmd_pins,
    cmd_schema,
    cmd_tenants,
    cmd_tools,
    cmd_vault,
    fail,
    settings_of,
)
from gateway.core.errors import ConfigError

if TYPE_CHECKING:
    from gateway.settings import Settings
    from gateway.store import StoreError
    from identity.vault import VaultError


def _gateway_url(base: str, name: str) -> str:
    return f"{base}/mcp" if name == "default" else f"{base}/gateways/{name}/mcp"


async def _preflight(
    settings: Settings, config: str | None, build: bool
) -> tuple[str | None, list[tuple[str, int]]]:
    """Everything start-up can refuse, checked before the server binds (clear errors, no tracebacks).

    Args:
        build: Build every gateway here (workers: the parent applies the file and counts the
            tools). A single process leaves that to its start-up, which checks the file in
            the hub it serves from (`_Refusals` words what it refuses), so nothing is built twice.

    Returns:
        The first admin key when this start made it (to print once), and the default
        tenant's gateways with their tool counts (when built).
    """
    from gateway.auth import open_vault
    from gateway.config import load_file, to_store
    from gateway.hub import Hub
    from gateway.store import Store
    from gateway.system import Switchboard
    from gateway.telemetry import wanted_exporters

    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if settings.tracing:
        wanted_exporters()  # OTEL_* named something this gateway cannot export to: refused here
    if settings.connectors_dir is not None:
        # The user's folder: a missing one is refused, and files that do not load are named now.
        # Ours are read when a connector target or command needs them (tests hold them valid).
        from gateway import connectors

        for issue in connectors.catalog(settings.connectors_dir).problems:
            print(f"switchboard: a connector was not loaded: {issue}", file=sys.stderr)
    if config is not None and not build:
        load_file(config)  # its syntax and fields, with file, line and field
    store = await Store.open(settings.resolved_database_url())
    try:
        # One hub checks the file and then serves the stored configuration: the file's targets,
        # open already, are taken over by the reload instead of being built a second time.
        async with Hub() as hub:
            if config is not None and build:
                doc = await check_file(config, hub)
                await store.apply(DEFAULT_TENANT, [to_store(g) for g in doc.gateways])
            await open_vault(settings, store)  # refuses to start without the vault's key
            system = Switchboard(settings, store, hub)
            if build:
                await system.reload()
            gateways = [(gw.name, len(gw.catalog.snapshot.tools)) for gw in hub.gateways(DEFAULT_TENANT)]
            return await system.ensure_admin_key(), gateways
    finally:
        await store.close()


class _Refusals:
    """The app, with what its start-up refuses (configuration, store, vault) kept for one
    clear message instead of the lifespan's traceback."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.refused: ConfigError | StoreError | VaultError | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def quiet(message: Any) -> None:
            # Sent while the lifespan handles what failed: a refusal is worded by cmd_serve once
            # the server has stopped; anything else keeps its traceback.
            failing = sys.exc_info()[1]
            if message["type"] == "lifespan.startup.failed" and failing and _refusal(failing):
                message = {**message, "message": ""}
            await send(message)

        try:
            await self.app(scope, receive, quiet)
        except BaseException as exc:
            refused = _refusal(exc)
            if refused is None:
                raise
            self.refused = refused


def _refusal(exc: BaseException) -> ConfigError | StoreError | VaultError | None:
    from gateway.store import StoreError
    from identity.vault import VaultError

    if isinstance(exc, ConfigError | StoreError | VaultError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        return next((r for e in exc.exceptions if (r := _refusal(e)) is not None), None)
    return None


def _refused(exc: BaseException) -> int:
    from identity.vault import VaultError

    if isinstance(exc, VaultError):
        return fail(f"switchboard: cannot start: {exc}")
    return fail(f"switchboard: cannot start; the configuration was refused:\n{exc}")


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.a2a import a2a_agents
    from gateway.app import close_listen_streams, create_app
    from gateway.serving import gateway_server, link_socket
    from gateway.store import StoreError
    from gateway.system import Switchboard
    from gateway.telemetry import log_config
    from gateway.workers import serve_workers
    from identity.vault import VaultError

    settings = settings_of(args)
    workers = args.workers if args.workers is not None else settings.workers
    if workers < 1:
        return fail(f"switchboard: --workers must be 1 or more, not {workers}")
    try:
        admin_key, gateways = anyio.run(_preflight, settings, args.config, workers > 1)
    except (ConfigError, StoreError, VaultError) as exc:
        return _refused(exc)
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: responses go out in several writes (headers, SSE
    # frames), and Nagle's algorithm against the client's delayed ACK would add ~40 ms to each.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        return fail(
            f"switchboard: cannot listen on {settings.host}:{settings.port}: {exc.strerror}; pick --port"
        )
    port = sock.getsockname()[1]
    settings = settings.model_copy(update={"port": port})  # (--port 0: the one the system chose)
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    base = settings.public_url or f"http://{host}:{port}"
    logs = log_config(settings.log_format, settings.log_level)

    def ready(counts: list[tuple[str, int]], agents: Sequence[tuple[str, str]] = ()) -> None:
        lines = [
            f"Switchboard {__version__} serving on {base}" + (f" ({workers} workers)" if workers > 1 else "")
        ]
        for name, tools in counts:
            lines.append(f"  MCP  {_gateway_url(base, name)}  ({tools} tools)")
        for gateway, agent in agents:
            where = "" if gateway == "default" else f"/gateways/{gateway}"
            lines.append(f"  A2A  {base}{where}/a2a/{agent}")
        if admin_key:
            lines.append(f"  admin key (shown once, stored hashed): {admin_key}")
        lines.append(f"  admin API  {base}/admin/v1  (OpenAPI: {base}/admin/openapi.json)")
        print("\n".join(lines), flush=True)

    if workers > 1:
        sock.listen(2048)
        ready(gateways)
        _collect_garbage()
        return serve_workers(settings, sock, workers, logs, base)

    def on_ready(system: Switchboard, _: str | None) -> None:
        _collect_garbage()
        served = system.hub.gateways(DEFAULT_TENANT)
        agents = [(gw.name, agent) for gw in served for agent in a2a_agents(gw.spec)]
        ready([(gw.name, len(gw.catalog.snapshot.tools)) for gw in served], agents)

    run_dir = Path(tempfile.mkdtemp(prefix="sb-serve-"))  # (0700: the gateway's alone)
    link = link_socket(run_dir)  # (hosted agents reach the gateway here: ADR 0040)
    settings = settings.model_copy(update={"runtime_gateway_socket": link.getsockname()})
    app = _Refusals(create_app(settings, config_path=args.config, on_ready=on_ready, base_url=base))
    server = gateway_server(app, settings, logs, close_listen_streams)
    sock.listen(2048)  # (the banner says "serving" from the lifespan, before uvicorn would listen)
    try:
        server.run(sockets=[sock, link])
    except (ConfigError, StoreError) as exc:
        return fail(f"switchboard: cannot start:\n{exc}")
    except SystemExit:  # uvicorn's way out of a failed start-up
        if app.refused is None:
            raise
    finally:
        link.close()
        shutil.rmtree(run_dir, ignore_errors=True)
    if app.refused is not None:
        return _refused(app.refused)
    return 0 if server.started else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="switchboard", description="Switchboard MCP gateway")
    p.add_argument("--version", action="version", version=f"switchboard {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def data_dir(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--data-dir", type=Path, help="where the embedded database and keys live (.switchboard)"
        )

    s = sub.add_parser("serve", help="serve the gateways")
    s.add_argument("--config", help="a switchboard.yaml to apply at start")
    s.add_argument("--host", help="address to listen on (127.0.0.1)")
    s.add_argument("--port", type=int, help="port to listen on (8080; 0 picks a free one)")
    s.add_argument(
        "--workers", type=int, help="worker processes sharing the port (1; about one per core scales)"
    )
    data_dir(s)
    s.set_defaults(func=cmd_serve)

    c = sub.add_parser("check", help="validate a config file without serving")
    c.add_argument("file")
    c.set_defaults(func=cmd_check)

    a = sub.add_parser("apply", help="make the stored configuration match a file")
    a.add_argument("-f", "--file", required=True)
    a.add_argument("--prune", action="store_true", help="also delete gateways the file does not list")
    a.add_argument(
        "--tenant",
        help="apply into this tenant's configuration (the operator's file may use every capability; "
        "the tenant's admins may keep but not add host-level ones)",
    )
    data_dir(a)
    a.set_defaults(func=cmd_apply)

    t = sub.add_parser("tools", help="print the resolved catalog")
    t.add_argument("--config", help="a switchboard.yaml (default: the stored configuration)")
    t.add_argument("--gateway", help="only this gateway")
    t.add_argument("--json", action="store_true", help="print MCP Tool objects")
    data_dir(t)
    t.set_defaults(func=cmd_tools)

    pn = sub.add_parser("pins", help="review (and approve) a federated target's tool definitions")
    pn.add_argument("gateway")
    pn.add_argument("target")
    pn.add_argument(
        "--approve",
        nargs="*",
        metavar="TOOL",
        help="approve these tools' current definitions (none named: every new or changed one)",
    )
    pn.add_argument("--json", action="store_true")
    data_dir(pn)
    pn.set_defaults(func=cmd_pins)

    v = sub.add_parser("vault", help="rotate the vault's master key, or read its audit log")
    v.add_argument("action", choices=["rotate", "audit"])
    v.add_argument("--limit", type=int, default=100, help="audit: how many records (newest)")
    data_dir(v)
    v.set_defaults(func=cmd_vault)

    tn = sub.add_parser("tenants", help="create a tenant (prints its first admin key)")
    tn.add_argument("action", choices=["create"])
    tn.add_argument("name")
    data_dir(tn)
    tn.set_defaults(func=cmd_tenants)

    ak = sub.add_parser(
        "aws-keys", help="access keys for AgentCore's clients (boto3, the bedrock-agentcore SDK)"
    )
    ak.add_argument("action", choices=["create", "list", "revoke"])
    ak.add_argument("key", nargs="?", help="revoke: the access key id")
    ak.add_argument("--tenant", default="default", help="the tenant the key acts for")
    ak.add_argument("--subject", help="create: who the key stands for (default: agentcore)")
    ak.add_argument(
        "--planes",
        default="control,data",
        help="create: control (administer the tenant), data (act as the subject), or both (the default)",
    )
    data_dir(ak)
    ak.set_defaults(func=cmd_aws_keys)

    runtime_commands.add_parser(sub, data_dir)

    sc = sub.add_parser("schema", help="print the JSON Schema of switchboard.yaml (or of a connector)")
    sc.add_argument("--connector", action="store_true", help="the schema of connector files instead")
    sc.set_defaults(func=cmd_schema)

    cn = sub.add_parser("connectors", help="list, show or enable packaged SaaS connectors")
    cs = cn.add_subparsers(dest="action", required=True)
    cl = cs.add_parser("list", help="the catalog (ours and SWITCHBOARD_CONNECTORS_DIR's)")
    cl.add_argument("--json", action="store_true")
    cw = cs.add_parser("show", help="one connector: its tools, scopes and problems")
    cw.add_argument("name")
    cw.add_argument("--json", action="store_true")
    ce = cs.add_parser("enable", help="add a connector to a gateway (a target and its credential provider)")
    ce.add_argument("name")
    ce.add_argument("--gateway", default="default")
    ce.add_argument("--target", help="the target's name (default: the connector's)")
    ce.add_argument("--client-id", help="the OAuth app registered with the platform")
    ce.add_argument("--client-secret-env", help="environment variable of serve holding the app's secret")
    ce.add_argument("--client-secret-file", help="file holding the app's secret")
    ce.add_argument("--api-key-env", help="a static token instead of OAuth: its environment variable")
    ce.add_argument("--api-key-file", help="a static token instead of OAuth: its file")
    ce.add_argument("--authorize-url", help="override the preset's authorization endpoint")
    ce.add_argument("--token-url", help="override the preset's token endpoint")
    ce.add_argument("--base-url", help="override the API's base URL")
    ce.add_argument("--var", action="append", metavar="NAME=VALUE", help="a server variable (repeatable)")
    ce.add_argument("--tools", nargs="+", metavar="TOOL", help="only these tools")
    data_dir(ce)
    cn.set_defaults(func=cmd_connectors)
    return p


def _collect_garbage() -> None:
    """Start collecting cyclic garbage again (see `main`), after moving what start-up made and
    keeps (modules, classes, schemas, catalogs) to the permanent generation: full collections
    while serving do not walk it again."""
    gc.freeze()
    gc.enable()


def main(argv: Sequence[str] | None = None) -> int:
    # Start-up allocates a great many objects that live as long as the process (modules,
    # classes, pydantic schemas, compiled documents and catalogs) and little cyclic garbage:
    # the collector's passes over them were about an eighth of importing the app. `serve`
    # collects again once it is ready (`_collect_garbage`); the other commands run to their end.
    collecting = gc.isenabled()
    gc.disable()
    try:
        # Function targets name modules of the user's project, as `uvicorn app:app` does.
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        args = parser().parse_args(argv)
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        try:
            result: int = args.func(args)
        except ValidationError as exc:  # a SWITCHBOARD_* setting the process cannot use
            if exc.title != "Settings":
                raise
            for error in exc.errors(include_url=False):
                name = "SWITCHBOARD_" + "_".join(str(part) for part in error["loc"][:1]).upper()
                print(f"{name}: {error['msg']}", file=sys.stderr)
            return 2
        return result
    finally:
        if collecting:  # called in-process (not as the command): leave the collector as it was
            gc.enable()


if __name__ == "__main__":
    sys.exit(main())
