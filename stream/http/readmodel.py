"""The one read model behind the HTTP API and the console: everything they show, read from the
running pipeline (its cameras' health, latest scenes and zones, its normals, its outbox and the
operators' reviews), and the few changes they make to it (zones, reviews, a normal's reset, a
chat question). Routes and pages read this, never the pipeline.

`Recent` keeps each camera's recent verdicts (an observer of the pipeline) for the score curves
and event badges; `Snapshots` draws a camera's latest scored window once per window.
"""
from __future__ import annotations

import json
import threading
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stream.alerts.outbox import Reader
from stream.alerts.reviews import ReviewStore, export as export_labels
from stream.config import EventsConfig, ZoneConfig
from stream.ingest.live import LiveFeed
from stream.scene.zones import Zones, ZoneStore
from stream.types import Alert, Verdict

if TYPE_CHECKING:
    from stream.detection.normal import CameraNormal
    from stream.pipeline import Pipeline

SNAPSHOT_WIDTH = 960          # pixels: snapshots of wider cameras are scaled down to this


class Recent:
    """Each camera's recent verdicts and its open event (an observer of the pipeline): the
    console's score curves and event badges."""

    def __init__(self, keep: int = 1800):      # 1 h of windows at a 2 s stride
        self.keep = keep
        self._verdicts: dict[str, deque[dict]] = {}
        self._open: dict[str, dict] = {}
        self._lock = threading.Lock()

    def observe(self, item: Verdict | Alert) -> None:
        if isinstance(item, Alert):
            with self._lock:
                if item.state == "close":
                    self._open.pop(item.camera, None)
                else:
                    self._open[item.camera] = {"alert_id": item.alert_id, "category": item.category,
                                               "score": round(item.score, 4), "wall_start": item.wall_start}
            return
        row = {"window_id": item.window_id, "start": item.start, "end": item.end, "wall_start": item.wall_start,
               "wall_end": item.wall_end, "score": round(item.score, 4),
               "seconds": [{"start": s.start, "end": s.end, "score": round(s.score, 4), "category": s.category}
                           for s in item.seconds]}
        with self._lock:
            self._verdicts.setdefault(item.camera, deque(maxlen=self.keep)).append(row)

    def scores(self, camera: str, since: float | None = None) -> list[dict]:
        with self._lock:
            rows = list(self._verdicts.get(camera, ()))
        return [r for r in rows if since is None or r["wall_end"] >= since]

    def open_event(self, camera: str) -> dict | None:
        """The camera's event open now (id, category, peak score, since when), or None."""
        with self._lock:
            return self._open.get(camera)

    def score_of(self, camera: str, window_id: int) -> float | None:
        with self._lock:
            rows = self._verdicts.get(camera, ())
            return next((r["score"] for r in reversed(rows) if r["window_id"] == window_id), None)


class Snapshots:
    """A camera's latest scored window: its last frame with the scene drawn on it, as JPEG. Made
    once per window and camera (a console refreshing every second costs one picture per window)."""

    def __init__(self, pipeline: Pipeline, recent: Recent, width: int = SNAPSHOT_WIDTH):
        self.pipeline, self.recent, self.width = pipeline, recent, width
        self._made: dict[tuple[str, bool], tuple[int, bytes]] = {}
        self._lock = threading.Lock()

    def jpeg(self, camera: str, overlay: bool = True) -> bytes | None:
        import cv2

        from stream.scene.render import draw, label
        scene, runner = self.pipeline.last_scene.get(camera), self.pipeline.sources.get(camera)
        if scene is None or runner is None:
            return None
        with self._lock:
            made = self._made.get((camera, overlay))
        if made is not None and made[0] == scene.window_id:
            return made[1]
        image = runner.frame(scene.window_id)
        if image is None:
            return None
        scale = min(1.0, self.width / image.shape[1])
        if overlay:
            image = draw(image, scene, len(scene.timestamps) - 1, scale=scale, trails=True)
            zones = self.pipeline.zones.get(camera)
            if zones is not None:
                zones.draw(image)
            score = self.recent.score_of(camera, scene.window_id)
            if score is not None:
                label(image, f"score {score:.2f}", (4, image.shape[0] - 6), (255, 255, 255))
        elif scale < 1.0:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        with self._lock:
            self._made[(camera, overlay)] = (scene.window_id, data.tobytes())
        return data.tobytes()


