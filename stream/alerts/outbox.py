"""The alert outbox: every alert is written here (SQLite, WAL) before any sink sends it.

It numbers each camera's alerts 1, 2, 3... and the numbers continue across restarts (the last
number of each camera is kept apart from the alerts, so retention never lets one come back).
The stored JSON is exactly what was published, so a subscriber that fetches a missed alert by
number gets the same bytes. Writers and the query endpoint's readers use separate connections;
WAL lets them read while the pipeline writes.

Durability: `synchronous: full` (the default) syncs every commit to disk, so an acknowledged
alert survives a power cut; `normal` survives the process being killed, not the machine.

Storage faults (a full disk, an I/O error) never stop alerts: the outbox numbers them anyway and
holds the rows it could not write (at most `max_held`, the oldest dropped beyond that, counted
and logged), so they are still published live and served to catch-up requests from memory; they
are written, in order, by the next commit that succeeds. `status()` says `degraded` and why
until then. Alerts held when the process dies are lost from the outbox (they were published).
"""
from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stream.alerts.schema import SCHEMA_VERSION

log = logging.getLogger(__name__)

_TABLES = """
PRAGMA auto_vacuum = INCREMENTAL;
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
    """Used by one writer thread (the publisher's); readers in other threads open their own
    connection (`Reader`), and see held rows through `held_since`. Retention is applied on opening
    and every 1,000 alerts, and frees the file's pages (incremental vacuum)."""

    def __init__(self, path: str | Path, *, synchronous: str = "full", max_age_s: float | None = None,
                 max_mb: float | None = None, max_held: int = 100_000):
        self.path = Path(path)
        self.max_age_s, self.max_mb, self.max_held = max_age_s, max_mb, max_held
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._con = connect(self.path, synchronous=synchronous)
            self._con.executescript(_TABLES)
            if self._con.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
                self._con.execute("VACUUM")        # an outbox made before incremental vacuum: converted once
            row = self._con.execute("SELECT value FROM meta WHERE key = 'id'").fetchone()
            if row is None:
                self._con.execute("INSERT OR IGNORE INTO meta VALUES ('id', ?)", (uuid.uuid4().hex[:16],))
                row = self._con.execute("SELECT value FROM meta WHERE key = 'id'").fetchone()
            self.id: str = row[0]
            self._last = dict(self._con.execute("SELECT camera, last_seq FROM cameras"))
        except (sqlite3.Error, OSError) as e:
            raise OutboxError(f"{self.path}: cannot open the outbox: {e}") from None
        self._revision: dict[str, int] = {}
        self._lock = threading.Lock()              # the connection
        self._sent_lock = threading.Lock()         # the sent marks (never held across a commit)
        self._held_lock = threading.Lock()         # the held rows (read by the query endpoint's thread)
        self._written = 0
        self._sent: list[tuple[str, int]] = []     # sent since the last commit: marked in the next one
        self._held: list[tuple] = []               # numbered rows not yet written (a storage fault)
        self.fault: str | None = None              # the storage fault, while there is one
        self.lost = 0                              # held rows dropped beyond max_held (published, never stored)
        self.prune()

    def last_seq(self, camera: str) -> int:
        return self._last.get(camera, 0)

    def cameras(self) -> dict[str, int]:
        """Each camera's last number, held alerts included (any thread)."""
        return dict(self._last)

    def status(self) -> dict[str, Any]:
        """For health messages: `ok`, or `degraded` with the reason, what is held and what was lost."""
        return {"state": "degraded" if self.fault else "ok", "reason": self.fault, "held": len(self._held),
                "lost": self.lost}

    def _next_revision(self, alert_id: str) -> int:
        if alert_id not in self._revision:
            row = self._con.execute("SELECT MAX(revision) FROM alerts WHERE alert_id = ?", (alert_id,)).fetchone()
            held = [r[3] for r in self._held if r[2] == alert_id]
            self._revision[alert_id] = max([-1 if row[0] is None else row[0], *held])
        self._revision[alert_id] += 1
        return self._revision[alert_id]

    def append(self, payloads: list[dict[str, Any]]) -> list[Stored]:
        """Number, stamp and store alerts (each a dict with camera, alert_id, state...) in one
        transaction, after any rows held by an earlier storage fault; returns them as numbered.
        On a storage fault the rows are held instead (see the module's doc): the alerts still go out."""
        now = time.time()
        out, rows = [], []
        with self._lock:
            for p in payloads:
                cam = p["camera"]
                seq = self._last.get(cam, 0) + 1
                msg = {"schema": SCHEMA_VERSION, "type": "alert", "outbox": self.id, "camera": cam,
                       "seq": seq, "revision": self._next_revision(p["alert_id"]), "sent_at": now,
                       **{k: v for k, v in p.items() if k != "camera"}}
                body = json.dumps(msg, separators=(",", ":"))
                rows.append((cam, seq, msg["alert_id"], msg["revision"], msg["state"], now, body))
                out.append(Stored(cam, seq, body.encode()))
                self._last = {**self._last, cam: seq}     # replaced whole: readers on other threads see one or the other
                if p["state"] == "close":                 # a closed event gets no more revisions: forget its count
                    self._revision.pop(p["alert_id"], None)
            with self._held_lock:
                self._held += rows
            self._write_held(now)
            self._written += len(rows)
        if self._written >= 1000:
            self._written = 0
            self.prune()
        return out

    def retry(self) -> bool:
        """Try again to write what a storage fault held; True once nothing is held."""
        with self._lock:
            self._write_held(time.time())
            return not self._held

    def _write_held(self, now: float) -> None:
        """Commit the held rows (with the cameras' numbers and the sent marks); on a storage fault
        keep them, dropping the oldest beyond max_held."""
        if not self._held:
            return
        with self._sent_lock:
            sent = list(self._sent)
        try:
            self._con.execute("BEGIN IMMEDIATE")
            self._con.executemany("INSERT INTO alerts (camera, seq, alert_id, revision, state, written_at, body) "
                                  "VALUES (?, ?, ?, ?, ?, ?, ?)", self._held)
            self._con.executemany("INSERT INTO cameras VALUES (?, ?) ON CONFLICT (camera) DO UPDATE SET "
                                  "last_seq = MAX(last_seq, excluded.last_seq)",
                                  [(c, self._last[c]) for c in {r[0] for r in self._held}])
            self._con.executemany("UPDATE alerts SET published_at = ? WHERE camera = ? AND seq = ?",
                                  [(now, c, q) for c, q in sent])
            self._con.execute("COMMIT")
        except sqlite3.OperationalError as e:       # disk full, I/O error, locked beyond the busy timeout
            if self._con.in_transaction:
                self._con.execute("ROLLBACK")
            self._hold(str(e))
            return
        with self._held_lock:
            stored = len(self._held)
            self._held = []
        with self._sent_lock:
            del self._sent[:len(sent)]
        if self.fault is not None:
            log.warning("outbox %s writes again: %d held alerts stored (%d lost)", self.path, stored, self.lost)
            self.fault = None

    def _hold(self, reason: str) -> None:
        if self.fault is None:
            log.error("outbox %s cannot write (%s): alerts are published and held in memory (up to %d) until "
                      "it can", self.path, reason, self.max_held)
        self.fault = reason
        over = len(self._held) - self.max_held
        if over > 0:
            with self._held_lock:
                del self._held[:over]
            self.lost += over
            log.error("outbox %s: %d published alerts dropped unstored (%d so far): more than %d held",
                      self.path, over, self.lost, self.max_held)

    def held_since(self, camera: str, after: int) -> list[str]:
        """Held bodies of `camera` numbered above `after` (any thread)."""
        with self._held_lock:
            return [r[6] for r in self._held if r[0] == camera and r[1] > after]

    def mark_published(self, stored: list[Stored]) -> None:
        """Remember these as sent; written with the next commit (or at close), so sending costs no
        commit of its own. A crash before that sends them again at start: subscribers drop repeats
        by number."""
        with self._sent_lock:
            self._sent += [(s.camera, s.seq) for s in stored]

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
        under `max_mb`, and give the freed pages back to the file system. Numbers are never
        reused. Returns how many were dropped."""
        dropped = 0
        with self._lock:
            try:
                if self.max_age_s is not None:
                    dropped += self._con.execute("DELETE FROM alerts WHERE written_at < ?",
                                                 (time.time() - self.max_age_s,)).rowcount
                if self.max_mb is not None:
                    while self._used_bytes() > self.max_mb * 1e6:
                        rows = self._con.execute("SELECT COUNT(*) FROM alerts").fetchone()[0]
                        n = self._con.execute("DELETE FROM alerts WHERE (camera, seq) IN (SELECT camera, seq FROM "
                                              "alerts ORDER BY written_at LIMIT ?)", (max(1, rows // 20),)).rowcount
                        if n == 0:
                            break
                        dropped += n
                if dropped:
                    self._con.executescript("PRAGMA incremental_vacuum;")   # stepped to the end, unlike execute()
                    self._con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.OperationalError as e:
                log.warning("outbox %s: retention could not run: %s", self.path, e)
        return dropped

    def _used_bytes(self) -> int:
        page = self._con.execute("PRAGMA page_size").fetchone()[0]
        used = self._con.execute("PRAGMA page_count").fetchone()[0] - self._con.execute("PRAGMA freelist_count").fetchone()[0]
        return page * used

    def close(self) -> None:
        with self._lock:
            if self._sent and not self._held:
                with self._sent_lock:
                    sent, self._sent = self._sent, []
                try:
                    self._con.executemany("UPDATE alerts SET published_at = ? WHERE camera = ? AND seq = ?",
                                          [(time.time(), c, q) for c, q in sent])
                except sqlite3.OperationalError as e:     # sent again at the next start; subscribers drop repeats
                    log.warning("outbox %s: could not mark %d alerts sent: %s", self.path, len(sent), e)
            if self._held:
                log.error("outbox %s: %d published alerts could not be stored before closing (%s)", self.path,
                          len(self._held), self.fault)
            self._con.close()


class Reader:
    """Read-only access for the query endpoint (its own connection, its own thread)."""

    def __init__(self, path: str | Path):
        self._con = connect(Path(path), readonly=True)
        self.id = self._con.execute("SELECT value FROM meta WHERE key = 'id'").fetchone()[0]

    def since(self, camera: str, after: int, limit: int) -> tuple[list[str], int, int]:
        """Up to `limit` alerts of `camera` numbered above `after`, in order; the camera's last
        number; and the first number still kept (older ones fell to retention). One read
        transaction, so the three agree even while the pipeline writes."""
        self._con.execute("BEGIN")
        try:
            rows = self._con.execute("SELECT body FROM alerts WHERE camera = ? AND seq > ? ORDER BY seq LIMIT ?",
                                     (camera, after, limit)).fetchall()
            last = self._con.execute("SELECT last_seq FROM cameras WHERE camera = ?", (camera,)).fetchone()
            first = self._con.execute("SELECT MIN(seq) FROM alerts WHERE camera = ?", (camera,)).fetchone()[0]
        finally:
            self._con.execute("COMMIT")
        return [r[0] for r in rows], (last[0] if last else 0), (first or 0)

    def cameras(self) -> dict[str, int]:
        return dict(self._con.execute("SELECT camera, last_seq FROM cameras ORDER BY camera"))

    def events(self, *, camera: str | None = None, category: str | None = None, since: float | None = None,
               until: float | None = None, limit: int = 50, offset: int = 0) -> list[str]:
        """Events, newest first: each event's latest message (open, update or close), filtered by
        camera, category and the wall time its span starts (`since` <= wall_start < `until`)."""
        where, args = ["revision = (SELECT MAX(revision) FROM alerts b WHERE b.alert_id = a.alert_id)"], []
        for clause, value in (("camera = ?", camera), ("json_extract(body, '$.category') = ?", category),
                              ("json_extract(body, '$.wall_start') >= ?", since),
                              ("json_extract(body, '$.wall_start') < ?", until)):
            if value is not None:
                where.append(clause)
                args.append(value)
        rows = self._con.execute(f"SELECT body FROM alerts a WHERE {' AND '.join(where)} "
                                 "ORDER BY json_extract(body, '$.wall_start') DESC, alert_id LIMIT ? OFFSET ?",
                                 (*args, limit, offset)).fetchall()
        return [r[0] for r in rows]

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def event(self, alert_id: str) -> dict[str, Any] | None:
        """An event's latest message, or None when the outbox has none (unknown, or pruned)."""
        row = self._con.execute("SELECT body FROM alerts WHERE alert_id = ? ORDER BY revision DESC LIMIT 1",
                                (alert_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def close(self) -> None:
        self._con.close()
