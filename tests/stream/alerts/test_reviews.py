"""Operators' reviews: stored beside the outbox, exported as the labels training reads."""
from __future__ import annotations

import json

import pytest

from stream.alerts.outbox import Outbox
from stream.alerts.publisher import alert_payload
from stream.alerts.reviews import ReviewError, ReviewStore, labels, main
from stream.types import Alert, Evidence
from training.data import read_ground_truth


def alert(alert_id: str, state: str, start: float, end: float, category: str = "fighting") -> Alert:
    return Alert(alert_id, "gate", state, category, 0.8, start, end, 1000 + start, 1000 + end, "two people fight", 3,
                 evidence=(Evidence("clip", f"/ev/{alert_id}.mp4", "0" * 64, 10),))


@pytest.fixture
def outbox(tmp_path):
    box = Outbox(tmp_path / "outbox.sqlite")
    box.append([alert_payload(alert("a1", "open", 10.0, 12.0)), alert_payload(alert("a2", "open", 40.0, 42.0))])
    box.append([alert_payload(alert("a1", "close", 10.0, 17.5))])        # a1's latest message: the close
    yield box
    box.close()


def test_a_review_is_stored_replaced_and_checked(tmp_path):
    store = ReviewStore(tmp_path / "reviews.sqlite")
    store.set("a1", "gate", "false_alarm")
    store.set("a1", "gate", "confirmed", "fight by the gate", "ops-2")       # a second look replaces the first
    got = store.get("a1")
    assert (got["label"], got["note"], got["reviewer"]) == ("confirmed", "fight by the gate", "ops-2")
    assert [r["alert_id"] for r in store.all()] == ["a1"] and store.get("nope") is None
    with pytest.raises(ReviewError, match="label must be one of confirmed, false_alarm"):
        store.set("a1", "gate", "maybe")
    with pytest.raises(ReviewError, match="longer than"):
        store.set("a1", "gate", "confirmed", "x" * 2000)
    store.close()
    assert ReviewStore(tmp_path / "reviews.sqlite").get("a1")["label"] == "confirmed"   # it persists


def test_reviews_export_as_ground_truth_with_false_alarms_beside(tmp_path, outbox):
    from stream.alerts.outbox import Reader
    store = ReviewStore(tmp_path / "reviews.sqlite")
    store.set("a1", "gate", "confirmed")
    store.set("a2", "gate", "false_alarm")
    store.set("gone", "gate", "confirmed")                 # pruned from the outbox: no span left to export
    reader = Reader(outbox.path)
    events = {r["alert_id"]: e for r in store.all() if (e := reader.event(r["alert_id"])) is not None}
    out = labels(store.all(), events, {"gate": "gate.mp4"})
    entry = out["database"]["gate.mp4"]
    assert [(a["segment"], a["label"], a["clip"]) for a in entry["annotations"]] == \
        [([10.0, 17.5], "fighting", "/ev/a1.mp4")]       # the event's latest span
    assert [a["segment"] for a in entry["false_alarms"]] == [[40.0, 42.0]]
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(out))
    truth = read_ground_truth(path)
    assert [(s.start, s.end, s.label) for s in truth["gate.mp4"]["segments"]] == [(10.0, 17.5, "fighting")]
    assert truth["gate.mp4"]["subset"] == "train"


def test_the_export_command_writes_the_labels(tmp_path, outbox, capsys):
    store = ReviewStore(tmp_path / "reviews.sqlite")
    store.set("a2", "gate", "confirmed")
    store.close()
    assert main(["--reviews", str(tmp_path / "reviews.sqlite"), "--outbox", str(outbox.path),
                 "-o", str(tmp_path / "l.json")]) == 0
    assert json.loads((tmp_path / "l.json").read_text())["database"]["gate"]["annotations"][0]["segment"] == [40.0, 42.0]
    with pytest.raises(SystemExit):
        main(["--reviews", str(tmp_path / "missing.sqlite"), "--outbox", str(outbox.path)])
    assert "missing.sqlite: no such file" in capsys.readouterr().err
