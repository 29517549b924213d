"""The recorded footage on disk (stream/ingest/recorder.py writes it): what is kept, what a time
range exports as, and how the disk stands.

Retention, swept every minute by the pipeline:
- plain footage older than `recordings.keep_days` goes;
- a segment overlapping an event in the outbox (its span, a segment's length either side) is
  kept for `keep_event_days`;
- beyond `max_gb`, or with less than `min_free_gb` free on the disk, the oldest goes first:
  plain footage before events'. A full disk is on every recorded camera's health (`recording`)
  and in /metrics (`hawkwatch_recordings_disk_full`).

An export is the segments covering a range, remuxed into one MP4 (no re-encoding): it starts at
the keyframe at or before the range's start, so it may begin up to a segment's keyframe interval
early."""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

import av

from stream.alerts.outbox import Reader
from stream.config import RecordingsConfig
from stream.ingest.recorder import Segment, recover, segments

log = logging.getLogger(__name__)
GB = 1024 ** 3


class Recordings:
    def __init__(self, cfg: RecordingsConfig, cameras: list[str], outbox: Path | None = None):
        self.cfg, self.cameras, self.outbox = cfg, list(cameras), outbox
        self.folder = Path(cfg.folder)
        self.deleted = 0
        self.problem: str | None = None
        self._status: dict[str, dict] = {}
        self._lock = threading.Lock()
        for camera in self.cameras:
            n = recover(self.folder, camera)
            if n:
                log.info("camera %s: %d recording segment(s) left open by a stop were closed", camera, n)

    # -- what is there -------------------------------------------------------------------------
    def segments(self, camera: str, start: float | None = None, end: float | None = None) -> list[Segment]:
        return segments(self.folder, camera, start, end)

    def free_bytes(self) -> int:
        self.folder.mkdir(parents=True, exist_ok=True)
        st = os.statvfs(self.folder)
        return st.f_bavail * st.f_frsize

    def disk_full(self, free: int | None = None) -> bool:
        return (self.free_bytes() if free is None else free) < self.cfg.min_free_gb * GB

    def status(self, camera: str) -> dict:
        """The camera's footage as of the last sweep (`swept_at`; every minute): segments, bytes,
        oldest and newest times, the disk's free space and whether it is full, and the last problem."""
        with self._lock:
            return dict(self._status.get(camera, {}))

    # -- retention ------------------------------------------------------------------------------
    def _event_spans(self, camera: str, since: float) -> list[tuple[float, float]] | None:
        """The camera's events' spans, padded by a segment; None when the outbox cannot be read."""
        if self.outbox is None or not Path(self.outbox).exists():
            return []
        try:
            with Reader(self.outbox) as r:
                rows = [json.loads(b) for b in r.events(camera=camera, since=since, limit=100_000)]
        except Exception as e:  # noqa: BLE001 - an unreadable outbox keeps footage, never deletes more
            log.warning("recordings: the outbox cannot be read (%s); no footage goes by age until it can", e)
            return None
        pad = self.cfg.segment_s
        return [(float(e["wall_start"]) - pad, float(e.get("wall_end") or time.time()) + pad) for e in rows
                if e.get("wall_start") is not None]

    def sweep(self, now: float | None = None) -> int:
        """Apply retention once; returns how many segments went."""
        now = time.time() if now is None else now
        gone = 0
        keep_plain, keep_event = now - self.cfg.keep_days * 86400, now - self.cfg.keep_event_days * 86400
        candidates = []                     # (is an event's, start, segment) of every closed segment
        for camera in self.cameras:
            spans = self._event_spans(camera, keep_event - 86400)
            for seg in self.segments(camera):
                if seg.end is None:
                    continue
                eventful = spans is None or any(a <= seg.end and seg.start <= b for a, b in spans)
                if spans is not None and seg.end < (keep_event if eventful else keep_plain):
                    gone += self._delete(seg)
                else:
                    candidates.append((eventful, seg.start, seg))
        total = sum(_size(s.path) for _, _, s in candidates)
        free = self.free_bytes()
        candidates.sort(key=lambda c: (c[0], c[1]))       # plain footage first, oldest first
        for _, _, seg in candidates:
            over = self.cfg.max_gb is not None and total > self.cfg.max_gb * GB
            if not over and free >= self.cfg.min_free_gb * GB:
                break
            size = _size(seg.path)
            if self._delete(seg):
                gone, total, free = gone + 1, total - size, free + size
        self.deleted += gone
        self._refresh_status(free)
        return gone

    def _delete(self, seg: Segment) -> int:
        try:
            seg.path.unlink()
        except FileNotFoundError:
            return 0
        except OSError as e:
            self.problem = f"cannot delete {seg.path}: {e.strerror or e}"
            return 0
        parent = seg.path.parent
        try:
            if not any(parent.iterdir()):
                parent.rmdir()
        except OSError:
            pass
        return 1

    def _refresh_status(self, free: int) -> None:
        full = self.disk_full(free)
        out = {}
        for camera in self.cameras:
            found = self.segments(camera)
            out[camera] = {"segments": len(found), "bytes": sum(_size(s.path) for s in found),
                           "oldest": found[0].start if found else None,
                           "newest": (found[-1].end or time.time()) if found else None,
                           "free_gb": round(free / GB, 2), "disk_full": full, "problem": self.problem,
                           "swept_at": round(time.time(), 3)}
        with self._lock:
            self._status = out
        if full:
            log.warning("recordings: under %.1f GB free on %s: the oldest footage goes first", self.cfg.min_free_gb,
                        self.folder)

    def start(self) -> None:
        """Sweep on a thread of its own until `close` (a pipeline service)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.run, args=(self._stop,), name="recordings", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if getattr(self, "_thread", None) is not None:
            self._stop.set()
            self._thread.join(timeout=10.0)

    def run(self, stop: threading.Event, every_s: float = 60.0) -> None:
        """Sweep now and every `every_s` until `stop` (the pipeline's recordings thread)."""
        while True:
            try:
                self.sweep()
            except Exception as e:  # noqa: BLE001 - retention must not take the pipeline down
                self.problem = f"{type(e).__name__}: {e}"
                log.exception("recordings: sweep failed")
            if stop.wait(every_s):
                return

    # -- export ---------------------------------------------------------------------------------
    def export(self, camera: str, start: float, end: float, out: Path) -> Path:
        """[start, end] of the camera's footage as one MP4 at `out`, remuxed: from the keyframe at
        or before `start`. ValueError when the range holds no footage."""
        found = [s for s in self.segments(camera, start, end) if s.end is not None]
        if not found:
            raise ValueError(f"no recording of camera {camera!r} between {_clock(start)} and {_clock(end)}")
        out.parent.mkdir(parents=True, exist_ok=True)
        written, offset = 0, 0.0           # packets written; seconds of output before this segment
        with av.open(str(out), "w", format="mp4", options={"movflags": "+faststart"}) as sink:
            target = None
            for i, seg in enumerate(found):
                begin = _keyframe_at_or_before(seg, start) if i == 0 else None
                with av.open(str(seg.path)) as src:
                    stream = src.streams.video[0]
                    target = target or sink.add_stream_from_template(stream)
                    tb = float(stream.time_base)
                    first, played = None, 0.0
                    for packet in src.demux(stream):
                        if packet.dts is None or (begin is not None and packet.dts < begin):
                            continue
                        if seg.start + packet.dts * tb > end:
                            break
                        first = packet.dts if first is None else first
                        shift = round(offset / tb) - first
                        pts = packet.pts if packet.pts is not None else packet.dts
                        played = max(played, (packet.dts - first + (packet.duration or 0)) * tb)
                        packet.dts, packet.pts = packet.dts + shift, pts + shift
                        packet.stream = target
                        sink.mux(packet)
                        written += 1
                    offset += played
        if not written:
            out.unlink(missing_ok=True)
            raise ValueError(f"no recording of camera {camera!r} between {_clock(start)} and {_clock(end)}")
        return out


def _keyframe_at_or_before(seg: Segment, start: float) -> int | None:
    """The dts of the segment's last keyframe at or before wall time `start` (its first keyframe
    when none is), so an export starts on a picture that decodes."""
    chosen = None
    with av.open(str(seg.path)) as src:
        stream = src.streams.video[0]
        tb = float(stream.time_base)
        for packet in src.demux(stream):
            if packet.dts is None or not packet.is_keyframe:
                continue
            if chosen is None or seg.start + packet.dts * tb <= start:
                chosen = packet.dts
            else:
                break
    return chosen


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _clock(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
