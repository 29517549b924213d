"""Sliding windows over a camera's stream: sample frames at a fixed rate, cut windows of a fixed
length every stride, and cover the whole stream exactly (window k spans [k*stride, k*stride+length),
the last one ends where the stream ends).

Stream time a live source missed (an outage, frames lost in the network) arrives as a gap: every
window that overlaps a gap lists it, and a window that lies wholly inside a gap is not emitted at
all (an hour-long outage is not 1,800 empty windows); the next window's `gaps` says what happened."""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable

import numpy as np

from stream.types import Frame, SensorMetadata, Window

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
        self._last: tuple[float, float] | None = None   # (ts, wall) of the newest frame
        self._frame_step = 1.0 / sample_fps
        self.sampled = 0               # frames taken into windows
        self.dropped = 0               # frames lost upstream, charged to the windows that span them
        self._drops: list[float] = []  # their timestamps
        self._gaps: list[tuple[float, float]] = []   # stream time with no frames, not yet past every window
        self.skipped = 0               # windows wholly inside a gap, never emitted

    def _window(self, k: int, end_of_stream: float | None = None) -> Window:
        start = k * self.stride
        end = start + self.length if end_of_stream is None else min(start + self.length, end_of_stream)
        frames = tuple(f for f in self._frames if start - _EPS <= f.ts < end - _EPS)
        drops = sum(1 for t in self._drops if start <= t < end)
        gaps = tuple((max(g0, start), min(g1, end)) for g0, g1 in self._gaps if g0 < end and g1 > start)
        ref_ts, ref_wall = (frames[0].ts, frames[0].wall) if frames else (self._last or (0.0, 0.0))
        return Window(self.camera, k, start, end, frames, drops, gaps=gaps,
                      wall_start=ref_wall + (start - ref_ts), wall_end=ref_wall + (end - ref_ts))

    def note_dropped(self, ts: float) -> None:
        """A frame at `ts` was lost before it reached the assembler (counted in its windows)."""
        self._drops.append(ts)
        self.dropped += 1

    def push(self, seq: int, ts: float, wall: float, pixels: np.ndarray | Callable[[], np.ndarray],
             gap: tuple[float, float] | None = None, sensor: SensorMetadata | None = None) -> list[Window]:
        """Add a frame; `gap` is the stream time with no frames just before it, if the source saw one;
        `sensor` a drone feed's metadata at the frame."""
        last_ts = self._last[0] if self._last else None
        if last_ts is not None and ts <= last_ts:
            raise ValueError(f"camera {self.camera}: timestamps must increase ({ts} after {last_ts})")
        if gap is not None:
            self._gaps.append(gap)
        elif last_ts is not None:
            self._frame_step = ts - last_ts
        self._last = (ts, wall)
        out = []
        # windows that end at or before this frame are complete
        while (self._next_window * self.stride + self.length) <= ts + _EPS:
            window = self._window(self._next_window)
            if window.frames or not any(g0 <= window.start + _EPS and g1 >= window.end - _EPS
                                        for g0, g1 in window.gaps):
                out.append(window)
            else:
                self.skipped += 1
            self._next_window += 1
            self._prune()
        if ts + _EPS >= self._next_sample / self.fps:
            self._frames.append(Frame(self.camera, seq, ts, wall, pixels, sensor))
            self.sampled += 1
            # skip sample times that fell into a gap: the next sample is the next grid point after ts
            self._next_sample = math.floor(ts * self.fps + _EPS) + 1
        return out

    def finish(self) -> list[Window]:
        """The stream ended: emit every window that starts before its end (the last one shortened)."""
        if self._last is None:
            return []
        end = self._last[0] + self._frame_step   # the last frame lasts one frame interval
        out = []
        while self._next_window * self.stride < end - _EPS:
            out.append(self._window(self._next_window, end_of_stream=end))
            self._next_window += 1
        while out and not out[-1].frames and len(out) > 1:   # a sliver past the last sample: nothing to see
            out.pop()
        if out:
            out[-1] = replace(out[-1], final=True)
        self._frames.clear()
        return out

    def _prune(self) -> None:
        oldest = self._next_window * self.stride - _EPS
        self._frames = [f for f in self._frames if f.ts >= oldest]
        self._drops = [t for t in self._drops if t >= oldest]
        self._gaps = [g for g in self._gaps if g[1] > oldest]
