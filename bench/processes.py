"""Benchmark servers as child processes: start one, learn its port, stop it, never leak it.

Every server runs in its own process group, so stopping it also stops its workers; a server
that does not stop within the grace period is killed.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

ANNOUNCE = re.compile(r"serving .* on (?P<host>[\d.]+):(?P<port>\d+)")


class Spawned:
    """A server process started with `python -m MODULE ARGS`, serving on 127.0.0.1."""

    def __init__(self, module: str, args: list[str], label: str, log: Path,
                 timeout: float = 120.0) -> None:
        self.label = label
        self._log = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, *args], stdout=subprocess.PIPE,
            stderr=self._log, text=True, start_new_session=True)
        try:
            self.port = self._await_port(timeout)
        except BaseException:
            self.stop()
            raise
        self.address = f"127.0.0.1:{self.port}"

    def _await_port(self, timeout: float) -> int:
        """The port from the server's announce line (printed once every worker listens)."""
        found: list[int] = []
        reader = threading.Thread(target=self._read_announce, args=(found,), daemon=True)
        reader.start()
        reader.join(timeout)
        if not found:
            raise RuntimeError(f"{self.label} did not start; see {self._log.name}")
        return found[0]

    def _read_announce(self, found: list[int]) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            match = ANNOUNCE.search(line)
            if match:
                found.append(int(match["port"]))
                return

    def pids(self) -> list[int]:
        """The server process and all its descendants (the workers)."""
        out, pending = [], [self.process.pid]
        while pending:
            pid = pending.pop()
            out.append(pid)
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            pending.extend(int(child) for child in children)
        return out

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left after `grace` seconds."""
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(grace)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            if self.process.stdout:
                self.process.stdout.close()
            self._log.close()

    def __enter__(self) -> Spawned:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time so far of these processes (from /proc; exited ones count 0)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / ticks

