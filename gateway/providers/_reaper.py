"""Start a local MCP server so that it dies with the gateway, even on ``kill -9``.

Used as ``python -m gateway.providers._reaper COMMAND [ARGS...]``: asks the
kernel to send SIGKILL to this process when its parent dies
(``PR_SET_PDEATHSIG``), then replaces itself with the command. A gateway that
is killed outright therefore leaves no stdio server running.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python -m gateway.providers._reaper COMMAND [ARGS...]")
    parent = os.getppid()
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            sys.exit(f"prctl(PR_SET_PDEATHSIG) failed: errno {ctypes.get_errno()}")
        if os.getppid() != parent:  # the parent died before the request took effect
            sys.exit(1)
    os.execvp(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    main()
