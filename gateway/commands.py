"""The ``switchboard`` commands that act on a configuration file or the store (check, apply,
tools, pins, vault, tenants, schema, connectors), and what every command shares; ``serve``
and the parser are in ``gateway.cli``."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from gateway.core.errors import ConfigError

if TYPE_CHECKING:
    from gateway.config import Document, SecretRef
    from gateway.hub import Hub
    from gateway.settings import Settings

# Each command imports what it uses when it runs (`--help` and `check` do not pay for the
# store, the MCP SDK or the server); DEFAULT_TENANT is gateway.system's, spelled here for that.
DEFAULT_TENANT = "default"


def settings_of(args: argparse.Namespace) -> Settings:
    from gateway.settings import Settings

    overrides: dict[str, Any] = {}
    for field in ("host", "port", "data_dir"):
        value = getattr(args, field, None)
        if value is not None:
            overrides[field] = value
    return Settings(**overrides)


def fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1


async def check_file(path: str, hub: Hub | None = None) -> Document:
    from gateway.config import load_file
    from gateway.system import compile_check

    doc = load_file(path)
    warnings = await compile_check(DEFAULT_TENANT, list(doc.gateways), hub, path)
    for warning in warnings:
        print(f"{path}: warning: {warning}", file=sys.stderr)
    return doc


def cmd_check(args: argparse.Namespace) -> int:
    try:
        doc = anyio.run(check_file, args.file)
    except ConfigError as exc:
        return fail(str(exc))
    names = ", ".join(g.name for g in doc.gateways) or "none"
    print(f"{args.file}: OK ({len(doc.gateways)} gateways: {names})")
    return 0


async def _apply(args: argparse.Namespace) -> int:
    from gateway.config import to_store
    from gateway.store import Store

    doc = await check_file(args.file)
    settings = settings_of(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    store = await Store.open(settings.resolved_database_url())
    try:
        tenant = args.tenant or DEFAULT_TENANT
        if tenant != DEFAULT_TENANT and tenant not in await store.list_tenants():
            raise ConfigError(
                f"no tenant {tenant!r}: make it first with `switchboard tenants create {tenant}`"
            )
        if doc.runtimes and tenant != DEFAULT_TENANT:
            raise ConfigError(
                "runtimes: a file's runtimes are the operator's (its folders are read on the host); a "
                "tenant deploys through the admin API (POST /admin/v1/runtimes/NAME/versions)"
            )
        changes = await store.apply(tenant, [to_store(g) for g in doc.gateways], prune=args.prune)
    finally:
        await store.close()
    for kind, name, change in changes:
        print(f"{kind} {name} {change}")
    if doc.runtimes:
        from gateway.runtimes import Runtimes, apply_runtimes

        deployments = Runtimes(settings).deployments(DEFAULT_TENANT)
        for line in await apply_runtimes(doc.runtimes, deployments, Path(args.file).parent, str(args.file)):
            print(line)
    counts = {
        c: sum(1 for *_, ch in changes if ch == c) for c in ("created", "updated", "deleted", "unchanged")
    }
    print(", ".join(f"{n} {c}" for c, n in counts.items()))
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    from gateway.store import StoreError

    try:
        return anyio.run(_apply, args)
    except (ConfigError, StoreError) as exc:
        return fail(str(exc))


async def _tools(args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    from gateway.config import load_file
    from gateway.hub import Hub
    from gateway.store import Store
    from gateway.system import Switchboard

    async with Hub() as hub:
        if args.config is not None:
            doc = load_file(args.config)
            await hub.apply(DEFAULT_TENANT, list(doc.gateways))
        else:
            settings = settings_of(args)
            store = await Store.open(settings.resolved_database_url())
            try:
                await Switchboard(settings, store, hub).reload()
            finally:
                await store.close()
        return {
            gw.name: gw.catalog.snapshot.tool_list
            for gw in hub.gateways()
            if args.gateway is None or gw.name == args.gateway
        }


def cmd_tools(args: argparse.Namespace) -> int:
    from gateway.store import StoreError

    try:
        catalog = anyio.run(_tools, args)
    except (ConfigError, StoreError) as exc:
        return fail(str(exc))
    if args.gateway is not None and args.gateway not in catalog:
        return fail(f"no gateway named {args.gateway!r}")
    if args.json:
        out: Any = catalog[args.gateway] if args.gateway else catalog
        print(json.dumps(out, indent=2))
        return 0
    for name, tools in catalog.items():
        print(f"{name}: {len(tools)} tools")
        for tool in tools:
            desc = (tool.get("description") or "").splitlines()[0:1]
            print(f"  {tool['name']}" + (f"  {desc[0][:80]}" if desc else ""))
    return 0


async def _pins(args: argparse.Namespace) -> tuple[list[str] | None, list[dict[str, Any]]]:
    from gateway.hub import Hub
    from gateway.pins import approve_tools, store_pins, target_review
    from gateway.store import Store
    from gateway.system import Switchboard

    settings = settings_of(args)
    store = await Store.open(settings.resolved_database_url())
    try:
        async with Hub(pins=store_pins(store)) as hub:
            await Switchboard(settings, store, hub).reload()
            approved = None
            if args.approve is not None:
                approved = await approve_tools(hub, DEFAULT_TENANT, args.gateway, args.target, args.approve)
            return approved, await target_review(hub, DEFAULT_TENANT, args.gateway, args.target)
    finally:
        await store.close()


def cmd_pins(args: argparse.Namespace) -> int:
    """Review a federated target's tools against what was approved, and approve them."""
    from gateway.pins import NotPinned
    from gateway.store import StoreError

    try:
        approved, tools = anyio.run(_pins, args)
    except (ConfigError, StoreError, NotPinned) as exc:
        return fail(str(exc))
    except KeyError as exc:
        return fail(str(exc.args[0]))
    if args.json:
        print(json.dumps({"approved": approved, "tools": tools} if approved is not None else tools, indent=2))
        return 0
    if approved is not None:
        print(f"approved: {', '.join(approved) or 'nothing was waiting'}")
    for entry in tools:
        print(f"{entry['status']:>8}  {entry['tool']}")
        for line in entry.get("diff", ()):
            print(f"          {line}")
    waiting = [e["tool"] for e in tools if e["status"] in ("new", "changed")]
    if waiting and approved is None:
        print(
            f"\n{len(waiting)} waiting; approve with: switchboard pins {args.gateway} {args.target} --approve"
        )
    return 0


