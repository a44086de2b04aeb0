"""The decision log: one hash-chained JSON line per decision, written off the hot path.

Records go through a bounded buffer to a writer thread; when the buffer is full a record is
dropped and counted (never blocking a decision). Each record carries the SHA-256 of the one
before it (`prev`) and its own (`hash`, over its canonical JSON without `hash`), so deleting,
reordering or editing a record breaks the chain, across size-based rotations too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from .decision import Decision

FORMAT = 1
GENESIS = "0" * 64
MASKED = "***"
log = logging.getLogger("layergate.decisionlog")


def _digest(record: Mapping[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def mask(request: Mapping[str, Any], paths: Sequence[str]) -> dict[str, Any]:
    """A copy of the request with the values at `paths` (e.g. `context.token`) replaced; an
    integer beyond 64 bits, which the log's JSON cannot hold, is written as its digits."""
    try:
        out = orjson.loads(orjson.dumps(request, default=str))
    except TypeError:  # an integer beyond 64 bits
        out = json.loads(json.dumps(request, default=str), parse_int=_int64_or_digits)
    for path in paths:
        *parents, last = path.split(".")
        node: Any = out
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and last in node:
            node[last] = MASKED
    return out


def _int64_or_digits(digits: str) -> int | str:
    number = int(digits)
    return number if -(1 << 63) <= number < 1 << 64 else digits


class DecisionLog:
    """Appends decision records to `path`, rotating at `max_bytes` and keeping `keep` files."""

    def __init__(self, path: str | Path, *, buffer: int = 10_000,
                 max_bytes: int = 64 * 1024 * 1024, keep: int = 5,
                 mask_paths: Sequence[str] = (), on_drop: Callable[[int], None] | None = None,
                 start: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes, self.keep, self.mask_paths = max_bytes, keep, tuple(mask_paths)
        self.on_drop = on_drop
        self.dropped = 0
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=buffer)
        self._seq, self._prev = self._resume()
        self._file = self.path.open("ab")
        self._thread = threading.Thread(target=self._write, name="layergate-decision-log",
                                        daemon=True)
        if start:
            self._thread.start()

    def _resume(self) -> tuple[int, str]:
        """Continue the chain of an existing log (a restart does not break it)."""
        last = None
        if self.path.exists():
            with self.path.open("rb") as existing:
                for line in existing:
                    if line.strip():
                        last = line
        if last is None:
            return 0, GENESIS
        record = orjson.loads(last)
        return record["seq"], record["hash"]

    def record(self, decision: Decision, request: Mapping[str, Any],
               caller: Mapping[str, str] | None, decision_id: str, seconds: float) -> None:
        """Queue one record; drops (and counts) it if the buffer is full."""
        grants = [r.removeprefix("grant:") for r in decision.reasons if r.startswith("grant:")]
        event = {
            "v": FORMAT,
            "id": decision_id,
            "ts": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
            "revision": decision.revision,
            "caller": (caller or {}).get("id"),
            "request": {k: request[k] for k in ("subject", "action", "resource", "context")
                        if k in request},
            "decision": decision.decision,
            "layer": decision.layer,
            "rule": decision.rule,
            "layers": [r.to_json() for r in decision.layers],
            "reasons": [r for r in decision.reasons if not r.startswith("grant:")],
            "grants": grants,
            "errors": [e.to_json() for e in decision.errors],
            "eval_us": round(seconds * 1e6, 1),
        }
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            if self.on_drop:
                self.on_drop(1)
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("decision log buffer full: %d record(s) dropped", self.dropped)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Write everything still buffered, then stop (called on server shutdown)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._file.close()

    def _write(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            try:
                self._append(event)
            except OSError as exc:  # (a full disk): this record is lost, the next ones are not
                self.dropped += 1
                if self.on_drop:
                    self.on_drop(1)
                log.error("decision log: record %s not written (%s); %d record(s) dropped",
                          event.get("id"), exc, self.dropped)

    def _append(self, event: dict[str, Any]) -> None:
        """Chain and write one record; the chain moves on only once its line is written, so a
        record lost to a full disk leaves no gap in the chain of the records after it."""
        try:
            event["request"] = mask(event["request"], self.mask_paths)
        except (TypeError, ValueError, RecursionError) as exc:  # (from in-process callers)
            event["request"] = None
            event["request_error"] = f"the request cannot be written as JSON: {exc}"[:300]
            log.warning("decision log: record %s written without its request: %s",
                        event.get("id"), exc)
        event["seq"], event["prev"] = self._seq + 1, self._prev
        event["hash"] = _digest(event)
        line = orjson.dumps(event) + b"\n"
        if self._file.closed:  # (a rotation that failed half way)
            self._file = self.path.open("ab")
        if self._file.tell() + len(line) > self.max_bytes and self._file.tell() > 0:
            self._rotate()
        self._file.write(line)
        self._seq, self._prev = event["seq"], event["hash"]
        if self._queue.empty():
            try:
                self._file.flush()
            except OSError as exc:  # the lines stay buffered; a later flush writes them
                log.error("decision log: cannot write to %s yet (%s)", self.path, exc)

    def _rotate(self) -> None:
        self._file.close()
        for index in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._file = self.path.open("ab")


def verify(paths: Iterable[str | Path]) -> tuple[int, str | None]:
    """Check the chain over log files given oldest first: (records checked, first problem)."""
    previous, seq, count = None, None, 0
    for path in paths:
        with Path(path).open("rb") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{number}"
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    return count, f"{where}: not a JSON record"
                if record.get("hash") != _digest(record):
                    return count, f"{where}: record {record.get('seq')} was edited"
                if previous is not None and record.get("prev") != previous:
                    return count, (f"{where}: record {record.get('seq')} does not follow "
                                   f"record {seq} (deleted or reordered records)")
                if seq is not None and record.get("seq") != seq + 1:
                    return count, f"{where}: sequence jumps from {seq} to {record.get('seq')}"
                previous, seq = record["hash"], record["seq"]
                count += 1
    return count, None


def read(paths: Iterable[str | Path], since: float | None = None) -> list[dict[str, Any]]:
    """Records of log files (oldest first), optionally only those at or after `since`."""
    out = []
    for path in paths:
        for line in Path(path).read_bytes().splitlines():
            if line.strip():
                record = orjson.loads(line)
                if since is None or _epoch(record["ts"]) >= since:
                    out.append(record)
    return out


def _epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp).timestamp()

