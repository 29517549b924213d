"""Sliding windows over a camera's stream: sample frames at a fixed rate, cut windows of a fixed
length every stride, and cover the whole stream exactly (window k spans [k*stride, k*stride+length),
the last one ends where the stream ends)."""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable

import numpy as np

from stream.types import Frame, Window

_EPS = 1e-6


class WindowAssembler:
    """Feed every decoded frame with `push`; it returns the windows that completed.

    `push` takes the image or a callable that makes it: only sampled frames are ever converted,
    and only when a later stage first reads `Frame.image`."""

    def __init__(self, camera: str, length_s: float, stride_s: float, sample_fps: float):
        if not 0 < stride_s <= length_s:
            raise ValueError("need 0 < stride_s <= length_s")
        self.camera, self.length, self.stride, self.fps = camera, length_s, stride_s, sample_fps
        self._next_sample = 0          # index k of the next sample time k / fps
        self._next_window = 0          # id of the oldest window not yet emitted
        self._frames: list[Frame] = []  # sampled frames not yet past every window that needs them
        self._last_ts: float | None = None
        self._frame_step = 1.0 / sample_fps
        self.sampled = 0               # frames taken into windows
        self.dropped = 0               # frames lost upstream, charged to the windows that span them
        self._drops: list[float] = []  # their timestamps

    def _window(self, k: int, end_of_stream: float | None = None) -> Window:
        start = k * self.stride
        end = start + self.length if end_of_stream is None else min(start + self.length, end_of_stream)
        frames = tuple(f for f in self._frames if start - _EPS <= f.ts < end - _EPS)
        drops = sum(1 for t in self._drops if start <= t < end)
        return Window(self.camera, k, start, end, frames, drops)

    def note_dropped(self, ts: float) -> None:
        """A frame at `ts` was lost before it reached the assembler (counted in its windows)."""
        self._drops.append(ts)
        self.dropped += 1

    def push(self, seq: int, ts: float, wall: float, pixels: np.ndarray | Callable[[], np.ndarray]) -> list[Window]:
        if self._last_ts is not None and ts <= self._last_ts:
            raise ValueError(f"camera {self.camera}: timestamps must increase ({ts} after {self._last_ts})")
        if self._last_ts is not None:
            self._frame_step = ts - self._last_ts
        self._last_ts = ts
        out = []
        # windows that end at or before this frame are complete
        while (self._next_window * self.stride + self.length) <= ts + _EPS:
            out.append(self._window(self._next_window))
            self._next_window += 1
            self._prune()
        if ts + _EPS >= self._next_sample / self.fps:
            self._frames.append(Frame(self.camera, seq, ts, wall, pixels))
            self.sampled += 1
            # skip sample times that fell into a gap: the next sample is the next grid point after ts
            self._next_sample = math.floor(ts * self.fps + _EPS) + 1
        return out

    def finish(self) -> list[Window]:
        """The stream ended: emit every window that starts before its end (the last one shortened)."""
        if self._last_ts is None:
            return []
        end = self._last_ts + self._frame_step   # the last frame lasts one frame interval
        out = []
        while self._next_window * self.stride < end - _EPS:
            out.append(self._window(self._next_window, end_of_stream=end))
            self._next_window += 1
        if out:
            out[-1] = replace(out[-1], final=True)
        self._frames.clear()
        return out

    def _prune(self) -> None:
        oldest = self._next_window * self.stride - _EPS
        self._frames = [f for f in self._frames if f.ts >= oldest]
        self._drops = [t for t in self._drops if t >= oldest]
