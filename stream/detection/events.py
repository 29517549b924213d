"""Turn a camera's per-second scores into events: hysteresis, minimum duration, quiet close, maximum
length and cooldown.

An event opens after `min_duration_s` of seconds at or above `open_threshold` (its span starts at
the first of them) and takes the category most of those seconds name; that category is the event's
for good (a different category is a different event). The seconds that *support* it are those at or
above `open_threshold` of its own category. It closes on the first of:

- `close_after_s` of seconds under `close_threshold` (the scores fell: hysteresis);
- `quiet_after_s` with no supporting second (the evidence stopped growing: scores that hover
  between the two thresholds, or name another category, do not keep an event open for ever);
- `max_event_s` since it opened (it closes, and may open again as a new event);
- another category crossing `open_threshold` for `min_duration_s` (at least SWITCH_S): that one
  opens at once as a new event (its seconds never extend this one).

Its span ends at its last second above `close_threshold` (at its last supporting second when it
closes for quiet). No new event opens for `cooldown_s` after a close. Overlapping windows score some
seconds twice; each second is decided once, by the first window that scores it.
"""
from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, replace
from typing import Callable

from stream.config import EventsConfig
from stream.types import Alert, Evidence, SecondScore, Verdict

_EPS = 1e-6
SWITCH_S = 2.0      # seconds of another category that make it an event of its own (a flicker is not one)


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
    support_end: float                  # the end of its last supporting second
    support_wall: float
    evidence: tuple[Evidence, ...] = ()
    geometry: dict | None = None        # where on the ground (a drone's camera), as last placed


class EventTracker:
    def __init__(self, camera: str, cfg: EventsConfig):
        self.camera, self.cfg = camera, cfg
        self._decided_until = 0.0        # stream time up to which seconds were already decided
        self._run: list[SecondScore] = []    # the seconds at or above open_threshold that may open an event
        self._run_wall: float | None = None
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

        cfg = self.cfg
        for sec in verdict.seconds:
            if sec.start < self._decided_until - _EPS:
                continue
            self._decided_until = sec.end
            if self._open is not None:
                alerts += self._follow(sec, verdict, wall_at)
                if self._open is not None:
                    continue
            if sec.score >= cfg.open_threshold and sec.start >= self._cooldown_until - _EPS and \
                    (admits is None or admits(sec.start, sec.end)):
                if not self._run:
                    self._run_wall = wall_at(sec.start)
                self._run.append(sec)
                if sec.end - self._run[0].start >= cfg.min_duration_s - _EPS:
                    alerts.append(self._start(verdict, wall_at(sec.end)))
            else:
                self._run = []
        return alerts

    def _start(self, verdict: Verdict, wall_end: float) -> Alert:
        """Open an event over the run of seconds that crossed: its category is the one most of them
        name (ties: the one with the highest score)."""
        run = self._run
        votes = Counter(s.category for s in run)
        category = max(votes, key=lambda c: (votes[c], max(s.score for s in run if s.category == c)))
        own = [s for s in run if s.category == category]
        self._open = _Open(str(uuid.uuid4()), category, run[0].start, run[-1].end, self._run_wall, wall_end,
                           max(s.score for s in own), verdict.explanation, own[-1].end, wall_end)
        self._run, self._below_since = [], None
        return self._alert("open", verdict)

    def _follow(self, sec: SecondScore, verdict: Verdict, wall_at) -> list[Alert]:
        """One more second of the open event: extend it, or close it (see the module's rules)."""
        ev, cfg = self._open, self.cfg
        if sec.score >= cfg.open_threshold and sec.category != ev.category:
            # another category: not this event's evidence; held long enough, it is an event of its own
            if self._run and self._run[-1].category != sec.category:
                self._run = []
            if not self._run:
                self._run_wall = wall_at(sec.start)
            self._run.append(sec)
            if sec.end - self._run[0].start >= max(cfg.min_duration_s, SWITCH_S) - _EPS:
                run, run_wall = self._run, self._run_wall
                closed = self._close(verdict, f"{sec.category} began")
                self._run, self._run_wall = run, run_wall
                return [closed, self._start(verdict, wall_at(sec.end))]
            return self._quiet_or_long(verdict, sec.end)
        self._run = []
        if sec.score >= cfg.open_threshold:
            ev.support_end, ev.support_wall = sec.end, wall_at(sec.end)
            if sec.score > ev.peak:
                ev.peak = sec.score
                ev.explanation = verdict.explanation or ev.explanation
        if sec.score >= cfg.close_threshold:
            self._below_since = None
            ev.end, ev.wall_end = sec.end, wall_at(sec.end)
        elif self._below_since is None:
            self._below_since = sec.start
        if self._below_since is not None and sec.end - self._below_since >= cfg.close_after_s - _EPS:
            return [self._close(verdict, "")]
        return self._quiet_or_long(verdict, sec.end)

    def _quiet_or_long(self, verdict: Verdict, now: float) -> list[Alert]:
        ev, cfg = self._open, self.cfg
        if now - ev.support_end >= cfg.quiet_after_s - _EPS:
            ev.end, ev.wall_end = ev.support_end, ev.support_wall
            return [self._close(verdict, "no new evidence")]
        if now - ev.start >= cfg.max_event_s - _EPS:
            return [self._close(verdict, f"longest event ({cfg.max_event_s:g} s)")]
        return []

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

    def placed(self, geometry: dict) -> None:
        """Where the open event is now (a drone's camera: scene/geolocate.py `place`); its later
        messages carry it."""
        if self._open is not None:
            self._open.geometry = geometry

    def _amend(self, alert_id: str, **changes) -> Alert | None:
        """An `update` with what was learnt about the open event `alert_id` (None if it closed, or nothing new)."""
        if self._open is None or self._open.alert_id != alert_id or not all(changes.values()):
            return None
        for field, value in changes.items():
            setattr(self._open, field, value)
        return self._alert("update", None)

    def flush(self, verdict: Verdict | None = None) -> list[Alert]:
        """The stream ended: close the open event, if any."""
        return [self._close(verdict, "")] if self._open is not None else []

    def _close(self, verdict: Verdict | None, reason: str) -> Alert:
        """`reason`: why it closed when not by its scores or the stream's end (the alert says it)."""
        alert = replace(self._alert("close", verdict), reason=reason)
        self._cooldown_until = self._open.end + self.cfg.cooldown_s
        self._open, self._run, self._below_since = None, [], None
        return alert

    def _alert(self, state: str, verdict: Verdict | None) -> Alert:
        ev = self._open
        return Alert(alert_id=ev.alert_id, camera=self.camera, state=state, category=ev.category, score=ev.peak,
                     start=ev.start, end=ev.end, wall_start=ev.wall_start, wall_end=ev.wall_end,
                     explanation=ev.explanation, window_id=verdict.window_id if verdict else -1,
                     latency_ms=dict(verdict.latency_ms) if verdict else {}, evidence=ev.evidence,
                     geometry=ev.geometry)