async def _vault(args: argparse.Namespace) -> str:
    from gateway.auth import open_vault
    from gateway.store import Store, StoreSecrets
    from identity.vault import LocalKeyring

    settings = settings_of(args)
    store = await Store.open(settings.resolved_database_url())
    try:
        vault = await open_vault(settings, store)
        if args.action == "audit":
            lines = [
                f"{e['at']}  {e['action']:<7} {e['outcome']:<8} {e['user']}/{e['provider']}/{e['name']}"
                + (f"  tool={e['tool']}" if e["tool"] else "")
                for e in await StoreSecrets(store).audit_log(DEFAULT_TENANT, args.limit)
            ]
            return "\n".join(reversed(lines)) or "no secret has been stored or used yet"
        master = vault.master
        if isinstance(master, LocalKeyring):
            master.add_key()
        count = await vault.rotate()
        return f"re-wrapped {count} data keys under master key {master.current!r}"
    finally:
        await store.close()


def cmd_vault(args: argparse.Namespace) -> int:
    """Rotate the vault's master key (re-wrapping every data key) or show its audit log."""
    from gateway.store import StoreError
    from identity.vault import VaultError

    try:
        print(anyio.run(_vault, args))
    except (StoreError, VaultError) as exc:
        return fail(str(exc))
    return 0


async def _tenant(args: argparse.Namespace) -> str:
    from gateway.hub import Hub
    from gateway.store import Store
    from gateway.system import Switchboard

    settings = settings_of(args)
    store = await Store.open(settings.resolved_database_url())
    try:
        if args.name in await store.list_tenants():
            raise ConfigError(f"tenant {args.name!r} exists already; its admins make more keys")
        async with Hub() as hub:
            return await Switchboard(settings, store, hub).create_tenant(args.name)
    finally:
        await store.close()


def cmd_tenants(args: argparse.Namespace) -> int:
    """Create a tenant: its gateways are served under /tenants/NAME/gateways/{g}/mcp."""
    from gateway.store import StoreError

    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,63}", args.name):
        return fail(f"tenant name {args.name!r}: use 1-63 letters, digits, '_', '.' or '-'")
    try:
        key = anyio.run(_tenant, args)
    except (ConfigError, StoreError) as exc:
        return fail(str(exc))
    print(f"tenant {args.name} created; its admin key (shown once, stored hashed): {key}")
    return 0


async def _aws_keys(args: argparse.Namespace) -> str:
    from gateway.auth import AccessKeys, Revocations, open_vault
    from gateway.store import Store

    settings = settings_of(args)
    store = await Store.open(settings.resolved_database_url())
    revocations = Revocations(settings.redis_url)
    try:
        if args.tenant != DEFAULT_TENANT and args.tenant not in await store.list_tenants():
            raise ConfigError(f"no tenant named {args.tenant!r}; `switchboard tenants create` makes one")
        keys = AccessKeys(store, await open_vault(settings, store), revocations)
        if args.action == "create":
            planes = frozenset(p.strip() for p in args.planes.split(",") if p.strip())
            try:
                key = await keys.create(args.tenant, args.subject or "agentcore", planes)
            except ValueError as exc:
                raise ConfigError(f"--planes {args.planes!r}: {exc}") from None
            return (
                f"access key of tenant {key.tenant} for {key.subject}, planes {','.join(sorted(key.planes))} "
                "(the secret is shown once):\n"
                f"AWS_ACCESS_KEY_ID={key.access_key_id}\nAWS_SECRET_ACCESS_KEY={key.secret}"
            )
        if args.action == "revoke":
            if not args.key:
                raise ConfigError("name the access key id to revoke: switchboard aws-keys revoke AKID")
            if not await keys.revoke(args.tenant, args.key):
                raise ConfigError(f"tenant {args.tenant!r} has no access key {args.key!r}")
            return f"revoked {args.key}"
        listed = await keys.list(args.tenant)
        lines = [
            f"{k['access_key_id']}  {k['subject']}  {','.join(k['planes'])}  {k['created_at']}"
            for k in listed
        ]
        return "\n".join(lines) or f"tenant {args.tenant} has no access keys"
    finally:
        await revocations.aclose()
        await store.close()


