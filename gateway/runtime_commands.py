"""``switchboard runtime``: hosted agents (ADR 0039, 0041).

Deploys, versions and endpoints are files in the data directory: ``deploy``, ``list`` and
``endpoint`` act on them directly (a running ``serve`` sees the change on its next request).
Sessions live in a running ``serve``: ``sessions`` and ``kill`` ask its admin API (``--url``,
``--admin-key`` or ``SWITCHBOARD_ADMIN_KEY``).
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import anyio

from gateway.commands import fail, settings_of

VARIABLE = re.compile(r"([^=]+)=(.*)", re.DOTALL)


def add_parser(sub: argparse._SubParsersAction, data_dir: Callable[[argparse.ArgumentParser], None]) -> None:  # type: ignore[type-arg]
    rt = sub.add_parser("runtime", help="hosted agents: deploy, versions, endpoints, live sessions")
    actions = rt.add_subparsers(dest="action", required=True)

    def common(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument("--tenant", default="default", help="the tenant it belongs to")
        data_dir(parser)
        return parser

    deploy = common(actions.add_parser("deploy", help="deploy a folder as a new version"))
    deploy.add_argument(
        "directory",
        help="the agent's folder (its code and requirements.txt), or an image's root filesystem tarball",
    )
    deploy.add_argument("--name", required=True, help="the hosted agent's name")
    deploy.add_argument(
        "--entry", default="main.py", help="the file that starts the app (main.py); an image's: its command"
    )
    deploy.add_argument(
        "--protocol", default="HTTP", choices=["HTTP", "MCP", "A2A"], help="what the app serves (HTTP)"
    )
    deploy.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="a variable")
    deploy.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="NAME=PROVIDER",
        help="a variable holding the key of the tenant's API key credential provider PROVIDER",
    )
    deploy.add_argument("--description", default="", help="what this version is")

    common(actions.add_parser("list", help="the hosted agents, their versions and endpoints"))

    endpoint = common(actions.add_parser("endpoint", help="point an endpoint at a version (a canary too)"))
    endpoint.add_argument("runtime", help="the hosted agent")
    endpoint.add_argument("endpoint", help="the endpoint's name")
    endpoint.add_argument("--version", type=int, help="the version it points at (the latest if left out)")
    endpoint.add_argument("--canary", type=int, help="a second version for a share of new sessions")
    endpoint.add_argument("--weight", type=int, default=0, help="the canary's share, in percent")
    endpoint.add_argument("--description", help="what the endpoint is for")
    endpoint.add_argument("--delete", action="store_true", help="delete the endpoint instead")

    for name, text in (("sessions", "the live sessions of a running serve"), ("kill", "kill a live session")):
        remote = actions.add_parser(name, help=text)
        if name == "kill":
            remote.add_argument("session", help="the session's id")
        remote.add_argument("--url", default="http://127.0.0.1:8080", help="where serve runs")
        remote.add_argument("--admin-key", help="an admin key (default: SWITCHBOARD_ADMIN_KEY)")
    rt.set_defaults(func=cmd_runtime)


def _pairs(given: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in given:
        found = VARIABLE.fullmatch(item)
        if found is None:
            raise ValueError(f"{flag} {item!r}: give NAME=VALUE")
        out[found.group(1)] = found.group(2)
    return out


def cmd_runtime(args: argparse.Namespace) -> int:
    if args.action in ("sessions", "kill"):
        return _remote(args)
    from gateway.runtimes import Runtimes
    from runtime import DeployError, EndpointError, Settings

    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,63}", args.tenant) or args.tenant in (".", ".."):
        return fail(f"tenant name {args.tenant!r}: use 1-63 letters, digits, '_', '.' or '-'")
    deployments = Runtimes(settings_of(args)).deployments(args.tenant)
    if args.action == "deploy":
        try:
            settings = Settings(
                entry=args.entry,
                protocol=args.protocol,
                environment=_pairs(args.env, "--env"),
                secrets=_pairs(args.secret, "--secret"),
                description=args.description,
            )
            source = Path(args.directory)
            if source.is_file():  # (an image's root filesystem tarball: --entry is its command)
                if args.entry == "main.py":
                    return fail(
                        "switchboard: an image's version needs its command: --entry 'python3 /app/main.py'"
                    )
                version = anyio.run(lambda: deployments.deploy_image(args.name, source, settings))
            else:
                version = anyio.run(lambda: deployments.deploy(args.name, source, settings=settings))
        except (DeployError, ValueError) as exc:
            return fail(f"switchboard: the deploy was refused: {exc}")
        route = "invoke it at /runtimes/{}/invocations" if version.protocol == "HTTP" else "serve it as a {}"
        where = route.format(version.runtime if version.protocol == "HTTP" else "target of kind runtime")
        print(f"deployed {version.tag} ({version.protocol}, entry {version.entry}); {where}")
        return 0
    if args.action == "endpoint":
        numbers = [v.number for v in deployments.versions(args.runtime)]
        if not numbers:
            return fail(f"switchboard: no runtime {args.runtime!r} (tenant {args.tenant})")
        try:
            if args.delete:
                if not deployments.endpoints.delete(args.runtime, args.endpoint):
                    return fail(f"switchboard: runtime {args.runtime!r} has no endpoint {args.endpoint!r}")
                print(f"deleted endpoint {args.endpoint} of {args.runtime}")
                return 0
            made = deployments.endpoints.put(
                args.runtime,
                args.endpoint,
                numbers,
                version=args.version,
                canary=args.canary,
                weight=args.weight,
                description=args.description,
            )
        except EndpointError as exc:
            return fail(f"switchboard: {exc}")
        canary = f", version {made.canary} for {made.weight}% of new sessions" if made.canary else ""
        print(f"{args.runtime} endpoint {made.name}: version {made.version}{canary}")
        return 0
    for name in deployments.runtimes():
        listed = deployments.versions(name)
        for one in listed:
            print(f"{one.tag}  {one.protocol}  {one.entry}  {one.description}".rstrip())
        for e in deployments.endpoints.all(name):
            target = e.version or listed[-1].number
            canary = f" + {e.canary} ({e.weight}%)" if e.canary else ""
            print(f"  endpoint {e.name} -> {target}{canary}")
    return 0


def _remote(args: argparse.Namespace) -> int:
    import httpx2

    key = args.admin_key or os.environ.get("SWITCHBOARD_ADMIN_KEY")
    if not key:
        return fail("switchboard: give --admin-key or set SWITCHBOARD_ADMIN_KEY (serve printed it first)")
    url = args.url.rstrip("/") + "/admin/v1/runtime-sessions"
    headers = {"Authorization": f"Bearer {key}"}
    try:
        if args.action == "kill":
            answer = httpx2.delete(f"{url}/{quote(args.session, safe='')}", headers=headers, timeout=30)
        else:
            answer = httpx2.get(url, headers=headers, timeout=30)
    except httpx2.HTTPError as exc:
        return fail(f"switchboard: {args.url} did not answer: {exc}")
    if answer.status_code >= 400:
        said = answer.json().get("error") if "json" in answer.headers.get("content-type", "") else answer.text
        return fail(f"switchboard: {said}")
    if args.action == "kill":
        print(f"killed {args.session}")
        return 0
    print(f"{'session':<42} {'version':<20} {'age':>8} {'idle':>8} {'cpu':>8} {'memory':>10}")
    for s in answer.json()["sessions"]:
        times = f"{s['age_seconds']:>7.0f}s {s['idle_seconds']:>7.0f}s {s['cpu_seconds']:>7.2f}s"
        print(f"{s['id'][:42]:<42} {s['runtime_version']:<20} {times} {s['memory_bytes'] / 2**20:>8.1f}MiB")
    return 0
