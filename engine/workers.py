"""Running servers: one process, or several on one port (SO_REUSEPORT) under a supervisor."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import socket
import threading
import time
from dataclasses import replace
from typing import Any

from .metrics import Metrics
from .server import PolicyHolder, PolicySource, Server, ServerOptions

log = logging.getLogger("layergate.server")


def serve(source: PolicySource, options: ServerOptions, workers: int = 1) -> int:
    """Run until SIGTERM/SIGINT (calls in flight finish); SIGHUP reloads the policy.

    With `workers` > 1, that many processes serve one port (SO_REUSEPORT), each with its own
    copy of the policy; the parent only supervises them.
    """
    if workers <= 1:
        holder = PolicyHolder(source, Metrics() if options.metrics_port is not None else None,
                          freeze_heap=True)
        return _serve_one(holder, options, announce=True)
    return _supervise(source, options, workers)


def _serve_one(holder: PolicyHolder, options: ServerOptions, announce: bool,
               ready: Any = None) -> int:
    server = Server(holder, options).start()
    if ready is not None:
        ready.put(os.getpid())
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stopping.set())
    signal.signal(signal.SIGHUP, lambda signum, frame: threading.Thread(
        target=holder.reload, daemon=True).start())
    if announce:
        print(f"layergate: serving {holder.current.authorizer.revision} on "
              f"{options.host}:{server.port}", flush=True)
    while not stopping.wait(0.5):
        pass
    log.info("stopping: finishing calls in flight")
    server.stop()
    return 0


def _worker(source: PolicySource, options: ServerOptions, reserved: socket.socket,
            ready: Any) -> None:
    reserved.close()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    holder = PolicyHolder(source, Metrics() if options.metrics_port is not None else None,
                          freeze_heap=True)
    os._exit(_serve_one(holder, options, announce=False, ready=ready))


def _reserve(host: str, port: int) -> socket.socket:
    """Bind (not listen) the port with SO_REUSEPORT so every worker can bind it too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if port:  # an exclusive bind first: joining another server's SO_REUSEPORT group would
        # silently split its traffic, so a port already in use must be an error
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise OSError(f"cannot listen on {host}:{port} (in use?): {exc}") from None
    reserved = socket.socket(family, socket.SOCK_STREAM)
    reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    reserved.bind((host, port))
    return reserved


def _supervise(source: PolicySource, options: ServerOptions, workers: int) -> int:
    revision = source.load().authorizer.revision  # a broken policy fails here, before forking
    reserved = _reserve(options.host, options.port)
    port = reserved.getsockname()[1]
    context = multiprocessing.get_context("fork")
    ready = context.Queue()
    stopping = threading.Event()
    processes: dict[int, multiprocessing.process.BaseProcess] = {}

    def start(index: int) -> None:
        log = options.decision_log  # one chain per worker: appends never interleave
        own = replace(options, port=port, reuse_port=True,
                      metrics_port=None if options.metrics_port is None
                      else options.metrics_port + index,
                      decision_log=None if log is None
                      else log.with_name(f"{log.stem}.worker{index}{log.suffix}"))
        process = context.Process(target=_worker, args=(source, own, reserved, ready),
                                  name=f"layergate-worker-{index}")
        process.start()
        processes[index] = process

    def forward(signum: int) -> None:
        for process in processes.values():
            if process.pid and process.is_alive():
                os.kill(process.pid, signum)

    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stopping.set())
    signal.signal(signal.SIGHUP, lambda signum, frame: forward(signal.SIGHUP))
    for index in range(workers):
        start(index)
    try:
        _wait_until_ready(processes, ready, workers)
    except BaseException:
        _stop(processes)
        reserved.close()
        raise
    print(f"layergate: serving {revision} on {options.host}:{port} with {workers} workers",
          flush=True)
    while not stopping.wait(0.5):
        for index, process in list(processes.items()):
            if not process.is_alive():
                log.error("worker %d exited with %s; restarting it", index, process.exitcode)
                start(index)
    forward(signal.SIGTERM)
    for process in processes.values():
        process.join(options.grace_seconds + 5)
        if process.is_alive():
            process.kill()
    reserved.close()
    return 0


READY_TIMEOUT_SECONDS = 120


class WorkerStartError(RuntimeError):
    """A worker exited, or did not listen in time, before the server was serving."""


def _wait_until_ready(processes: dict[int, Any], ready: Any, workers: int) -> None:
    """Return once every worker listens; a worker that exits first fails the start."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    listening: set[int] = set()
    while len(listening) < workers:
        with contextlib.suppress(queue.Empty):
            listening.add(ready.get(timeout=0.2))
        for index, process in processes.items():
            if process.pid not in listening and process.exitcode is not None:
                raise WorkerStartError(f"worker {index} exited with {process.exitcode} before it "
                                   "was serving; see its error above")
        if time.monotonic() > deadline:
            raise WorkerStartError(f"only {len(listening)} of {workers} workers were serving "
                               f"after {READY_TIMEOUT_SECONDS} s")


def _stop(processes: dict[int, Any]) -> None:
    """Terminate every worker still running (a failed start leaves none behind)."""
    for process in processes.values():
        if process.is_alive():
            process.terminate()
    for process in processes.values():
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join()