def zones_yaml(camera: str, zones: dict[str, ZoneConfig]) -> str:
    """The zones as the config's YAML (to keep what was drawn on the console)."""
    lines = ["cameras:", f"  {camera}:", "    zones:" + ("" if zones else " {}")]
    for name, z in zones.items():
        points = ", ".join(f"[{x:g}, {y:g}]" for x, y in z.points)
        lines.append(f"      {json.dumps(name)}: {{kind: {z.kind}, points: [{points}]}}")
    return "\n".join(lines) + "\n"


class ReadModel:
    def __init__(self, pipeline: Pipeline, reviews: ReviewStore, zone_store: ZoneStore | None = None):
        self._pipeline, self.reviews, self.zone_store = pipeline, reviews, zone_store
        self.recent = Recent()
        pipeline.observers.append(self.recent.observe)
        self.snapshots = Snapshots(pipeline, self.recent)

    # -- cameras ---------------------------------------------------------------------------------
    def camera_ids(self) -> list[str]:
        """Every camera running or still on health (a failed one, until it is removed)."""
        p = self._pipeline
        return sorted(p.sources.keys() | p.last_health.keys())

    def knows(self, camera: str) -> bool:
        return camera in self._pipeline.sources or camera in self._pipeline.last_health

    def health(self) -> list[dict]:
        """Every camera's latest health message with the event open on it (or None)."""
        last = self._pipeline.last_health
        return [{**last[cam], "open_event": self.recent.open_event(cam)} for cam in sorted(last)]

    def health_of(self, camera: str) -> dict:
        return self._pipeline.last_health.get(camera, {})

    def zones_of(self, camera: str) -> Zones | None:
        return self._pipeline.zones.get(camera)

    def set_zones(self, camera: str, zones: dict[str, ZoneConfig]) -> Zones:
        """Replace the camera's zones: the next window's events follow them, and they are kept in
        the zones file (http.zones_file) for the next start (OSError when it cannot be written)."""
        if self.zone_store is not None:
            self.zone_store.save(camera, zones)
        self._pipeline.cameras.drawn_zones[camera] = zones
        self._pipeline.zones[camera] = found = Zones(zones)
        return found

    def snapshot(self, camera: str, overlay: bool = True) -> bytes | None:
        return self.snapshots.jpeg(camera, overlay)

    def scores(self, camera: str, since: float | None = None) -> list[dict]:
        return self.recent.scores(camera, since)

    def thresholds(self, camera: str) -> EventsConfig:
        return self._pipeline.cfg.events_of(camera)

    def in_config(self, camera: str) -> bool:
        return camera in self._pipeline.cfg.cameras

    def normal(self, camera: str) -> CameraNormal:
        """The camera's own normal (its status, and `reset`)."""
        return self._pipeline.normal.of(camera)

    @property
    def chats(self) -> bool:
        """Chat is on in this pipeline."""
        return self._pipeline.chat is not None

    @property
    def talks(self) -> bool:
        """Chat is on and the detector answers questions."""
        return self._pipeline.chat is not None and self._pipeline.chat.talks

    def ask(self, camera: str, question: str, windows: int) -> dict[str, Any]:
        """The chat service's answer (RequestError when it cannot give one)."""
        return self._pipeline.chat.handle({"op": "chat", "camera": camera, "question": question, "windows": windows})

    def live(self, camera: str) -> LiveFeed | None:
        """The camera's live view where its source runs in this process (the local runtime)."""
        source = getattr(self._pipeline.sources.get(camera), "source", None)
        return getattr(source, "live_video", None)

    # -- recordings ------------------------------------------------------------------------------
    def _footage(self, camera: str):
        """The pipeline's recordings where `camera` is recorded, else LookupError saying why."""
        rec = self._pipeline.recordings
        if not self.recorded(camera):
            raise LookupError(f"camera {camera!r} is not recorded (recordings.enabled, cameras.{camera}.record)")
        return rec

    def recorded(self, camera: str) -> bool:
        rec = self._pipeline.recordings
        return rec is not None and camera in rec.cameras

    def recordings(self, camera: str, start: float | None, end: float | None) -> list[dict]:
        """The camera's segments overlapping [start, end], oldest first: their wall-clock span and URL."""
        return [{"start": s.start, "end": s.end, "url": f"/api/cameras/{camera}/recordings/{s.name}"}
                for s in self._footage(camera).segments(camera, start, end)]

    def recording_status(self) -> dict[str, dict]:
        """Each recorded camera's footage as of the last sweep (Recordings.status)."""
        rec = self._pipeline.recordings
        return {cam: rec.status(cam) for cam in rec.cameras} if rec is not None else {}

    def segment_file(self, camera: str, name: str) -> Path | None:
        return next((s.path for s in self._footage(camera).segments(camera) if s.name == name), None)

    def export(self, camera: str, start: float, end: float, out: Path) -> Path:
        """[start, end] of the camera's footage as one MP4 at `out` (ValueError: no footage there)."""
        return self._footage(camera).export(camera, start, end, out)

    # -- events ----------------------------------------------------------------------------------
    def event(self, alert_id: str) -> dict | None:
        """An event's latest message, with its `review` (or None); None when the outbox has no such
        event. A connection per request: requests run on a thread pool."""
        with Reader(self._pipeline.publisher.outbox.path) as r:
            event = r.event(alert_id)
        if event is not None:
            event["review"] = self.reviews.get(alert_id)
        return event

    def events(self, **filters) -> list[dict]:
        """Events, newest first, each its latest message (Reader.events' filters) with its `review`."""
        with Reader(self._pipeline.publisher.outbox.path) as r:
            events = [json.loads(row) for row in r.events(**filters)]
        for event in events:
            event["review"] = self.reviews.get(event["alert_id"])
        return events

    def evidence_file(self, event: dict, kind: str) -> tuple[Path | None, str]:
        """The event's evidence file of `kind` (keyframe, clip) when it is on this machine under
        the evidence folder; else None and why not."""
        item = next((e for e in event.get("evidence", []) if e["kind"] == kind), None)
        if item is None:
            return None, f"event {event['alert_id']} has no {kind} (evidence off, not written yet, or lost)"
        path, folder = Path(item["path"]).resolve(), self._pipeline.cfg.alerts.evidence.folder.resolve()
        if not path.is_relative_to(folder) or not path.is_file():
            return None, f"the {kind} of event {event['alert_id']} is not on this machine ({item['path']})"
        return path, ""

    def review(self, event: dict, label: str, note: str = "", reviewer: str = "") -> dict:
        """Store an operator's review of an event (ReviewError when it is not one); a false alarm
        also joins its camera's normal (the answer's `normal` says what that did)."""
        row = self.reviews.set(event["alert_id"], event["camera"], label, note, reviewer)
        if label == "false_alarm" and self.in_config(event["camera"]):
            row["normal"] = self.normal(event["camera"]).false_alarm(event["alert_id"])
        return row

    def labels(self) -> dict:
        """The reviews as training labels (training/data.py's ground-truth format)."""
        videos = {cam: Path(c.path).name for cam, c in self._pipeline.cfg.cameras.items() if c.path is not None}
        return export_labels(self.reviews, self._pipeline.publisher.outbox.path, videos)

    # -- metrics ---------------------------------------------------------------------------------
    def totals(self) -> dict[str, dict]:
        """Each camera's counters, state, alerts by category and state, and latency histograms."""
        return {cam: stats.totals() for cam, stats in list(self._pipeline.stats.items())}

    def queue_depths(self) -> dict[str, int]:
        p = self._pipeline
        return {"windows": p.windows.qsize(), "scenes": p.scenes.qsize(), "publish": p.to_publish.qsize()}

    def outbox_status(self) -> dict:
        return self._pipeline.publisher.outbox.status()

    def catchup_status(self) -> dict | None:
        query = self._pipeline.publisher.query
        return query.status() if query is not None else None
