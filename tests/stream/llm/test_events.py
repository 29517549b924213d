"""Hysteresis over per-second scores."""
import pytest

from stream.config import EventsConfig
from stream.llm.events import EventTracker
from stream.types import SecondScore, Verdict


def verdicts(scores, length=4, stride=4):
    """Windows over a per-second score sequence (overlapping when stride < length)."""
    out = []
    k = 0
    while k * stride < len(scores):
        start = k * stride
        secs = tuple(SecondScore(float(t), float(t + 1), scores[t], "running")
                     for t in range(start, min(start + length, len(scores))))
        out.append(Verdict("cam", k, float(start), float(start + len(secs)), 1000.0 + start,
                           1000.0 + start + len(secs), max(s.score for s in secs), secs, {}, "why", "baseline", 1))
        k += 1
    return out


def run(scores, **cfg):
    tracker = EventTracker("cam", EventsConfig(**cfg))
    alerts = [a for v in verdicts(scores, **{}) for a in tracker.update(v)]
    return alerts + tracker.flush()


def test_an_event_opens_after_min_duration_and_closes_after_the_hold():
    scores = [0.1, 0.7, 0.8, 0.9, 0.5, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
    alerts = run(scores, min_duration_s=2.0, close_after_s=2.0)
    assert [a.state for a in alerts] == ["open", "close"]
    op, cl = alerts
    assert op.alert_id == cl.alert_id and op.start == 1.0 and op.end == 3.0
    assert (cl.start, cl.end) == (1.0, 5.0)       # grounded span: first to last second above close
    assert cl.score == 0.9 and cl.wall_start == pytest.approx(1001.0)


def test_a_single_spike_shorter_than_min_duration_opens_nothing():
    assert run([0.1, 0.95, 0.1, 0.1], min_duration_s=2.0) == []


def test_scores_between_the_thresholds_keep_an_event_open():
    alerts = run([0.9, 0.9, 0.5, 0.5, 0.5, 0.5, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1], min_duration_s=1.0, close_after_s=2.0)
    assert [a.state for a in alerts] == ["open", "close"] and alerts[1].end == 7.0


def test_cooldown_suppresses_a_new_event_right_after_a_close():
    scores = [0.9, 0.1, 0.1, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1, 0.9, 0.9]
    alerts = run(scores, min_duration_s=1.0, close_after_s=1.0, cooldown_s=4.0)
    opens = [a.start for a in alerts if a.state == "open"]
    assert opens == [0.0, 10.0]


def test_the_end_of_the_stream_closes_an_open_event():
    alerts = run([0.9, 0.9, 0.9, 0.9], min_duration_s=1.0)
    assert [a.state for a in alerts] == ["open", "close"] and alerts[1].end == 4.0


def test_overlapping_windows_decide_each_second_once():
    scores = [0.1, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1]
    tracker = EventTracker("cam", EventsConfig(min_duration_s=2.0, close_after_s=2.0))
    alerts = [a for v in verdicts(scores, length=4, stride=2) for a in tracker.update(v)]
    assert [a.state for a in alerts] == ["open", "close"] and alerts[1].start == 1.0
