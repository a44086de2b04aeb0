"""`layergate serve` as a child process in tests, with a deadline on every wait.

The server's output is read by threads, so a server that never announces itself fails the
test after `STARTUP_SECONDS` instead of hanging it, and a chatty one never blocks on a full
pipe. The server runs in its own process group, killed as a whole (workers included) when the
block ends if it is still running.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO

import pytest

STARTUP_SECONDS = 120.0  # two workers compiling the policy on a loaded 2-core machine
ANNOUNCEMENT = "layergate: serving "


class _Reader:
    """Collects a pipe's lines on a thread; the first one is also handed over by queue."""

    def __init__(self, pipe: IO[str]) -> None:
        self.lines: list[str] = []
        self._first: queue.Queue[str] = queue.Queue(maxsize=1)
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: IO[str]) -> None:
        for line in pipe:
            if not self.lines:
                self._first.put(line)
            self.lines.append(line)
        if not self.lines:
            self._first.put("")  # closed without a line

    def first_line(self, timeout: float) -> str | None:
        try:
            return self._first.get(timeout=timeout)
        except queue.Empty:
            return None

    def text(self, timeout: float = 10.0) -> str:
        """Everything read so far (waiting up to `timeout` for the pipe to close)."""
        self._thread.join(timeout)
        return "".join(self.lines)


@dataclass
class Served:
    process: subprocess.Popen[str]
    port: int
    stderr: _Reader = field(repr=False)


@contextmanager
def serve(*args: str, startup_seconds: float = STARTUP_SECONDS) -> Iterator[Served]:
    """Run `layergate serve ARGS` until the block ends; yields it once it announces its port."""
    process = subprocess.Popen(
        [sys.executable, "-m", "layergate.engine.cli", "serve", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
        start_new_session=True)
    assert process.stdout is not None and process.stderr is not None
    stdout, stderr = _Reader(process.stdout), _Reader(process.stderr)
    try:
        line = stdout.first_line(startup_seconds)
        if line is None or not line.startswith(ANNOUNCEMENT):
            _stop(process)
            said = "nothing" if line is None else repr(line)
            pytest.fail(f"`layergate serve` said {said} within {startup_seconds:.0f} s, not "
                        f"{ANNOUNCEMENT!r}; stderr:\n{stderr.text()}")
        port = int(line.split(" on ")[1].split()[0].rsplit(":", 1)[1])
        yield Served(process, port, stderr)
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[str]) -> None:
    """Kill the server's whole process group (its workers too) and reap it, unless the test
    already saw it exit (its pid may then belong to another process)."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):  # it exited just now
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):  # never hide the test's own failure
        process.wait(timeout=30)