def cmd_aws_keys(args: argparse.Namespace) -> int:
    """Access keys that AgentCore's clients (boto3, the bedrock-agentcore SDK) sign requests with."""
    from gateway.store import StoreError
    from identity.vault import VaultError

    try:
        print(anyio.run(_aws_keys, args))
    except (ConfigError, StoreError, VaultError) as exc:
        return fail(str(exc))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from gateway.config import json_schema
    from gateway.connectors import connector_json_schema

    print(json.dumps(connector_json_schema() if args.connector else json_schema(), indent=2))
    return 0


def _secret_ref(env: str | None, file: str | None, what: str) -> SecretRef | None:
    from gateway.config import SecretRef

    if env and file:
        raise ConfigError(f"give {what} once: --{what}-env or --{what}-file")
    if env:
        return SecretRef(env=env)
    return SecretRef(file=file) if file else None


async def _enable(args: argparse.Namespace) -> str:
    from gateway import connectors
    from gateway.config import to_store, validate
    from gateway.hub import Hub
    from gateway.store import Store
    from gateway.system import Switchboard, compile_check

    entry = connectors.find(args.name)
    variables = {}
    for item in args.var or ():
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"--var {item!r}: write it as NAME=VALUE")
        variables[key.strip()] = value
    secrets = {
        "client_secret": _secret_ref(args.client_secret_env, args.client_secret_file, "client-secret"),
        "api_key": _secret_ref(args.api_key_env, args.api_key_file, "api-key"),
    }
    given = {
        "target": args.target,
        "client_id": args.client_id,
        "authorize_url": args.authorize_url,
        "token_url": args.token_url,
        "base_url": args.base_url,
        "server_variables": variables,
        "tools": args.tools or [],
        **{k: v.model_dump(exclude_none=True) for k, v in secrets.items() if v is not None},
    }
    request = validate(connectors.EnableRequest, given, source="command line")
    settings = settings_of(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    store = await Store.open(settings.resolved_database_url())
    try:
        async with Hub() as hub:
            specs = {s.name: s for s in await Switchboard(settings, store, hub).load_specs(DEFAULT_TENANT)}
        gateway = specs.get(args.gateway)
        if gateway is None:
            known = ", ".join(specs) or "none"
            raise ConfigError(f"no gateway named {args.gateway!r} (there are: {known}); create it first")
        changed = connectors.enable(gateway, entry, request)
        await compile_check(DEFAULT_TENANT, [changed])
        await store.apply(DEFAULT_TENANT, [to_store(changed)])
    finally:
        await store.close()
    name = request.target or entry.connector.name
    how = "its API key" if request.api_key else "per-user OAuth: each user consents on first use"
    return f"enabled {entry.connector.name} on gateway {args.gateway} as target {name} ({how})"


def cmd_connectors(args: argparse.Namespace) -> int:
    """List, show or enable packaged SaaS connectors."""
    from gateway import connectors
    from gateway.store import StoreError

    try:
        if args.action == "enable":
            print(anyio.run(_enable, args))
            return 0
        found = connectors.catalog()
        if args.action == "list":
            rows = [connectors.describe(e) for e in found.entries.values()]
            if args.json:
                print(json.dumps(rows, indent=2))
            for row in [] if args.json else rows:
                print(f"{row['name']:<14} {len(row['tools']):>3} tools  {row['origin']:<8}  {row['title']}")
            for issue in found.problems:
                print(f"not loaded: {issue}", file=sys.stderr)
            return 0
        entry = connectors.find(args.name)
        issues = connectors.check(entry)
        shown = connectors.describe(entry)
        if args.json:
            print(json.dumps({**shown, "problems": [str(i) for i in issues]}, indent=2))
        else:
            print(f"{shown['name']}: {shown['title']} ({shown['origin']}, {shown['file']})")
            print(f"  {shown['description']}")
            print(f"  API document: {shown['spec']}")
            print(f"  OAuth scopes: {' '.join(shown['oauth']['scopes'])}")
            if shown["api_key"]:
                print(f"  or an API key: {shown['api_key']['description']}")
            for tool in shown["tools"]:
                paged = " [paged]" if tool["paged"] else ""
                print(f"  {tool['name']:<28}{paged} {(tool['description'] or '').splitlines()[0][:70]}")
            for issue in issues:
                print(f"problem: {issue}", file=sys.stderr)
        return 1 if issues else 0
    except (ConfigError, StoreError) as exc:
        return fail(str(exc))
