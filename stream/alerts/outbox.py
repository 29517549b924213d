"""The alert outbox: every alert is written here (SQLite, WAL) before any sink sends it.

It numbers each camera's alerts 1, 2, 3... and the numbers continue across restarts (the last
number of each camera is kept apart from the alerts, so retention never lets one come back).
The stored JSON is exactly what was published, so a subscriber that fetches a missed alert by
number gets the same bytes. Writers and the query endpoint's readers use separate connections;
WAL lets them read while the pipeline writes.

Durability: `synchronous: full` (the default) syncs every commit to disk, so an acknowledged
alert survives a power cut; `normal` survives the process being killed, not the machine.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stream.alerts.schema import SCHEMA_VERSION

_TABLES = """
CREATE TABLE IF NOT EXISTS alerts (
    camera TEXT NOT NULL, seq INTEGER NOT NULL, alert_id TEXT NOT NULL, revision INTEGER NOT NULL,
    state TEXT NOT NULL, written_at REAL NOT NULL, published_at REAL, body TEXT NOT NULL,
    PRIMARY KEY (camera, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS alerts_by_event ON alerts (alert_id, revision);
CREATE INDEX IF NOT EXISTS alerts_by_age ON alerts (written_at);
CREATE TABLE IF NOT EXISTS cameras (camera TEXT PRIMARY KEY, last_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class OutboxError(RuntimeError):
    pass


def connect(path: Path, *, synchronous: str = "full", readonly: bool = False) -> sqlite3.Connection:
    uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
    try:
        con = sqlite3.connect(uri, uri=True, timeout=10.0, isolation_level=None, check_same_thread=False)
        con.execute("PRAGMA busy_timeout = 10000")
        if not readonly:
            mode = con.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise OutboxError(f"{path}: SQLite could not switch to WAL (got {mode}); is it on a network filesystem?")
            con.execute(f"PRAGMA synchronous = {synchronous.upper()}")
    except sqlite3.Error as e:
        raise OutboxError(f"{path}: cannot open the outbox: {e}") from None
    return con


@dataclass(frozen=True)
class Stored:
    camera: str
    seq: int
    body: bytes          # the JSON message, as published


class Outbox:
    """Used by one writer (the pipeline's publishing thread); readers in other threads open their
    own connection (`Reader`). Retention is applied on opening and every 1,000 alerts."""

    def __init__(self, path: str | Path, *, synchronous: str = "full", max_age_s: float | None = None,
                 max_mb: float | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_age_s, self.max_mb = max_age_s, max_mb
        self._con = connect(self.path, synchronous=synchronous)
        self._con.executescript(_TABLES)
        row = self._con.execute("SELECT value FROM meta WHERE key = 'id'").fetchone()
        if row is None:
            self._con.execute("INSERT OR IGNORE INTO meta VALUES ('id', ?)", (uuid.uuid4().hex[:16],))
            row = self._con.execute("SELECT value FROM meta WHERE key = 'id'").fetchone()
        self.id: str = row[0]
        self._last = dict(self._con.execute("SELECT camera, last_seq FROM cameras"))
        self._revision: dict[str, int] = {}
        self._lock = threading.Lock()
        self._written = 0
        self._sent: list[tuple[str, int]] = []     # sent since the last commit: marked in the next one
        self.prune()

    def last_seq(self, camera: str) -> int:
        return self._last.get(camera, 0)

    def _next_revision(self, alert_id: str) -> int:
        if alert_id not in self._revision:
            row = self._con.execute("SELECT MAX(revision) FROM alerts WHERE alert_id = ?", (alert_id,)).fetchone()
            self._revision[alert_id] = -1 if row[0] is None else row[0]
        self._revision[alert_id] += 1
        return self._revision[alert_id]

    def append(self, payloads: list[dict[str, Any]]) -> list[Stored]:
        """Number, stamp and store alerts (each a dict with camera, alert_id, state...) in one
        transaction; returns them as stored. Nothing is numbered unless everything is written."""
        now = time.time()
        out, rows = [], []
        with self._lock:
            last = dict(self._last)
            revisions = dict(self._revision)
            try:
                self._con.execute("BEGIN IMMEDIATE")
                for p in payloads:
                    cam = p["camera"]
                    last[cam] = last.get(cam, 0) + 1
                    msg = {"schema": SCHEMA_VERSION, "type": "alert", "outbox": self.id, "camera": cam,
                           "seq": last[cam], "revision": self._next_revision(p["alert_id"]), "sent_at": now,
                           **{k: v for k, v in p.items() if k != "camera"}}
                    body = json.dumps(msg, separators=(",", ":"))
                    rows.append((cam, msg["seq"], msg["alert_id"], msg["revision"], msg["state"], now, body))
                    out.append(Stored(cam, msg["seq"], body.encode()))
                self._con.executemany("INSERT INTO alerts (camera, seq, alert_id, revision, state, written_at, body) "
                                      "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
                self._con.executemany("INSERT INTO cameras VALUES (?, ?) ON CONFLICT (camera) DO UPDATE SET "
                                      "last_seq = excluded.last_seq", [(c, last[c]) for c in {r[0] for r in rows}])
                self._flush_sent(now)
                self._con.execute("COMMIT")
                for p in payloads:        # a closed event gets no more revisions: forget its count
                    if p["state"] == "close":
                        self._revision.pop(p["alert_id"], None)
            except BaseException:
                if self._con.in_transaction:
                    self._con.execute("ROLLBACK")
                self._revision = revisions
                raise
            self._last = last
            self._written += len(rows)
        if self._written >= 1000:
            self._written = 0
            self.prune()
        return out

    def mark_published(self, stored: list[Stored]) -> None:
        """Remember these as sent; written with the next commit (or at close), so sending costs no
        commit of its own. A crash before that sends them again at start: subscribers drop repeats
        by number."""
        with self._lock:
            self._sent += [(s.camera, s.seq) for s in stored]

    def _flush_sent(self, now: float) -> None:
        if self._sent:
            self._con.executemany("UPDATE alerts SET published_at = ? WHERE camera = ? AND seq = ?",
                                  [(now, c, q) for c, q in self._sent])
            self._sent = []

    def unpublished(self) -> list[Stored]:
        """Written but never sent (the pipeline died in between): sent again at start, in order."""
        rows = self._con.execute("SELECT camera, seq, body FROM alerts WHERE published_at IS NULL ORDER BY camera, seq")
        return [Stored(c, s, b.encode()) for c, s, b in rows]

    def unclosed(self) -> list[dict]:
        """The latest message of every event that never closed (the pipeline stopped mid-event)."""
        rows = self._con.execute(
            "SELECT body FROM alerts a WHERE revision = (SELECT MAX(revision) FROM alerts b WHERE b.alert_id = a.alert_id) "
            "AND state != 'close'")
        return [json.loads(b) for (b,) in rows]

    def prune(self) -> int:
        """Apply retention: drop alerts older than `max_age_s`, then the oldest until the data is
        under `max_mb`. Numbers are never reused. Returns how many were dropped."""
        dropped = 0
        with self._lock:
            if self.max_age_s is not None:
                dropped += self._con.execute("DELETE FROM alerts WHERE written_at < ?",
                                             (time.time() - self.max_age_s,)).rowcount
            if self.max_mb is not None:
                while self._used_bytes() > self.max_mb * 1e6:
                    rows = self._con.execute("SELECT COUNT(*) FROM alerts").fetchone()[0]
                    n = self._con.execute("DELETE FROM alerts WHERE (camera, seq) IN (SELECT camera, seq FROM alerts "
                                          "ORDER BY written_at LIMIT ?)", (max(1, rows // 20),)).rowcount
                    if n == 0:
                        break
                    dropped += n
        return dropped

    def _used_bytes(self) -> int:
        page = self._con.execute("PRAGMA page_size").fetchone()[0]
        used = self._con.execute("PRAGMA page_count").fetchone()[0] - self._con.execute("PRAGMA freelist_count").fetchone()[0]
        return page * used

    def close(self) -> None:
        with self._lock:
            self._flush_sent(time.time())
            self._con.close()


class Reader:
    """Read-only access for the query endpoint (its own connection, its own thread)."""

    def __init__(self, path: str | Path):
        self._con = connect(Path(path), readonly=True)
        self.id = self._con.execute("SELECT value FROM meta WHERE key = 'id'").fetchone()[0]

    def since(self, camera: str, after: int, limit: int) -> tuple[list[str], int, int]:
        """Up to `limit` alerts of `camera` numbered above `after`, in order; the camera's last
        number; and the first number still kept (older ones fell to retention)."""
        rows = self._con.execute("SELECT body FROM alerts WHERE camera = ? AND seq > ? ORDER BY seq LIMIT ?",
                                 (camera, after, limit)).fetchall()
        last = self._con.execute("SELECT last_seq FROM cameras WHERE camera = ?", (camera,)).fetchone()
        first = self._con.execute("SELECT MIN(seq) FROM alerts WHERE camera = ?", (camera,)).fetchone()[0]
        return [r[0] for r in rows], (last[0] if last else 0), (first or 0)

    def cameras(self) -> dict[str, int]:
        return dict(self._con.execute("SELECT camera, last_seq FROM cameras ORDER BY camera"))

    def close(self) -> None:
        self._con.close()
