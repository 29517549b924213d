"""A camera's recent frames as JPEGs, for the evidence of its alerts: written by the camera's ingest
thread, read by the evidence writer (stream/alerts/evidence.py). Both stages use it, so it sits below them."""
from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from stream.config import EvidenceConfig


@dataclass(frozen=True)
class Stored:
    ts: float        # stream seconds
    wall: float
    jpeg: bytes


class FrameRing:
    """The last `buffer_s` seconds of one camera, as JPEGs; written by the camera's ingest thread,
    read by the evidence thread."""

    def __init__(self, camera: str, cfg: EvidenceConfig):
        self.camera, self.cfg = camera, cfg
        self._frames: deque[Stored] = deque()
        self._next = 0.0                  # stream time of the next frame the ring takes on its own grid
        self._cond = threading.Condition()
        self.ended = False

    def offer(self, ts: float, wall: float, image: Callable[[], np.ndarray], sampled: bool) -> None:
        """Keep a decoded frame if it is due on the ring's grid or the windows sampled it; `image`
        makes its BGR picture (called only if it is kept)."""
        if not sampled and ts + 1e-6 < self._next:
            return
        if ts + 1e-6 >= self._next:
            self._next = (math.floor(ts * self.cfg.fps + 1e-6) + 1) / self.cfg.fps
        ok, buf = cv2.imencode(".jpg", image(), [cv2.IMWRITE_JPEG_QUALITY, self.cfg.jpeg_quality])
        if not ok:
            return
        with self._cond:
            self._frames.append(Stored(ts, wall, buf.tobytes()))
            while self._frames and self._frames[0].ts < ts - self.cfg.buffer_s:
                self._frames.popleft()
            self._cond.notify_all()

    def end(self) -> None:
        """The camera's stream ended: nobody waits for frames that will not come."""
        with self._cond:
            self.ended = True
            self._cond.notify_all()

    def wait_for(self, ts: float, timeout_s: float) -> None:
        """Until the ring holds a frame at or after `ts`, the stream ended, or `timeout_s` passed."""
        with self._cond:
            self._cond.wait_for(lambda: self.ended or (self._frames and self._frames[-1].ts >= ts), timeout_s)

    def between(self, t0: float, t1: float) -> list[Stored]:
        with self._cond:
            return [f for f in self._frames if t0 - 1e-6 <= f.ts <= t1 + 1e-6]
