"""Evidence for alerts: every opened event saves a keyframe (a JPEG with the scene overlay) and an
MP4 clip around its span, and the alert carries their paths and sha256.

The models see 2 frames a second; an operator wants to see more. So each camera's ingest thread
keeps a short ring of JPEG-encoded frames (`stream/frames.py`'s `FrameRing`: `fps` a second, plus every frame the
windows sample, for `buffer_s` seconds of stream time). When an event opens, `EvidenceWriter`'s
own thread waits until the ring holds `post_s` past the span (or the camera ended, or `wait_s`
passed), cuts [start - pre_s, end + post_s] out of it and writes both files atomically (a temporary
name, then a rename) under `folder/<camera>/<date>/`. Old files go by age and by total size.

Nothing here is on the scoring path: a slow disk delays the evidence, never an alert.
"""
from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engines import file_sha256
from stream.config import EvidenceConfig
from stream.scene.render import Mp4Writer, draw, label
from stream.frames import FrameRing, Stored
from stream.types import Alert, Evidence, SceneGraph, Verdict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Job:
    ring: FrameRing
    scene: SceneGraph
    verdict: Verdict
    alert: Alert


class EvidenceWriter:
    """Writes evidence on its own thread; `results` yields (camera, alert id, evidence) for every
    submitted alert, an empty tuple when nothing could be written (the reason is logged)."""

    def __init__(self, cfg: EvidenceConfig):
        self.cfg = cfg
        self.folder = Path(cfg.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._rings: dict[str, FrameRing] = {}
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self.results: queue.SimpleQueue[tuple[str, str, tuple[Evidence, ...]]] = queue.SimpleQueue()
        self._written = 0
        self.prune()
        self._thread = threading.Thread(target=self._run, name="evidence", daemon=True)
        self._thread.start()

    def ring(self, camera: str) -> FrameRing:
        """A fresh ring for a camera whose stream (re)starts."""
        self._rings[camera] = FrameRing(camera, self.cfg)
        return self._rings[camera]

    def submit(self, scene: SceneGraph, verdict: Verdict, alert: Alert) -> bool:
        """Queue an opened alert's evidence; False (nothing will come) if the camera keeps no ring."""
        ring = self._rings.get(alert.camera)
        if ring is None:
            return False
        self._jobs.put(_Job(ring, scene, verdict, alert))
        return True

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=30.0)

    # -- the writer thread -----------------------------------------------------------------------
    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            evidence: tuple[Evidence, ...] = ()
            try:
                evidence = self.write(job)
            except Exception:  # noqa: BLE001 - evidence is never worth the alert
                log.exception("evidence for alert %s failed", job.alert.alert_id[:8])
            self.results.put((job.alert.camera, job.alert.alert_id, evidence))

    def write(self, job: _Job) -> tuple[Evidence, ...]:
        a, cfg = job.alert, self.cfg
        job.ring.wait_for(a.end + cfg.post_s, cfg.wait_s)
        frames = job.ring.between(a.start - cfg.pre_s, a.end + cfg.post_s)
        if not frames:
            log.warning("no frames of %.1f-%.1f s kept for alert %s (evidence.buffer_s %.0f)",
                        a.start, a.end, a.alert_id[:8], cfg.buffer_s)
            return ()
        day = time.strftime("%Y-%m-%d", time.localtime(a.wall_start or time.time()))
        base = self.folder / a.camera / day / a.alert_id     # camera ids are file-name safe (config.CameraId)
        base.parent.mkdir(parents=True, exist_ok=True)
        out = [self._keyframe(job, frames, base.with_suffix(".jpg")), self._clip(frames, base.with_suffix(".mp4"))]
        self._written += 1
        if self._written % 20 == 0:
            self.prune()
        return tuple(e for e in out if e is not None)

    def _keyframe(self, job: _Job, frames: list[Stored], path: Path) -> Evidence | None:
        """The sampled frame nearest the middle of the event's highest-scoring second in the window
        that opened it, with what the scene stage saw drawn on it."""
        a, scene = job.alert, job.scene
        inside = [s for s in job.verdict.seconds if s.end > a.start and s.start < a.end] or list(job.verdict.seconds)
        peak = max(inside, key=lambda s: s.score) if inside else None
        at = (peak.start + peak.end) / 2 if peak else (a.start + a.end) / 2
        t = int(np.argmin(np.abs(scene.timestamps - at))) if len(scene.timestamps) else None
        want = float(scene.timestamps[t]) if t is not None else at
        ts = [f.ts for f in frames]
        i = min(range(len(frames)), key=lambda k: abs(ts[k] - want))
        img = cv2.imdecode(np.frombuffer(frames[i].jpeg, np.uint8), cv2.IMREAD_COLOR)
        if t is not None and abs(ts[i] - want) < 1e-3:    # the frame the models saw: draw what they saw
            img = draw(img, scene, t, trails=True)
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(frames[i].wall))
            label(img, f"{a.category} {a.score:.2f}  alert {a.alert_id[:8]}  {when}", (4, 40), (80, 80, 255), 0.55)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, self.cfg.jpeg_quality])
        if not ok:
            return None
        data = buf.tobytes()
        _atomic_write(path, data)
        return Evidence("keyframe", str(path), hashlib.sha256(data).hexdigest(), len(data))

    def _clip(self, frames: list[Stored], path: Path) -> Evidence:
        tmp = path.with_name(f".{path.name}.tmp")
        writer = Mp4Writer(tmp, self.cfg.fps, container_format="mp4")
        try:
            for f in frames:
                writer.write(cv2.imdecode(np.frombuffer(f.jpeg, np.uint8), cv2.IMREAD_COLOR), ts=f.ts)
        finally:
            writer.close()
        os.replace(tmp, path)
        return Evidence("clip", str(path), file_sha256(path), path.stat().st_size)

    def prune(self) -> None:
        """Retention: files older than max_age_days go, then the oldest until under max_mb."""
        stats = [(p, p.stat()) for p in self.folder.rglob("*") if p.is_file()]
        files = sorted((st.st_mtime, st.st_size, p) for p, st in stats)
        now, total = time.time(), sum(s for _, s, _ in files)
        limit = self.cfg.max_mb * 1e6 if self.cfg.max_mb is not None else float("inf")
        cutoff = now - self.cfg.max_age_days * 86400 if self.cfg.max_age_days is not None else float("-inf")
        removed = 0
        for mtime, size, p in files:
            if mtime >= cutoff and total <= limit:
                break
            p.unlink(missing_ok=True)
            total -= size
            removed += 1
        if removed:
            log.info("evidence retention removed %d files", removed)
            for d in sorted((d for d in self.folder.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts)):
                if not any(d.iterdir()):
                    d.rmdir()


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
