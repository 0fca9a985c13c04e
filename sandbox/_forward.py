"""The sandbox's side of the PUBLIC network mode (ADR 0035). It runs INSIDE the sandbox with the
sandbox's own Python, standard library only, bound read-only at ``/opt/switchboard/forward.py``::

    python3 -I /opt/switchboard/forward.py PORT SOCKET [-- COMMAND...]

It listens on 127.0.0.1:PORT in the sandbox's own network namespace and pipes each connection to
the egress proxy's UNIX socket SOCKET (bound into the sandbox), so ``HTTP_PROXY`` and
``HTTPS_PROXY`` of ``http://127.0.0.1:PORT`` work inside. Given a COMMAND, it runs it with those
variables set and exits with its status; without one it serves until killed. The agent can start
the same in a thread (``start``).

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

MAX_CONNECTIONS = 32
CHUNK = 64 * 1024
_BODY = b"the egress proxy cannot be reached from the sandbox\n"
UNREACHABLE = (
    b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nConnection: close\r\n"
    b"Content-Length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY
)
USAGE = "usage: forward.py PORT SOCKET [-- COMMAND...]"


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


def _connection(client: socket.socket, path: str, slots: threading.BoundedSemaphore) -> None:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as upstream:
            try:
                upstream.connect(path)
            except OSError:
                with contextlib.suppress(OSError):
                    client.sendall(UNREACHABLE)
                return
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
            threading.Thread(target=_connection, args=(client, path, slots), daemon=True).start()
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


def main(argv: list[str]) -> int:
    args, command = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    if len(args) != 2 or not args[0].isdigit() or int(args[0]) > 65535 or ("--" in argv and not command):
        print(USAGE, file=sys.stderr)
        return 2
    try:
        port = start(int(args[0]), args[1])
    except OSError as exc:
        print(f"forward: cannot listen on 127.0.0.1:{args[0]}: {exc.strerror}", file=sys.stderr)
        return 1
    if not command:
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()  # (until killed)
        return 0
    try:
        child = subprocess.Popen(command, env={**os.environ, **proxy_environment(port)})
    except OSError as exc:
        print(f"forward: cannot run {command[0]}: {exc.strerror}", file=sys.stderr)
        return 127
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda number, frame: child.send_signal(number))
    code = child.wait()
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
