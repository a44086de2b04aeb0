"""JIT elevation grants, persisted in SQLite (WAL), shared by every worker of a server.

A grant is requested, then approved or rejected by someone who is neither the requester nor
the elevated subject, and is revocable. An approved grant applies only to its subject, only
until it expires, only to the resources its scope names (globs on `resource.id`), and only in
its session when it names one (`context.session_id`). Rules see the grant that applies to a
request as `elevation.*`.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from layergate.dsl.literals import glob_match

PENDING, APPROVED, REJECTED, REVOKED = "pending", "approved", "rejected", "revoked"
INACTIVE: dict[str, Any] = {"active": False}

OPEN_TIMEOUT_SECONDS = 30  # how long opening the store waits for other processes

SCHEMA = """
CREATE TABLE IF NOT EXISTS grants (
    id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    roles TEXT NOT NULL,
    actions TEXT NOT NULL,
    resources TEXT NOT NULL,
    session_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    duration_seconds REAL NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    decided_by TEXT NOT NULL DEFAULT '',
    decided_at REAL NOT NULL DEFAULT 0,
    expires_at REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS grants_by_subject ON grants (subject, status);
"""


class GrantError(ValueError):
    """A grant operation that is not allowed (the message says why)."""


@dataclass(frozen=True)
class Grant:
    id: str
    subject: str
    requested_by: str
    roles: tuple[str, ...]
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    session_id: str
    reason: str
    duration_seconds: float
    status: str
    created_at: float
    decided_by: str
    decided_at: float
    expires_at: float

    def active(self, now: float) -> bool:
        return self.status == APPROVED and now < self.expires_at

    def covers(self, resource_id: str, session_id: Any) -> bool:
        if self.session_id and session_id != self.session_id:
            return False
        return any(glob_match(resource_id, pattern) for pattern in self.resources)

    def elevation(self) -> dict[str, Any]:
        """The grant as rules see it: `elevation.*`."""
        return {"active": True, "id": self.id, "roles": list(self.roles),
                "actions": list(self.actions), "resources": list(self.resources),
                "expires_at": _rfc3339(self.expires_at), "approved_by": self.decided_by,
                "requested_by": self.requested_by}

    def to_json(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for key in ("roles", "actions", "resources"):
            out[key] = list(out[key])
        return out


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat().replace("+00:00", "Z")


class GrantStore:
    """Grants in one SQLite file; every write is one transaction. Safe across threads and
    processes (each process opens its own connection; WAL lets readers run during writes)."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False,
                                   timeout=OPEN_TIMEOUT_SECONDS, isolation_level=None)
        self._set_up()
        self._version = -1
        self._approved: dict[str, list[Grant]] = {}

    def _set_up(self) -> None:
        """WAL mode and the schema. Switching the journal mode does not wait on SQLite's busy
        handler, so processes opening a new file at once (server workers) retry it here."""
        deadline = time.monotonic() + OPEN_TIMEOUT_SECONDS
        pause = 0.01
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(SCHEMA)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.5)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- changes (each one transaction)
    def request(self, subject: str, requested_by: str, roles: list[str], actions: list[str],
                resources: list[str], duration_seconds: float, reason: str,
                session_id: str = "") -> Grant:
        if duration_seconds <= 0:
            raise GrantError("the duration must be positive")
        if not resources:
            raise GrantError("a grant needs a resource scope (use [\"*\"] on purpose)")
        if not roles and not actions:
            raise GrantError("a grant must name roles or actions")
        grant_id = "grt_" + secrets.token_hex(8)
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO grants (id, subject, requested_by, roles, actions, resources, "
                "session_id, reason, duration_seconds, status, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (grant_id, subject, requested_by, _dump(roles), _dump(actions),
                 _dump(resources), session_id, reason, duration_seconds, PENDING, self.clock()))
        return self.get(grant_id)

    def decide(self, grant_id: str, approver: str, approve: bool) -> Grant:
        """Approve (the clock starts now) or reject a pending grant."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            grant = self._row(grant_id)
            if grant.status != PENDING:
                raise GrantError(f"grant `{grant_id}` is {grant.status}, not pending")
            if approver in (grant.requested_by, grant.subject):
                raise GrantError("the approver must be neither the requester nor the subject")
            now = self.clock()
            self._db.execute(
                "UPDATE grants SET status = ?, decided_by = ?, decided_at = ?, expires_at = ? "
                "WHERE id = ?",
                (APPROVED if approve else REJECTED, approver, now,
                 now + grant.duration_seconds if approve else 0, grant_id))
        return self.get(grant_id)

    def revoke(self, grant_id: str, revoked_by: str) -> Grant:
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            grant = self._row(grant_id)
            if grant.status in (REJECTED, REVOKED):
                raise GrantError(f"grant `{grant_id}` is already {grant.status}")
            self._db.execute("UPDATE grants SET status = ?, decided_by = ?, decided_at = ? "
                             "WHERE id = ?", (REVOKED, revoked_by, self.clock(), grant_id))
        return self.get(grant_id)

    # -- reads
    def get(self, grant_id: str) -> Grant:
        with self._lock:
            return self._row(grant_id)

    def list(self, subject: str = "") -> list[Grant]:
        query = "SELECT * FROM grants" + (" WHERE subject = ?" if subject else "")
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created_at, id",
                                    (subject,) if subject else ()).fetchall()
        return [_grant(row) for row in rows]

    def elevation_for(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """`elevation.*` for a request: the applicable grant expiring last, or inactive."""
        subject = request.get("subject") or {}
        subject_id = subject.get("id") if isinstance(subject, Mapping) else None
        if not isinstance(subject_id, str):
            return INACTIVE  # a malformed request is refused later, with its field path
        grants = self._approved_for(subject_id)
        if not grants:
            return INACTIVE
        resource = request.get("resource") or {}
        resource_id = resource.get("id", "") if isinstance(resource, Mapping) else ""
        context = request.get("context") or {}
        session = context.get("session_id") if isinstance(context, Mapping) else None
        now = self.clock()
        usable = [g for g in grants if g.active(now) and isinstance(resource_id, str)
                  and g.covers(resource_id, session)]
        if not usable:
            return INACTIVE
        return max(usable, key=lambda g: (g.expires_at, g.id)).elevation()

    def _approved_for(self, subject: str) -> list[Grant]:
        """Approved grants of a subject, from a cache refreshed when any process writes."""
        with self._lock:
            version = self._db.execute("PRAGMA data_version").fetchone()[0]
            changes = self._db.total_changes
            if (version, changes) != self._version:
                rows = self._db.execute("SELECT * FROM grants WHERE status = ?",
                                        (APPROVED,)).fetchall()
                approved: dict[str, list[Grant]] = {}
                for row in rows:
                    grant = _grant(row)
                    approved.setdefault(grant.subject, []).append(grant)
                self._approved = approved
                self._version = (version, changes)
            return self._approved.get(subject, [])

    def _row(self, grant_id: str) -> Grant:
        row = self._db.execute("SELECT * FROM grants WHERE id = ?", (grant_id,)).fetchone()
        if row is None:
            raise GrantError(f"no grant `{grant_id}`")
        return _grant(row)


def _dump(values: list[str]) -> str:
    return orjson.dumps(list(values)).decode()


def _grant(row: tuple[Any, ...]) -> Grant:
    (grant_id, subject, requested_by, roles, actions, resources, session_id, reason,
     duration, status, created_at, decided_by, decided_at, expires_at) = row
    return Grant(grant_id, subject, requested_by, tuple(orjson.loads(roles)),
                 tuple(orjson.loads(actions)), tuple(orjson.loads(resources)), session_id,
                 reason, duration, status, created_at, decided_by, decided_at, expires_at)
