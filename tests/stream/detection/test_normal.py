"""Each camera's own normal: what it learns, what it holds back, how it is stored and reset."""
import json
import os

import numpy as np
import pytest

from stream.config import EventsConfig, NormalConfig
from stream.detection.events import EventTracker
from stream.detection.normal import LAG_S, CameraNormal, NormalStoreError, main, read_store, store_path
from stream.types import SecondScore, Verdict

DIM = 16
RNG = np.random.default_rng(0)
CALM = RNG.normal(size=(4, DIM))        # the few looks of the camera's quiet seconds
ODD = RNG.normal(size=DIM)               # a look it never had


def unit(x):
    x = np.asarray(x, np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def window(k, embeddings, scores=None, people=2, space="hawkeye:test", stride=4):
    """Window k: len(embeddings) one-second scores from k*stride (each second its embedding)."""
    start = k * stride
    n = len(embeddings)
    scores = scores or [0.1] * n
    secs = tuple(SecondScore(float(start + i), float(start + i + 1), s, "scuffle") for i, s in enumerate(scores))
    return Verdict("cam", k, float(start), float(start + n), 1000.0 + start, 1000.0 + start + n, max(scores), secs,
                   {}, "", "hawkeye", people, embeddings=unit(embeddings), embedding_space=space)


def calm(k, scores=None, people=2):
    return window(k, [CALM[(k + i) % 4] + 0.01 * RNG.normal(size=DIM) for i in range(4)], scores, people)


def odd(k, scores=None):
    return window(k, [ODD + 0.01 * RNG.normal(size=DIM) for _ in range(4)], scores)


def memory(tmp_path=None, **cfg):
    ncfg = NormalConfig(enabled=True, **{"warmup_minutes": 32 / 60, **cfg})
    return CameraNormal("cam", ncfg, store_path(tmp_path, "cam") if tmp_path else None)


def watch(normal, verdicts, events=EventsConfig(min_duration_s=2.0)):
    tracker, opened = EventTracker("cam", events), []
    for v in verdicts:
        alerts = tracker.update(v, normal.admits(v))
        normal.observed(v, tracker.is_open, [a.start for a in alerts if a.state == "open"])
        for a in alerts:
            normal.event(a.alert_id, a.start, a.end)
        opened += [a for a in alerts if a.state == "open"]
    return opened


def warm_up(normal, windows=12):
    """Enough quiet windows (each second learnt LAG_S after it was scored) to complete the warm-up."""
    watch(normal, [calm(k) for k in range(windows)])


def test_learning_until_the_warm_up_completes_then_familiar_seconds_do_not_open_events():
    normal = memory()
    assert normal.state == "learning"
    high = [0.9] * 4
    # while learning the model alone decides: a high familiar window opens an event
    assert len(watch(normal, [calm(k) for k in range(4)] + [calm(4, high)])) == 1
    normal = memory()
    warm_up(normal)
    assert normal.state == "ready" and normal.status()["seen_s"] >= 32
    assert watch(normal, [calm(20, high), calm(21, high)]) == []          # the camera's normal, scored high
    assert normal.suppressed >= 2
    assert len(watch(normal, [odd(22, high), odd(23, high)])) == 1         # the unusual still opens


def test_seconds_without_people_do_not_count_towards_the_warm_up():
    normal = memory()
    watch(normal, [calm(k, people=0) for k in range(20)])
    assert normal.state == "learning" and normal.seen_s == 0
    status = normal.status()
    assert "detail" not in status                              # not stalled yet: it has not run for long


def test_a_stalled_warm_up_says_why_and_leaves_the_model_deciding(monkeypatch):
    normal = memory()
    watch(normal, [calm(k, people=0) for k in range(20)])
    started = normal._started
    monkeypatch.setattr("stream.detection.normal.time.monotonic", lambda: started + 3600.0)
    detail = normal.status()["detail"]
    assert "warm-up stalled" in detail and "dark" in detail and "model alone decides" in detail
    assert len(watch(normal, [calm(30, [0.9] * 4), calm(31, [0.9] * 4)])) == 1


def test_an_event_and_its_lead_in_are_not_learnt():
    normal = memory(warmup_minutes=1000)        # never warm: only learning is observed
    high = [0.9] * 4
    watch(normal, [calm(0), odd(1), odd(2, high), odd(3, high)] + [calm(k) for k in range(4, 10)])   # 4-8 s: lead-in
    d = 1.0 - normal.memory.astype(np.float32) @ unit(ODD)
    assert d.min() > normal.cfg.radius            # nothing like the event's look was learnt


def test_a_false_alarm_review_joins_the_normal_at_once_and_holds_back_a_window_like_it(tmp_path):
    normal = memory(tmp_path)
    warm_up(normal)
    high = [0.9] * 4
    opened = watch(normal, [odd(20, high), odd(21, high)] + [calm(k) for k in range(22, 26)])
    assert len(opened) == 1
    answer = normal.false_alarm(opened[0].alert_id)
    assert "learnt this event" in answer and normal.reviewed == 1
    assert watch(normal, [odd(40, high), odd(41, high)]) == []
    assert read_store(store_path(tmp_path, "cam"))[0]["reviewed"] == 1     # saved at once


def test_a_review_while_learning_counts_at_once_too():
    normal = memory(warmup_minutes=1000)
    high = [0.9] * 4
    opened = watch(normal, [odd(0, high), odd(1, high)] + [calm(k) for k in range(2, 6)])
    normal.false_alarm(opened[0].alert_id)
    assert normal.state == "learning"
    assert watch(normal, [odd(20, high), odd(21, high)]) == []


def test_a_review_of_an_event_whose_seconds_are_gone_says_so_and_changes_nothing():
    normal = memory()
    warm_up(normal)
    before = normal.memory.copy()
    answer = normal.false_alarm("no-such-alert")
    assert "no record of this event's seconds" in answer and "review is kept" in answer
    assert np.array_equal(normal.memory, before) and normal.reviewed == 0


def test_what_was_learnt_survives_a_restart_and_a_reset_forgets_it(tmp_path):
    normal = memory(tmp_path)
    warm_up(normal)
    normal.save()
    again = memory(tmp_path)
    assert again.state == "ready" and len(again.memory) == len(normal.memory) and again.space == "hawkeye:test"
    assert watch(again, [calm(30, [0.9] * 4), calm(31, [0.9] * 4)]) == []
    again.reset()
    assert again.state == "learning" and len(again.memory) == 0
    assert memory(tmp_path).state == "learning"          # the reset is on disk too


def test_a_corrupted_store_is_set_aside_and_the_camera_learns_again(tmp_path):
    path = store_path(tmp_path, "cam")
    path.write_bytes(b"PK\x03\x04 not really a zip")
    normal = memory(tmp_path)
    assert normal.state == "learning" and len(normal.memory) == 0
    assert "set aside" in normal.status()["detail"]
    kept = [p.name for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    assert len(kept) == 1 and not path.exists()            # kept, never deleted
    with pytest.raises(NormalStoreError, match="cannot be read"):
        read_store(tmp_path / kept[0])


def test_a_store_of_another_model_is_set_aside_at_its_first_verdict(tmp_path):
    normal = memory(tmp_path)
    warm_up(normal)
    normal.save()
    again = memory(tmp_path)
    v = window(40, [ODD] * 4, [0.9] * 4, space="hawkeye:other")
    assert again.admits(v) is not None and again.state == "learning" and len(again.memory) == 0
    assert "learnt by hawkeye:test" in again.status()["detail"]
    assert any(".stale-" in p.name for p in tmp_path.iterdir())


def test_a_store_of_another_camera_is_refused(tmp_path):
    other = CameraNormal("gate", NormalConfig(enabled=True), tmp_path / "cam.npz")
    other.reset()                                  # writes gate's store where cam's should be
    normal = memory(tmp_path)
    assert "camera 'gate'" in normal.status()["detail"] and len(normal.memory) == 0


def test_memory_is_bounded_and_reviewed_seconds_are_never_evicted():
    normal = memory(capacity=16, warmup_minutes=1000)
    normal._learn(unit(ODD)[None], 1.0, pin=True)
    for _ in range(10):
        normal._learn(unit(RNG.normal(size=(8, DIM))), 8.0)
    assert len(normal.memory) == 16 and normal.pinned.sum() == 1
    assert (1.0 - normal.memory[normal.pinned].astype(np.float32) @ unit(ODD)).min() < 1e-3


def test_near_repeats_are_not_stored_twice():
    normal = memory(warmup_minutes=1000)
    normal._learn(unit(np.repeat(CALM[:1], 50, axis=0) + 1e-4 * RNG.normal(size=(50, DIM))), 50.0)
    assert len(normal.memory) == 1 and normal.seen_s == 50.0


def test_a_camera_switched_off_learns_and_holds_back_nothing():
    normal = CameraNormal("cam", NormalConfig(enabled=False), None)
    assert normal.state == "off"
    watch(normal, [calm(k) for k in range(12)])
    assert len(normal.memory) == 0 and normal.admits(calm(20)) is None


def test_a_detector_without_embeddings_leaves_the_model_deciding():
    normal = memory()
    v = calm(0)
    from dataclasses import replace
    assert normal.admits(replace(v, embeddings=None)) is None


def test_the_command_line_shows_and_resets_a_store(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    video = tmp_path / "v.avi"
    video.write_bytes(b"")
    models = os.path.abspath("models")
    cfg.write_text(f"""
cameras: {{cam: {{path: v.avi}}, gate: {{path: v.avi, normal: false}}}}
models: {{pose: {{path: {models}/pose_landmark_full.onnx}}, person_detector: {{path: {models}/ssdlite_person.onnx}}}}
normal: {{enabled: true, store: normal}}
detector: {{name: hawkeye, hawkeye: {{model: {models}/hawkeye}}}}
""")
    normal = CameraNormal("cam", NormalConfig(enabled=True, warmup_minutes=32 / 60), tmp_path / "normal" / "cam.npz")
    warm_up(normal)
    normal.save()
    assert main(["show", "--config", str(cfg)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["camera"] == "cam" and rows[0]["state"] == "ready" and rows[0]["entries"] == len(normal.memory)
    assert rows[1] == {"camera": "gate", "store": str(tmp_path / "normal" / "gate.npz"), "enabled": False,
                       "state": "nothing learnt yet"}
    assert main(["reset", "--config", str(cfg), "cam"]) == 0
    assert not (tmp_path / "normal" / "cam.npz").exists()
    assert any(p.name.startswith("cam.npz.reset-") for p in (tmp_path / "normal").iterdir())
    assert main(["reset", "--config", str(cfg), "nobody"]) == 2
    assert "no camera 'nobody'" in capsys.readouterr().err
    assert main(["learn", "--config", str(cfg), "cam", str(tmp_path / "missing.mp4")]) == 2


def test_lag_keeps_recent_seconds_pending():
    normal = memory(warmup_minutes=1000)
    watch(normal, [calm(0)])
    assert normal.seen_s == 0                       # not yet LAG_S old
    watch(normal, [calm(k) for k in range(1, 1 + int(LAG_S // 4) + 2)])
    assert normal.seen_s > 0


def test_check_names_a_store_folder_that_cannot_be_written_and_a_store_that_will_be_set_aside(tmp_path):
    from stream.config import ConfigError
    from stream.detection.normal import check_stores

    class Cfg:                                  # what check_stores reads of a config
        def __init__(self, store):
            self.store = store

        def normal_of(self, camera):
            return NormalConfig(enabled=True, store=self.store)
    (tmp_path / "cam.npz").write_bytes(b"junk")
    lines = check_stores(Cfg(tmp_path), ["cam", "gate"])
    assert "cam.npz cannot be read" in lines[0] and "set aside" in lines[0]
    assert lines[1].startswith("normal: gate learns from scratch")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="camera cam cannot keep what it learns in"):
        check_stores(Cfg(blocker / "normal"), ["cam"])


def test_resets_and_reviews_from_other_threads_never_break_the_detector_thread(tmp_path):
    import threading
    normal = memory(tmp_path)
    stop, errors = threading.Event(), []

    def operator():
        while not stop.is_set():
            try:
                normal.reset()
                normal.false_alarm("x")
            except Exception as e:      # noqa: BLE001 - the test reports any
                errors.append(e)
    t = threading.Thread(target=operator)
    t.start()
    try:
        watch(normal, [calm(k, [0.9] * 4 if k % 5 == 0 else None) for k in range(300)])
    finally:
        stop.set()
        t.join()
    assert errors == []
    read_store(store_path(tmp_path, "cam"))              # what is on disk is whole
