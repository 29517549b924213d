"""One camera's ingest stage: its source's frames cut into sliding windows.

The stage knows nothing of who runs it: a thread of the local pipeline or a camera actor on a
Ray cluster calls `run` with a function that takes each window, and gets back why the stream
ended. Its counters go to the camera's `CameraStats`; an evidence ring, when given, keeps the
frames clips are cut from.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Callable

import numpy as np

from stream.frames import FrameRing
from stream.config import WindowConfig
from stream.ingest.source import SourceError, VideoSource
from stream.ingest.windows import WindowAssembler
from stream.metrics import CameraStats
from stream.redact import redact
from stream.types import Frame, Window

log = logging.getLogger(__name__)

KEEP_FRAMES = 32     # at most this many windows' last frames stay at hand (those not scored yet, and the last one)


class CameraIngest:
    def __init__(self, source: VideoSource, windows: WindowConfig, stats: CameraStats,
                 ring: FrameRing | None = None):
        self.source, self.stats, self.ring = source, stats, ring
        self.camera = source.camera
        self.assembler = WindowAssembler(source.camera, windows.length_s, windows.stride_s, windows.sample_fps)
        self._last_frames: OrderedDict[int, Frame] = OrderedDict()   # window id -> its last sampled frame
        self._frames_lock = threading.Lock()

    def run(self, emit: Callable[[Window], bool]) -> str:
        """Decode until the source ends, handing each completed window to `emit` (which returns
        False to stop early); the stream's last windows follow its end. Returns the end reason
        ("finished", "duration", "stopped", "failed: ...")."""
        source, stats, asm, ring = self.source, self.stats, self.assembler, self.ring
        reason = "finished"
        going = True
        try:
            for frame in source.frames():
                stats.declared_fps = source.declared_fps
                sampled, skipped = asm.sampled, asm.skipped
                pixels = _once(frame.pixels) if ring is not None else frame.pixels
                windows = asm.push(frame.seq, frame.ts, frame.wall, pixels, frame.gap, frame.sensor)
                if ring is not None:
                    ring.offer(frame.ts, frame.wall, pixels, sampled=asm.sampled > sampled)
                stats.count("frames_decoded")
                stats.count("frames_sampled", asm.sampled - sampled)
                stats.count("windows_skipped", asm.skipped - skipped)
                stats.count("gaps", frame.gap is not None)
                stats.stream_time = frame.ts
                for window in windows:
                    going = self._emit(window, emit) and going
                if not going:
                    break
            reason = source.end_reason
        except SourceError as e:
            log.error("%s", e)
            reason = f"failed: {e}"
        except Exception as e:   # a bug in ingest must not take the other cameras down
            log.exception("camera %s: ingest failed", self.camera)
            reason = redact(f"failed: {type(e).__name__}: {e}")
        if ring is not None:
            ring.end()
        for window in asm.finish():
            self._emit(window, emit)
        return reason

    def _emit(self, window: Window, emit: Callable[[Window], bool]) -> bool:
        self.stats.count("windows_emitted")
        if window.frames:
            with self._frames_lock:
                self._last_frames[window.window_id] = window.frames[-1]
                while len(self._last_frames) > KEEP_FRAMES:
                    self._last_frames.popitem(last=False)
        return emit(window)

    def frame(self, window_id: int) -> np.ndarray | None:
        """The last sampled frame of a recent window (the console's snapshot under its scene), or
        None when it was released, is older than the last KEEP_FRAMES or had no frames."""
        with self._frames_lock:
            frame = self._last_frames.get(window_id)
        return frame.image if frame is not None else None

    def scored(self, window_id: int) -> None:
        """The pipeline has scored `window_id`: the frames of earlier windows are let go."""
        with self._frames_lock:
            while self._last_frames and next(iter(self._last_frames)) < window_id:
                self._last_frames.popitem(last=False)

    def counters(self) -> dict[str, int]:
        """The source's own counters, for health."""
        rec = self.source.recorder
        return {"reconnects": self.source.reconnects, "decode_errors": self.source.decode_errors,
                "segments_recorded": rec.segments_written if rec else 0, "recording_faults": rec.faults if rec else 0,
                "klv_packets": self.source.klv.packets, "klv_damaged": self.source.klv.rejected(),
                "klv_out_of_order": self.source.klv.out_of_order}


def _once(make: Callable[[], np.ndarray]) -> Callable[[], np.ndarray]:
    """`make`, called at most once (the windows and the evidence ring share a frame's conversion)."""
    made: list[np.ndarray] = []

    def image() -> np.ndarray:
        if not made:
            made.append(make())
        return made[0]
    return image
