"""Turn a camera's per-second scores into events: hysteresis, minimum duration, hold and cooldown.

An event opens after `min_duration_s` of seconds at or above `open_threshold` (its span starts at
the first of them), closes after `close_after_s` of seconds under `close_threshold` (its span ends
at the last second above it), and no new event opens for `cooldown_s` after a close. Overlapping
windows score some seconds twice; each second is decided once, by the first window that scores it.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Callable

from stream.config import EventsConfig
from stream.types import Alert, Evidence, Verdict

_EPS = 1e-6


@dataclass
class _Open:
    alert_id: str
    category: str
    start: float
    end: float
    wall_start: float
    wall_end: float
    peak: float
    explanation: str
    evidence: tuple[Evidence, ...] = ()


class EventTracker:
    def __init__(self, camera: str, cfg: EventsConfig):
        self.camera, self.cfg = camera, cfg
        self._decided_until = 0.0        # stream time up to which seconds were already decided
        self._above_since: float | None = None
        self._above_wall: float | None = None
        self._below_since: float | None = None
        self._cooldown_until = float("-inf")
        self._open: _Open | None = None

    def update(self, verdict: Verdict, admits: Callable[[float, float], bool] | None = None) -> list[Alert]:
        """The alerts this window's seconds cause. `admits(start, end)`: whether an event may open in
        that second (the camera's zones); None: anywhere."""
        alerts = []
        span = max(verdict.end - verdict.start, _EPS)

        def wall_at(t: float) -> float:   # wall clock of stream time t, interpolated over the window
            return verdict.wall_start + (verdict.wall_end - verdict.wall_start) * (t - verdict.start) / span

        for sec in verdict.seconds:
            if sec.start < self._decided_until - _EPS:
                continue
            self._decided_until = sec.end
            if self._open is None:
                if sec.score >= self.cfg.open_threshold and sec.start >= self._cooldown_until - _EPS and \
                        (admits is None or admits(sec.start, sec.end)):
                    if self._above_since is None:
                        self._above_since, self._above_wall = sec.start, wall_at(sec.start)
                    if sec.end - self._above_since >= self.cfg.min_duration_s - _EPS:
                        self._open = _Open(str(uuid.uuid4()), sec.category, self._above_since, sec.end,
                                           self._above_wall, wall_at(sec.end), sec.score, verdict.explanation)
                        alerts.append(self._alert("open", verdict))
                else:
                    self._above_since = None
                continue
            ev = self._open
            if sec.score >= self.cfg.close_threshold:
                self._below_since = None
                if sec.score >= ev.peak:
                    ev.peak, ev.category = sec.score, sec.category
                    ev.explanation = verdict.explanation or ev.explanation
                ev.end, ev.wall_end = sec.end, wall_at(sec.end)
            else:
                if self._below_since is None:
                    self._below_since = sec.start
                if sec.end - self._below_since >= self.cfg.close_after_s - _EPS:
                    alerts.append(self._close(verdict))
        return alerts

    @property
    def is_open(self) -> bool:
        return self._open is not None

    def explained(self, alert_id: str, text: str) -> Alert | None:
        """An explanation generated for an event: an `update` alert carrying it, if the event is
        still open (an explanation that arrives after the close is dropped; the close said the rest)."""
        return self._amend(alert_id, explanation=text)

    def evidenced(self, alert_id: str, evidence: tuple[Evidence, ...]) -> Alert | None:
        """An open event's saved files: an `update` alert carrying them; later messages carry them too."""
        return self._amend(alert_id, evidence=evidence)

    def _amend(self, alert_id: str, **changes) -> Alert | None:
        """An `update` with what was learnt about the open event `alert_id` (None if it closed, or nothing new)."""
        if self._open is None or self._open.alert_id != alert_id or not all(changes.values()):
            return None
        for field, value in changes.items():
            setattr(self._open, field, value)
        return self._alert("update", None)

    def flush(self, verdict: Verdict | None = None) -> list[Alert]:
        """The stream ended: close the open event, if any."""
        return [self._close(verdict)] if self._open is not None else []

    def _close(self, verdict: Verdict | None) -> Alert:
        alert = self._alert("close", verdict)
        self._cooldown_until = self._open.end + self.cfg.cooldown_s
        self._open, self._above_since, self._below_since = None, None, None
        return alert

    def _alert(self, state: str, verdict: Verdict | None) -> Alert:
        ev = self._open
        return Alert(alert_id=ev.alert_id, camera=self.camera, state=state, category=ev.category, score=ev.peak,
                     start=ev.start, end=ev.end, wall_start=ev.wall_start, wall_end=ev.wall_end,
                     explanation=ev.explanation, window_id=verdict.window_id if verdict else -1,
                     latency_ms=dict(verdict.latency_ms) if verdict else {}, evidence=ev.evidence)
