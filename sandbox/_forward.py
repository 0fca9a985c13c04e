"""The sandbox's side of the PUBLIC network mode (ADR 0035). It runs INSIDE the sandbox with the
sandbox's own Python, standard library only, bound read-only at ``/opt/switchboard/forward.py``::

    python3 -I /opt/switchboard/forward.py PORT SOCKET [-- COMMAND...]
    python3 -I /opt/switchboard/forward.py --inbound FD PORT [--outbound PORT SOCKET]... [-- COMMAND...]
    python3 -I /opt/switchboard/forward.py --inbound-path PATH PORT [--outbound PORT SOCKET]... [-- ...]

It listens on 127.0.0.1:PORT in the sandbox's own network namespace and pipes each connection to
the egress proxy's UNIX socket SOCKET (bound into the sandbox), so ``HTTP_PROXY`` and
``HTTPS_PROXY`` of ``http://127.0.0.1:PORT`` work inside. Given a COMMAND, it runs it with those
variables set and exits with its status; without one it serves until killed. The agent can start
the same in a thread (``start``).

``--inbound`` is the other way (a hosted agent, ADR 0039): it accepts on the listening UNIX
socket the host made and handed down as descriptor FD (in a folder of the host's, which nothing
in the sandbox can reach or redirect) and pipes each connection to the app listening on
127.0.0.1:PORT inside, so the host talks to the app with no network between them.
``--inbound-path`` does the same for a sandbox that cannot be handed a descriptor (gVisor's): it
makes the listening socket itself, at PATH in the sandbox's work directory, where the host finds
it (a host socket: runsc's ``--host-uds=create``) and checks it before it connects, following
nothing the sandbox may have put in its place. With either, each ``--outbound PORT SOCKET``
listens on 127.0.0.1:PORT inside and pipes to the UNIX socket SOCKET, a service the host chose
for the app (ADR 0040), as the proxy's is piped above.

It decides nothing: every check is the proxy's, on the host; whatever runs in the sandbox can
rewrite this file, and gains nothing by it. Two threads per connection, one per direction (a slow
reader on one side never stalls the other), at most MAX_CONNECTIONS at once; when the proxy's side
ends, the whole connection ends, so no thread waits on a client that keeps its socket open.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable

MAX_CONNECTIONS = 32
CHUNK = 64 * 1024
_BODY = b"the egress proxy cannot be reached from the sandbox\n"
UNREACHABLE = (
    b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nConnection: close\r\n"
    b"Content-Length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY
)
USAGE = (
    "usage: forward.py PORT SOCKET [-- COMMAND...] | "
    "forward.py --inbound FD PORT [--outbound PORT SOCKET]... [-- COMMAND...] | "
    "forward.py --inbound-path PATH PORT [--outbound PORT SOCKET]... [-- COMMAND...]"
)
APP_NOT_LISTENING = b"the app in the sandbox is not listening\n"
APP_DOWN = (
    b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nConnection: close\r\n"
    b"Content-Length: " + str(len(APP_NOT_LISTENING)).encode() + b"\r\n\r\n" + APP_NOT_LISTENING
)


def proxy_environment(port: int) -> dict[str, str]:
    """The variables that send HTTP clients (curl, pip, urllib, requests) through the forwarder."""
    url = f"http://127.0.0.1:{port}"
    local = "localhost,127.0.0.1,::1"
    return {
        "HTTP_PROXY": url,
        "HTTPS_PROXY": url,
        "http_proxy": url,
        "https_proxy": url,
        "NO_PROXY": local,
        "no_proxy": local,
    }


def listen(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:``port`` (0: any free port)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
    except OSError:
        listener.close()
        raise
    return listener


def _pump(source: socket.socket, sink: socket.socket, final: bool) -> None:
    """Copy ``source`` to ``sink`` until ``source`` ends, then half-close ``sink``; when ``final``
    (the proxy's side ended) or on an error, end both sockets (which wakes the other thread)."""
    try:
        while True:
            chunk = source.recv(CHUNK)
            if not chunk:
                break
            sink.sendall(chunk)
    except OSError:
        final = True
    for end in (sink, source) if final else (sink,):
        with contextlib.suppress(OSError):
            end.shutdown(socket.SHUT_RDWR if final else socket.SHUT_WR)


def _to_unix(path: str) -> socket.socket:
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(path)
    except OSError:
        upstream.close()
        raise
    return upstream


def _to_port(port: int) -> socket.socket:
    upstream = socket.create_connection(("127.0.0.1", port))
    upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # (else ~40 ms a reply: Nagle)
    return upstream


def _connection(
    client: socket.socket,
    connect: Callable[[], socket.socket],
    down: bytes,
    slots: threading.BoundedSemaphore,
) -> None:
    try:
        try:
            upstream = connect()
        except OSError:
            with contextlib.suppress(OSError):
                client.sendall(down)
            return
        with upstream:
            back = threading.Thread(target=_pump, args=(upstream, client, True), daemon=True)
            back.start()
            _pump(client, upstream, False)
            back.join()
    except RuntimeError:  # no thread could be started (the sandbox's process limit)
        pass
    finally:
        client.close()
        slots.release()


def serve(listener: socket.socket, path: str) -> None:
    """Accept on ``listener`` for ever, piping each connection to the UNIX socket ``path``."""
    _serve(listener, lambda: _to_unix(path), UNREACHABLE)


def _serve(listener: socket.socket, connect: Callable[[], socket.socket], down: bytes) -> None:
    slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            if listener.fileno() < 0:
                return
            time.sleep(0.1)  # (out of file descriptors, say: the program's own doing; no spinning)
            continue
        if not slots.acquire(blocking=False):
            client.close()  # (over the cap: refused at once, never queued)
            continue
        try:
            threading.Thread(target=_connection, args=(client, connect, down, slots), daemon=True).start()
        except RuntimeError:
            client.close()
            slots.release()


def start(port: int, path: str) -> int:
    """Serve in a daemon thread (for the agent); the port listened on.

    Raises:
        OSError: 127.0.0.1:``port`` cannot be listened on.
    """
    listener = listen(port)
    threading.Thread(target=serve, args=(listener, path), daemon=True, name="forward").start()
    return int(listener.getsockname()[1])


def inbound(fd: int, port: int) -> None:
    """Accept on the listening socket ``fd`` in a daemon thread, piping each connection to
    127.0.0.1:``port``."""
    _inbound(socket.socket(fileno=fd), port)


def inbound_path(path: str, port: int) -> None:
    """Listen on a new UNIX socket at ``path`` and accept on it in a daemon thread, piping each
    connection to 127.0.0.1:``port``.

    Raises:
        OSError: nothing can listen at ``path`` (something is there already, say).
    """
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
        listener.listen(64)
    except OSError:
        listener.close()
        raise
    _inbound(listener, port)


def _inbound(listener: socket.socket, port: int) -> None:
    threading.Thread(target=_serve, args=(listener, lambda: _to_port(port), APP_DOWN), daemon=True).start()


def main(argv: list[str]) -> int:
    args, command = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    environment = dict(os.environ)
    if args[:1] in (["--inbound"], ["--inbound-path"]):
        by_path = args[0] == "--inbound-path"
        outbound, rest = args[3:], args[3:]
        shaped = len(args) >= 3 and _port(args[2])
        shaped = shaped and (args[1].startswith("/") if by_path else args[1].isdigit())
        while shaped and rest:
            shaped = len(rest) >= 3 and rest[0] == "--outbound" and _port(rest[1])
            rest = rest[3:]
        if not shaped or ("--" in argv and not command):
            print(USAGE, file=sys.stderr)
            return 2
        try:
            if by_path:
                inbound_path(args[1], int(args[2]))
            else:
                inbound(int(args[1]), int(args[2]))
        except OSError as exc:
            said = (
                f"cannot listen at {args[1]}"
                if by_path
                else f"descriptor {args[1]} is not a listening socket"
            )
            print(f"forward: {said}: {exc.strerror}", file=sys.stderr)
            return 1
        for index in range(0, len(outbound), 3):
            inside = outbound[index + 1]
            try:
                start(int(inside), outbound[index + 2])
            except OSError as exc:
                print(f"forward: cannot listen on 127.0.0.1:{inside}: {exc.strerror}", file=sys.stderr)
                return 1
        return _run(command, environment)
    if len(args) != 2 or not args[0].isdigit() or int(args[0]) > 65535 or ("--" in argv and not command):
        print(USAGE, file=sys.stderr)
        return 2
    try:
        port = start(int(args[0]), args[1])
    except OSError as exc:
        print(f"forward: cannot listen on 127.0.0.1:{args[0]}: {exc.strerror}", file=sys.stderr)
        return 1
    return _run(command, {**environment, **proxy_environment(port)})


def _port(text: str) -> bool:
    return text.isdigit() and 0 < int(text) <= 65535


def _run(command: list[str], environment: dict[str, str]) -> int:
    """Run ``command`` (signals passed on) and exit with its status; none: serve until killed."""
    if not command:
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()  # (until killed)
        return 0
    try:
        child = subprocess.Popen(command, env=environment)
    except OSError as exc:
        print(f"forward: cannot run {command[0]}: {exc.strerror}", file=sys.stderr)
        return 127
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda number, frame: child.send_signal(number))
    code = child.wait()
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
