"""Hysteresis over per-second scores."""
import pytest

from stream.config import EventsConfig
from stream.detection.events import EventTracker
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


def categorised(pairs):
    """One window per second: (score, category) pairs."""
    return [Verdict("cam", t, float(t), float(t + 1), 1000.0 + t, 1001.0 + t, s, (SecondScore(float(t), float(t + 1), s, c),),
                    {}, "", "hawkeye", 1) for t, (s, c) in enumerate(pairs)]


def test_scores_hovering_between_the_thresholds_close_the_event_when_the_evidence_stops_growing():
    scores = [0.9, 0.9] + [0.5] * 30
    alerts = run(scores, min_duration_s=1.0, close_after_s=2.0, quiet_after_s=6.0)
    assert [a.state for a in alerts] == ["open", "close"]
    assert alerts[1].end == 2.0                   # ends at its last supporting second
    assert alerts[1].reason == "no new evidence"
    closed_at = alerts[1].window_id
    assert closed_at == 1                         # the window (4 s each) that holds second 7


def test_an_event_never_lasts_longer_than_max_event_s_and_opens_again():
    alerts = run([0.9] * 300, min_duration_s=1.0, max_event_s=120.0, cooldown_s=0.0)
    spans = [(a.start, a.end) for a in alerts if a.state == "close"]
    assert spans[0] == (0.0, 120.0) and all(e - s <= 120.0 for s, e in spans) and len(spans) == 3
    assert len({a.alert_id for a in alerts}) == 3 and alerts[1].reason == "longest event (120 s)"


def test_the_category_is_decided_once_by_the_seconds_that_opened_the_event():
    pairs = [(0.9, "fall"), (0.9, "fall"), (0.9, "scuffle"), (0.95, "dispersal"), (0.7, "fall")] + [(0.1, "normal")] * 4
    tracker = EventTracker("cam", EventsConfig(min_duration_s=3.0, close_after_s=2.0))
    alerts = [a for v in categorised(pairs) for a in tracker.update(v)] + tracker.flush()
    assert [a.state for a in alerts] == ["open", "close"]
    assert {a.category for a in alerts} == {"fall"}
    assert alerts[1].score == 0.9                 # the peak of its own category's seconds, not dispersal's 0.95


def test_another_category_is_a_new_event_and_a_flicker_is_not():
    pairs = [(0.9, "fall")] * 2 + [(0.9, "dispersal")] + [(0.9, "fall")] * 2 + [(0.9, "scuffle")] * 12
    tracker = EventTracker("cam", EventsConfig(min_duration_s=1.0, quiet_after_s=4.0, cooldown_s=10.0))
    alerts = [a for v in categorised(pairs) for a in tracker.update(v)] + tracker.flush()
    assert [(a.state, a.category) for a in alerts] == [("open", "fall"), ("close", "fall"), ("open", "scuffle"),
                                                       ("close", "scuffle")]
    assert (alerts[1].start, alerts[1].end) == (0.0, 5.0) and alerts[1].reason == "scuffle began"
    assert (alerts[2].start, alerts[3].end) == (5.0, 17.0)   # opened at once, the cooldown is for its own kind
