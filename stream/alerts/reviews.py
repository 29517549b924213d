"""Operators' reviews of events (confirmed, or a false alarm), kept beside the outbox and exported
as labels for training.

A review is one row per event (a later review replaces it): the label, an optional note, who
and when. The export is the ground-truth format training reads (training/data.py, ActivityNet
style): one entry per camera, the confirmed events as annotations with their category and
grounded span in the camera's stream seconds (for a file camera: the file's own seconds), and
the false alarms beside them (`false_alarms`, the hard negatives a retraining wants).

    python -m stream.alerts.reviews --reviews var/reviews.sqlite --outbox var/outbox.sqlite -o labels.json
"""
from __future__ import annotations

import json
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

from engines.cli import Parser

LABELS = ("confirmed", "false_alarm")
MAX_NOTE = 1000       # characters

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reviews (
    alert_id TEXT PRIMARY KEY, camera TEXT NOT NULL, label TEXT NOT NULL, note TEXT NOT NULL,
    reviewer TEXT NOT NULL, reviewed_at REAL NOT NULL);
"""


class ReviewError(ValueError):
    """A review that cannot be stored; the message says what was wrong."""


class ReviewStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
            self._con.execute("PRAGMA journal_mode = WAL")
            self._con.executescript(_SCHEMA)
        except sqlite3.Error as e:
            raise ReviewError(f"{self.path}: cannot open the reviews: {e}") from None
        self._lock = threading.Lock()

    def set(self, alert_id: str, camera: str, label: str, note: str = "", reviewer: str = "") -> dict[str, Any]:
        if label not in LABELS:
            raise ReviewError(f"label must be one of {', '.join(LABELS)}, not {label!r}")
        if len(note) > MAX_NOTE:
            raise ReviewError(f"note is longer than {MAX_NOTE} characters")
        row = {"alert_id": alert_id, "camera": camera, "label": label, "note": note, "reviewer": reviewer,
               "reviewed_at": time.time()}
        with self._lock:
            self._con.execute("INSERT OR REPLACE INTO reviews VALUES (:alert_id, :camera, :label, :note, :reviewer, "
                              ":reviewed_at)", row)
        return row

    def get(self, alert_id: str) -> dict[str, Any] | None:
        rows = self._select("WHERE alert_id = ?", (alert_id,))
        return rows[0] if rows else None

    def all(self) -> list[dict[str, Any]]:
        return self._select("ORDER BY reviewed_at", ())

    def _select(self, tail: str, args: tuple) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._con.execute(f"SELECT * FROM reviews {tail}", args)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()]

    def close(self) -> None:
        self._con.close()


def export(store: ReviewStore, outbox: Path, videos: dict[str, str] | None = None) -> dict[str, Any]:
    """Every review with its event as the outbox last has it, as training labels (`labels`)."""
    from stream.alerts.outbox import Reader
    reviews = store.all()
    with Reader(outbox) as reader:
        events = {r["alert_id"]: e for r in reviews if (e := reader.event(r["alert_id"])) is not None}
    return labels(reviews, events, videos)


def labels(reviews: list[dict[str, Any]], events: dict[str, dict[str, Any]],
           videos: dict[str, str] | None = None) -> dict[str, Any]:
    """The ground-truth file training reads: `events` maps alert id -> its latest message; `videos`
    names each camera's video (a file camera: the file's name; others: the camera id)."""
    db: dict[str, dict[str, Any]] = {}
    for review in reviews:
        event = events.get(review["alert_id"])
        if event is None:       # fell to the outbox's retention: its span is gone with it
            continue
        camera = review["camera"]
        entry = db.setdefault((videos or {}).get(camera, camera),
                              {"subset": "train", "camera": camera, "annotations": [], "false_alarms": []})
        item = {"segment": [round(event["start"], 3), round(event["end"], 3)], "label": event["category"],
                "alert_id": event["alert_id"], "wall": [event["wall_start"], event["wall_end"]],
                "clip": next((e["path"] for e in event.get("evidence", []) if e["kind"] == "clip"), None)}
        if review["note"]:
            item["note"] = review["note"]
        entry["annotations" if review["label"] == "confirmed" else "false_alarms"].append(item)
    for entry in db.values():
        for key in ("annotations", "false_alarms"):
            entry[key].sort(key=lambda a: a["segment"][0])
    return {"database": db}


def main(argv: list[str] | None = None) -> int:
    ap = Parser("python -m stream.alerts.reviews", __doc__)
    ap.add_argument("--reviews", type=Path, required=True, help="the reviews file (beside the outbox)")
    ap.add_argument("--outbox", type=Path, required=True, help="the pipeline's outbox (alerts.outbox.path)")
    ap.add_argument("-o", "--out", type=Path, help="write the labels here (default: standard output)")
    args = ap.parse_args(argv)
    for path in (args.reviews, args.outbox):
        if not path.exists():
            ap.error(f"{path}: no such file")
    store = ReviewStore(args.reviews)
    try:
        found = export(store, args.outbox)
    finally:
        store.close()
    text = json.dumps(found, indent=1)
    if args.out is None:
        print(text)
    else:
        args.out.write_text(text + "\n")
        print(f"{sum(len(e['annotations']) + len(e['false_alarms']) for e in found['database'].values())} "
              f"reviews -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
