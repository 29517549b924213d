"""Each camera's counters (the one list of them: COUNTERS), latency percentiles and histograms,
and its health message (`CameraStats.health`); /metrics (stream/http/operations.py) reads the same."""
from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

from stream.redact import redact


class Latency:
    """The last `keep` samples of one stage's latency, in milliseconds."""

    def __init__(self, keep: int = 512):
        self._samples: deque[float] = deque(maxlen=keep)

    def add(self, ms: float) -> None:
        self._samples.append(ms)

    def summary(self) -> dict[str, float] | None:
        if not self._samples:
            return None
        p50, p95 = np.percentile(np.fromiter(self._samples, float), [50, 95])
        return {"p50": round(float(p50), 2), "p95": round(float(p95), 2), "n": len(self._samples)}


LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)   # Prometheus histogram bounds


INGEST_COUNTERS = {   # a camera's ingest counters (its ingest stage's, wherever it runs) -> what /metrics says
    "frames_decoded": "Frames decoded.", "frames_sampled": "Frames sampled into windows (what the models see).",
    "windows_emitted": "Windows cut.",
    "windows_dropped": "Windows dropped because the stages behind fell behind (live cameras).",
    "windows_skipped": "Windows wholly inside a gap, never cut.", "gaps": "Stretches of stream time the camera sent nothing for.",
    "reconnects": "Connection attempts after the first, refused ones too (a file's loops are none).", "decode_errors": "Packets the decoder rejected.",
    "segments_recorded": "Recording segments written (recordings).",
    "recording_faults": "Recording faults: a full disk, a folder gone (detection goes on).",
    "klv_packets": "A drone feed's KLV metadata packets read (MISB ST 0601).",
    "klv_damaged": "KLV packets rejected: bad checksum, truncated, impossible length, malformed (the video goes on).",
    "klv_out_of_order": "KLV packets whose time went backwards (not applied).",
}
COUNTERS = {**INGEST_COUNTERS, "windows_done": "Windows scored.", "alerts": "Alert messages published."}


class CameraStats:
    """Written by the stage threads, read by the health loop (under a lock)."""

    COUNTERS = tuple(COUNTERS)

    def __init__(self, camera: str, kind: str = "file", target: str = ""):
        self.camera, self.kind, self.target = camera, kind, target
        self.state = "starting"
        self.detail: str | None = None
        self.declared_fps: float | None = None
        self.stream_time = 0.0
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(self.COUNTERS, 0)
        self._latency: dict[str, Latency] = {}
        self._histograms: dict[str, list] = {}      # stage -> [count per bucket (+Inf last), sum in seconds]
        self.alerts_by_category: dict[tuple[str, str], int] = {}   # (category, state) -> alerts published
        self._last = (time.monotonic(), 0.0, dict(self._counts))

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def set(self, name: str, value: int) -> None:
        with self._lock:
            self._counts[name] = value

    def latency(self, stage: str, ms: float) -> None:
        with self._lock:
            self._latency.setdefault(stage, Latency()).add(ms)
            counts, total = self._histograms.setdefault(stage, [[0] * (len(LATENCY_BUCKETS_S) + 1), 0.0])
            counts[next((i for i, b in enumerate(LATENCY_BUCKETS_S) if ms / 1000.0 <= b), len(LATENCY_BUCKETS_S))] += 1
            self._histograms[stage][1] = total + ms / 1000.0

    def alert(self, category: str, state: str) -> None:
        with self._lock:
            self.alerts_by_category[(category, state)] = self.alerts_by_category.get((category, state), 0) + 1

    def totals(self) -> dict:
        """Counters, latency histograms and alerts by category as they stand (for /metrics; unlike
        `snapshot`, reading them changes nothing)."""
        with self._lock:
            return {"counts": dict(self._counts), "state": self.state,
                    "histograms": {k: (list(v[0]), v[1]) for k, v in self._histograms.items()},
                    "alerts": dict(self.alerts_by_category)}

    def health(self, counters: dict[str, int], state: str | None = None, detail: str | None = None) -> dict:
        """The camera's health message (all but what the coordinator adds: queues, endpoints, its
        normal, the runtime): its runner's latest counters taken in, then `snapshot`, with the state
        it changed to when this reports a change (even if it has moved on since), and credentials
        taken out of the detail and the target."""
        for name, value in counters.items():
            self.set(name, value)
        snap = self.snapshot()
        if state is not None:
            snap["state"], snap["detail"] = state, detail
        snap["detail"] = redact(snap["detail"]) if snap["detail"] else snap["detail"]
        snap["target"] = redact(snap["target"])
        return snap

    def snapshot(self) -> dict:
        """Totals, rates since the previous snapshot, and latency percentiles. `measured_fps` is
        frames per second of stream time (what the camera really sends, against `declared_fps`);
        `fps_in` is frames decoded per wall-clock second (above it during a fast replay)."""
        with self._lock:
            now, stream_time, counts = time.monotonic(), self.stream_time, dict(self._counts)
            then, stream_then, before = self._last
            self._last = (now, stream_time, counts)
            lat = {k: v.summary() for k, v in self._latency.items()}
        dt = max(now - then, 1e-6)
        frames = counts["frames_decoded"] - before["frames_decoded"]
        stream_dt = stream_time - stream_then
        return {
            "state": self.state, "detail": self.detail, "source": self.kind, "target": self.target,
            "stream_time": round(stream_time, 3), "declared_fps": self.declared_fps,
            "measured_fps": round(frames / stream_dt, 2) if stream_dt > 0 else None,
            "fps_in": round(frames / dt, 2),
            "fps_out": round((counts["frames_sampled"] - before["frames_sampled"]) / dt, 2),
            **counts, "latency_ms": {k: v for k, v in lat.items() if v},
        }
