"""Endpoints: names that point at a runtime's versions, with weighted canaries (ADR 0041).

``DEFAULT`` always exists and follows the latest version, as AgentCore's does. A named endpoint
points at one version, and may send a share of new sessions to a second one (``canary`` with a
``weight`` in percent). Which version a new session gets is decided by its id: a hash of it
falls in the canary's share or not, so the same id lands on the same version every time (even
after its session ended), and the split over many sessions follows the weight. Endpoints of a
runtime are kept in ``{root}/{runtime}/endpoints.json``, written whole and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

DEFAULT = "DEFAULT"
ENDPOINT = re.compile(r"[a-zA-Z][a-zA-Z0-9_]{0,47}")  # (AgentCore's EndpointName)


class EndpointError(Exception):
    """An endpoint was refused or is not there; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A name for the version(s) a runtime's new sessions get."""

    name: str
    version: int | None  # None: the latest (DEFAULT)
    canary: int | None = None  # a second version, for ``weight`` percent of new sessions
    weight: int = 0
    description: str = ""
    created: float = 0.0
    updated: float = 0.0

    def pick(self, session_id: str, latest: int) -> int:
        """The version a new session with this id gets."""
        main = self.version if self.version is not None else latest
        if self.canary is None or self.weight <= 0:
            return main
        share = int.from_bytes(hashlib.sha256(session_id.encode()).digest()[:8], "big") % 10_000
        return self.canary if share < self.weight * 100 else main


class Endpoints:
    """The endpoints of the runtimes under ``root`` (the folder of ``Deployments``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._known: dict[str, tuple[tuple[int, int], dict[str, Endpoint]]] = {}

    def _file(self, runtime: str) -> Path:
        return self.root / runtime / "endpoints.json"

    def all(self, runtime: str) -> list[Endpoint]:
        """DEFAULT first, then the named ones by name."""
        found = self._read(runtime)
        default = found.pop(DEFAULT, Endpoint(DEFAULT, None))
        return [default, *(found[name] for name in sorted(found))]

    def get(self, runtime: str, name: str) -> Endpoint:
        """Raises EndpointError: no such endpoint."""
        for endpoint in self.all(runtime):
            if endpoint.name == name:
                return endpoint
        known = ", ".join(e.name for e in self.all(runtime))
        raise EndpointError(f"runtime {runtime!r} has no endpoint {name!r} (it has {known})")

    def put(
        self,
        runtime: str,
        name: str,
        versions: list[int],
        *,
        version: int | None,
        canary: int | None = None,
        weight: int = 0,
        description: str | None = None,
        create: bool | None = None,
    ) -> Endpoint:
        """Create (``create`` True), change (False) or either (None) the endpoint ``name``.

        Raises:
            EndpointError: a bad name, version or weight; DEFAULT changed; it exists (or not).
        """
        if not ENDPOINT.fullmatch(name):
            raise EndpointError(
                f"endpoint name {name!r}: use a letter, then letters, digits or '_' (48 at most)"
            )
        if name == DEFAULT:
            raise EndpointError(
                f"{DEFAULT} always follows the latest version; point a named endpoint at a version instead"
            )
        for number in (version, canary):
            if number is not None and number not in versions:
                known = ", ".join(map(str, versions))
                raise EndpointError(f"runtime {runtime!r} has no version {number} (it has {known})")
        if not 0 <= weight <= 100:
            raise EndpointError(f"weight {weight}: a canary's share is a percentage, 0 to 100")
        if weight and canary is None:
            raise EndpointError("a weight needs a canary version to send that share to")
        found = self._read(runtime)
        old = found.get(name)
        if create is True and old is not None:
            raise EndpointError(f"runtime {runtime!r} already has an endpoint {name!r}: update it")
        if create is False and old is None:
            raise EndpointError(f"runtime {runtime!r} has no endpoint {name!r}: create it first")
        now = time.time()
        base = old or Endpoint(name, None, created=now)
        endpoint = replace(
            base,
            version=version if version is not None else (base.version or max(versions)),
            canary=canary,
            weight=weight if canary is not None else 0,
            description=base.description if description is None else description,
            updated=now,
        )
        found[name] = endpoint
        self._write(runtime, found)
        return endpoint

    def delete(self, runtime: str, name: str) -> bool:
        """Raises EndpointError: DEFAULT (it goes with the runtime)."""
        if name == DEFAULT:
            raise EndpointError(f"{DEFAULT} goes only with the runtime: delete the runtime")
        found = self._read(runtime)
        if found.pop(name, None) is None:
            return False
        self._write(runtime, found)
        return True

    def _read(self, runtime: str) -> dict[str, Endpoint]:
        path = self._file(runtime)
        try:  # (read again only when the file was replaced: every write renames a new one in)
            seen = os.stat(path)
        except FileNotFoundError:
            self._known.pop(runtime, None)
            return {}
        stamp = (seen.st_ino, seen.st_mtime_ns)
        known = self._known.get(runtime)
        if known is None or known[0] != stamp:
            rows = json.loads(path.read_text())
            known = (stamp, {row["name"]: Endpoint(**row) for row in rows})
            self._known[runtime] = known
        return dict(known[1])

    def _write(self, runtime: str, found: dict[str, Endpoint]) -> None:
        path = self._file(runtime)
        partial = path.with_name(f".endpoints-{os.getpid()}.json")
        partial.write_text(json.dumps([asdict(e) for e in found.values()], indent=1))
        partial.replace(path)
