"""Several worker processes on one port (``serve --workers N``): started, restarted when one
dies, stopped together (see ``gateway.serving`` for what they share).

Above the app (each worker creates one), so the app and ``serving`` never import each other.
"""

from __future__ import annotations

import contextlib
import logging
import logging.config
import multiprocessing
import os
import shutil
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

from gateway.serving import gateway_server, link_socket, run_dir, tag_sessions, worker_socket
from gateway.settings import Settings

logger = logging.getLogger(__name__)


def serve_workers(
    settings: Settings, sock: socket.socket, workers: int, log_config: dict[str, Any], base_url: str
) -> int:
    """Run ``workers`` worker processes on ``sock`` until SIGTERM/SIGINT; returns the exit code."""
    directory = run_dir(settings)
    shutil.rmtree(directory, ignore_errors=True)
    (directory / "metrics").mkdir(parents=True, mode=0o700)
    os.chmod(directory, 0o700)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory / "metrics")
    context = multiprocessing.get_context("spawn")
    arguments = (sock, settings.model_dump_json(), str(directory), log_config, base_url)

    def start() -> multiprocessing.process.BaseProcess:
        process = context.Process(target=_worker, args=arguments, daemon=False)
        process.start()
        return process

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    processes = [start() for _ in range(workers)]
    started = [time.monotonic()] * workers
    early_deaths = 0
    code = 0
    try:
        while not stop.wait(0.5):
            for i, process in enumerate(processes):
                if process.is_alive():
                    continue
                early_deaths = early_deaths + 1 if time.monotonic() - started[i] < 10 else 0
                if early_deaths >= 5:
                    logger.error("workers keep ending as they start (exit %s); stopping", process.exitcode)
                    code = 1
                    stop.set()
                    break
                logger.error("worker %s ended (exit %s); starting another", process.pid, process.exitcode)
                processes[i], started[i] = start(), time.monotonic()
    finally:
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        for process in processes:
            process.join(settings.shutdown_grace_seconds + 10)
            if process.is_alive():
                process.kill()
                process.join()
        shutil.rmtree(directory, ignore_errors=True)
    return code


def _worker(
    sock: socket.socket, settings_json: str, directory: str, log_config: dict[str, Any], base_url: str
) -> None:
    """One worker process: the gateway app on the shared socket and on its own Unix socket."""
    logging.config.dictConfig(log_config)
    settings = Settings.model_validate_json(settings_json)
    tag_sessions()
    own = worker_socket(Path(directory), os.getpid())
    with contextlib.suppress(FileNotFoundError):
        own.unlink()
    private = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    private.bind(str(own))
    os.chmod(own, 0o600)
    private.listen(512)  # other workers may pass requests on while this one still starts: they wait
    # The app is imported once this worker's socket is bound: every worker's socket then exists
    # long before any worker serves, so all of them agree at once on which owns a runtime session.
    from gateway.app import close_listen_streams, create_app

    links = Path(directory) / f"link-{os.getpid()}"  # (this worker's hosted agents reach it here)
    links.mkdir(mode=0o700, exist_ok=True)
    link = link_socket(links)
    settings = settings.model_copy(update={"runtime_gateway_socket": link.getsockname()})
    app = create_app(settings, base_url=base_url, worker_run_dir=Path(directory), own_socket=str(own))
    try:
        gateway_server(app, settings, None, close_listen_streams).run(sockets=[sock, private, link])
    finally:
        link.close()
        shutil.rmtree(links, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            own.unlink()
