"""A camera's stream time: continuous, monotonic seconds from 0, whatever the PTS does.

Each connection (or each loop of a file) is a *segment*. Inside a segment stream time follows the
decoder's PTS from an anchor; between segments it continues where the last one ended. Live
sources also count the time the camera was away, so that stream time keeps pace with the wall
clock and the outage shows up as a gap. Anything the PTS does that no camera means (a reset to 0,
a 33-bit MPEG-TS wrap-around, a jump of hours, frames without a PTS) re-anchors the segment
instead of bending stream time.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

FILE_MAX_JUMP_S = 60.0    # a file whose PTS jumps further forward than this has a discontinuity, not a gap
NUDGE_S = 0.001           # how far a frame whose PTS did not advance moves stream time
STUCK_FRAMES = 3          # frames in a row without an advancing PTS before the PTS is taken to have stopped


class BestEffortTimestamp:
    """Which of a decoded frame's two timestamps to trust (FFmpeg's guess_correct_pts): its PTS,
    unless the PTS has gone backwards more often than the DTS has, as in files whose B-frames were
    packed out of order (`Megamind_bugy.avi`: PTS 1 2 3 5 4 6 8 7, DTS 1 2 3 4 5 6 7 8); following
    such a PTS would stretch stream time. Reset per connection."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.faulty_pts = self.faulty_dts = 0
        self._last_pts: int | None = None
        self._last_dts: int | None = None

    def __call__(self, pts: int | None, dts: int | None) -> int | None:
        if dts is not None:
            self.faulty_dts += self._last_dts is not None and dts <= self._last_dts
            self._last_dts = dts
        if pts is not None:
            self.faulty_pts += self._last_pts is not None and pts <= self._last_pts
            self._last_pts = pts
        if pts is not None and (dts is None or self.faulty_pts <= self.faulty_dts):
            return pts
        return dts


@dataclass(frozen=True)
class Stamp:
    ts: float                                  # stream seconds of this frame
    gap: tuple[float, float] | None = None     # stream time with no frames just before this one


class StreamClock:
    def __init__(self, camera: str, *, live: bool, gap_s: float = 1.0, nominal_fps: float | None = None):
        self.camera, self.live, self.gap_s = camera, live, gap_s
        self.step = 1.0 / nominal_fps if nominal_fps else 0.04   # current estimate of the frame interval
        self.last_ts: float | None = None
        self._last_arrival = 0.0
        self._anchor: tuple[float, float] | None = None          # (stream ts, pts time) of the segment
        self.discontinuities = 0                                  # re-anchors inside a segment
        self._stuck = 0                                           # frames in a row whose PTS did not advance
        self.gaps = 0

    def set_nominal_fps(self, fps: float | None) -> None:
        """The rate the stream declares; used until two timestamped frames give a measured one."""
        if fps and self.last_ts is None:
            self.step = 1.0 / fps

    def new_segment(self) -> None:
        """A reconnect or a file's next loop: the next frame's PTS starts from a new anchor."""
        self._anchor = None

    @property
    def gap_threshold(self) -> float:
        return max(self.gap_s, 2.5 * self.step)

    def _continue(self, arrival: float) -> float:
        """Where the next frame goes when its PTS says nothing usable: one frame on, or for a live
        source the wall-clock time that passed since the last frame, whichever is later."""
        wall = arrival - self._last_arrival if self.live else 0.0
        return self.last_ts + max(self.step, wall)

    def stamp(self, pts_time: float | None, arrival: float) -> Stamp:
        """Stream time for a frame with this PTS (seconds, or None) that arrived at `arrival`
        (a monotonic clock reading)."""
        if self.last_ts is None:
            ts = 0.0
            self._anchor = (0.0, pts_time) if pts_time is not None else None
        elif pts_time is None:
            ts = self._continue(arrival) if self._anchor is None else self.last_ts + self.step
        elif self._anchor is None:
            ts = self._continue(arrival)
            self._anchor = (ts, pts_time)
        else:
            ts = self._anchor[0] + (pts_time - self._anchor[1])
            delta = ts - self.last_ts
            if self._is_discontinuity(delta, arrival):
                self.discontinuities += 1
                log.info("camera %s: timestamp discontinuity of %+.3f s; stream time continues", self.camera, delta)
                ts = self._continue(arrival)
                self._anchor = (ts, pts_time)
            elif delta <= 0:                      # a repeated or slightly early PTS: keep time moving
                self._stuck += 1
                if self._stuck < STUCK_FRAMES:    # by a nudge, so the next frame's PTS takes over again
                    return self._commit(self.last_ts + NUDGE_S, arrival, measured=False)
                ts = self.last_ts + self.step     # a PTS that stopped: frames go on at the frame rate
                self._anchor = (ts, pts_time)
        self._stuck = 0
        return self._commit(ts, arrival)

    def _is_discontinuity(self, delta: float, arrival: float) -> bool:
        if delta < -self.gap_threshold:
            return True                                       # reset, wrap-around, jump back
        if self.live:                                         # forward further than the wall clock went
            return delta > self.gap_threshold and delta > (arrival - self._last_arrival) + self.gap_threshold
        return delta > FILE_MAX_JUMP_S

    def _commit(self, ts: float, arrival: float, measured: bool = True) -> Stamp:
        """`measured`: the interval to this frame is a real one, a new estimate of the frame interval."""
        gap = None
        if self.last_ts is not None:
            delta = ts - self.last_ts
            if delta > self.gap_threshold:
                gap = (self.last_ts + self.step, ts)
                self.gaps += 1
            elif measured:
                self.step = delta
        self.last_ts, self._last_arrival = ts, arrival
        return Stamp(ts, gap)
