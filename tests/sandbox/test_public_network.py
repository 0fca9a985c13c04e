"""Network mode PUBLIC through a code interpreter session: programs inside reach the network only
through the session's own egress proxy, which refuses loopback (the gateway's own port and a
listener of the test's), private and metadata addresses, names that resolve to them, and hosts
off the operator's allow list, before any byte leaves; every decision is logged. No test here
sends traffic off this host: every name resolves through the test's own table, and every address
asked for is refused by the proxy before it connects."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from sandbox import EgressDecision, EgressPolicy, Interpreter, InterpreterConfig

pytestmark = pytest.mark.anyio

PROBE = r"""
import json, os, sys, urllib.error, urllib.request
seen = {"proxy": os.environ.get("HTTPS_PROXY")}
for url in sys.argv[1:]:
    try:
        urllib.request.urlopen(url, timeout=10)
        seen[url] = "reached"
    except urllib.error.HTTPError as e:
        seen[url] = f"{e.code} {e.read().decode().strip()}"
    except Exception as e:
        seen[url] = f"{type(e).__name__}: {e}"
print(json.dumps(seen))
"""


@pytest.fixture
def listener() -> Any:
    """A listener on the host's loopback, standing for the gateway's own port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.setblocking(False)
    yield sock
    sock.close()


async def _resolve(host: str) -> Sequence[str]:
    table = {"allowed.test": ["127.0.0.1"], "inside.test": ["10.0.0.7"]}
    if host not in table:
        raise OSError(f"{host}: not in the test's table")
    return table[host]


@pytest.fixture
async def public(tmp_path: Path) -> AsyncIterator[tuple[Interpreter, list[EgressDecision]]]:
    decisions: list[EgressDecision] = []
    config = InterpreterConfig(
        warm=0,
        network="PUBLIC",
        egress=EgressPolicy(allow=("allowed.test", "inside.test", "10.0.0.1", "169.254.169.254")),
        egress_log=decisions.append,
        egress_resolver=_resolve,
    )
    interpreter = Interpreter("public", config, tmp_path / "sandboxes")
    async with interpreter.running():
        yield interpreter, decisions


async def test_public_mode_refuses_everything_but_public_addresses(
    public: tuple[Interpreter, list[EgressDecision]], listener: socket.socket
) -> None:
    interpreter, decisions = public
    port = listener.getsockname()[1]
    session = await interpreter.start("t")
    urls = [
        f"http://allowed.test:{port}/",  # a name resolving to the host's loopback
        f"http://127.0.0.1:{port}/",  # the loopback itself: not proxied, the sandbox's own
        "http://inside.test/",  # a name resolving to a private address
        "http://10.0.0.1/",  # a private address
        "http://169.254.169.254/latest/meta-data/",  # the cloud metadata address
        "https://elsewhere.test/",  # a host off the operator's allow list (CONNECT)
    ]
    command = "python3 -c '" + PROBE.replace("'", "'\"'\"'") + "' " + " ".join(urls)
    result = await interpreter.invoke(session.id, "executeCommand", {"command": command}, "t")
    seen = json.loads(result["structuredContent"]["stdout"])
    assert seen["proxy"] == "http://127.0.0.1:3128"
    assert seen[urls[0]].startswith("403 ") and "loopback" in seen[urls[0]]
    assert "Connection refused" in seen[urls[1]]
    assert seen[urls[2]].startswith("403 ") and "private" in seen[urls[2]]
    assert seen[urls[3]].startswith("403 ") and "private" in seen[urls[3]]
    assert seen[urls[4]].startswith("403 ") and "metadata" in seen[urls[4]]
    assert "Tunnel connection failed: 403" in seen[urls[5]]
    with pytest.raises(BlockingIOError):
        listener.accept()  # nothing reached the host's listener
    assert len(decisions) == len(urls) - 1 and not any(d.allowed for d in decisions)
    assert session.egress is not None
    directory = session.egress.directory
    await interpreter.stop(session.id, "t")
    assert not directory.exists()  # the proxy and its socket went with the session


async def test_sandbox_mode_has_no_proxy_at_all(tmp_path: Path) -> None:
    interpreter = Interpreter("none", InterpreterConfig(warm=0), tmp_path / "sandboxes")
    async with interpreter.running():
        session = await interpreter.start("t")
        probe = "import os, socket\nprint(os.environ.get('HTTPS_PROXY'))\n"
        probe += "socket.create_connection(('127.0.0.1', 3128))"
        result = await interpreter.invoke(session.id, "executeCode", {"code": probe}, "t")
        assert result["structuredContent"]["stdout"] == "None\n"
        assert "ConnectionRefusedError" in result["structuredContent"]["stderr"]
