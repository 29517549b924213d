"""Cameras added, removed and changed while the pipeline runs, seen by a real subscriber."""
from __future__ import annotations

import copy
import logging
import threading
import time


from stream.alerts.publisher import Publisher
from stream.config import ConfigError, parse_config
from stream.ingest.source import VideoSource
from stream.detection.baseline import BaselineDetector
from stream.pipeline import Pipeline
from tests.harness import StubScene, Subscriber


def test_reload_adds_removes_and_restarts_cameras_without_touching_the_others(clip12, free_endpoint, caplog, tmp_path):
    base = {
        "cameras": {"a": {"path": str(clip12), "loop": True}, "keep": {"path": str(clip12), "loop": True}},
        "windows": {"length_s": 2.0, "stride_s": 1.0, "sample_fps": 2.0},
        "models": {"person_detector": {"path": "x.onnx"}, "pose": {"path": "y.onnx"}},
        "alerts": {"endpoint": free_endpoint, "wait_for_subscriber_s": 10, "health_interval_s": 0.5},
    }
    cfg = parse_config(base, check_files=False)

    def make_source(camera, c, on_state):
        return VideoSource(camera, c.target, is_file=True, replay="realtime", loop=c.loop, ingest=c.ingest,
                           on_state=on_state)
    stop = threading.Event()
    pipeline = Pipeline(cfg, make_source, StubScene(), BaselineDetector(cfg.detector.baseline),
                        Publisher(free_endpoint, outbox=tmp_path / "outbox.sqlite"), stop)
    sub = Subscriber(free_endpoint)
    runner = threading.Thread(target=lambda: setattr(pipeline, "code", pipeline.run()))
    runner.start()

    def verdicts(cam):
        return [m["window_id"] for m in sub.of("verdict", cam)]

    def states(cam):
        return [m["state"] for m in sub.of("health", cam)]
    try:
        sub.receive_until(lambda _: len(verdicts("a")) >= 2, 30)
        changed = copy.deepcopy(base)
        changed["cameras"]["a"]["ingest"] = {"gap_s": 2.0}                # a changed: restart it
        changed["cameras"]["b"] = {"path": str(clip12), "loop": True}   # b added
        changed["events"] = {"cooldown_s": 9.0}                         # needs a restart: only logged
        with caplog.at_level(logging.INFO, logger="stream"):   # the pipeline's and its cameras' (stream.cameras)
            pipeline.request_reload(lambda: parse_config(changed, check_files=False))
            sub.receive_until(lambda _: verdicts("a").count(0) == 2 and len(verdicts("b")) >= 2, 30)

            def bad():
                raise ConfigError("hawkwatch.yaml: cameras.b.url: URL must start with one of ...")
            pipeline.request_reload(bad)                                 # ignored, nothing changes
            removed = copy.deepcopy(changed)
            del removed["cameras"]["b"]
            sub.receive_until(lambda _: len(verdicts("b")) >= 3, 30)
            pipeline.request_reload(lambda: parse_config(removed, check_files=False))
            sub.receive_until(lambda _: "stopped" in states("b"), 30)
        stop.set()
        runner.join(timeout=30)
        sub.receive_until(lambda _: "stopped" in states("keep"), 10)
    finally:
        stop.set()
        sub.close()
    assert pipeline.code == 0
    # `keep` never noticed: one connection, windows 0, 1, 2... without a break
    # (it may say "starting" first: the cameras' starts are spread over a stride, so their windows do not close together)
    assert [s for s in states("keep") if s != "starting"][0] == "connecting" and "stopped" not in states("keep")[:-1]
    assert verdicts("keep") == list(range(len(verdicts("keep"))))
    # `a` flushed its old instance and started again from window 0 and stream time 0
    a = verdicts("a")
    restart = a.index(0, 1)
    assert a[:restart] == list(range(restart)) and a[restart:] == list(range(len(a) - restart))
    assert states("a").count("connecting") >= 2 and "stopped" in states("a")
    assert "stopped" in states("b") and len(verdicts("b")) >= 3
    log = caplog.text
    assert "camera a changed; restarting it" in log and "adding camera b" in log and "removing camera b" in log
    assert "changes to events take effect only after a restart" in log
    assert "config reload rejected, keeping the running config" in log


def test_a_failed_camera_stays_on_health_with_its_reason_until_removed(clip12, free_endpoint, tmp_path):
    """A subscriber that joins after the failure still learns of it; a reload that removes the
    camera takes it off health, and one that fixes it starts it again."""
    base = {
        "cameras": {"ok": {"path": str(clip12), "loop": True}, "gone": {"path": str(tmp_path / "missing.avi")}},
        "windows": {"length_s": 2.0, "stride_s": 1.0, "sample_fps": 2.0},
        "models": {"person_detector": {"path": "x.onnx"}, "pose": {"path": "y.onnx"}},
        "alerts": {"endpoint": free_endpoint, "health_interval_s": 0.3},
    }

    def make_source(camera, c, on_state):
        return VideoSource(camera, c.target, is_file=True, replay="realtime", loop=c.loop, on_state=on_state)
    stop = threading.Event()
    pipeline = Pipeline(parse_config(base, check_files=False), make_source, StubScene(),
                        BaselineDetector(parse_config(base, check_files=False).detector.baseline),
                        Publisher(free_endpoint, outbox=tmp_path / "outbox.sqlite"), stop)
    runner = threading.Thread(target=lambda: setattr(pipeline, "code", pipeline.run()))
    runner.start()
    time.sleep(1.5)                                   # the failure is long past when this subscriber joins
    sub = Subscriber(free_endpoint)

    def health(cam):
        return sub.of("health", cam)
    try:
        sub.receive_until(lambda _: len(health("gone")) >= 3, 20)
        assert {m["state"] for m in health("gone")} == {"failed"}
        assert all("missing.avi" in m["detail"] and "cannot open" in m["detail"] for m in health("gone"))
        fixed = copy.deepcopy(base)
        fixed["cameras"]["gone"] = {"path": str(clip12), "loop": True}
        pipeline.request_reload(lambda: parse_config(fixed, check_files=False))
        sub.receive_until(lambda _: any(m["state"] == "streaming" for m in health("gone")), 20)
        removed = copy.deepcopy(fixed)
        del removed["cameras"]["gone"]
        pipeline.request_reload(lambda: parse_config(removed, check_files=False))
        sub.receive_until(lambda _: "stopped" in [m["state"] for m in health("gone")], 20)
        n, ok = len(health("gone")), len(health("ok"))
        sub.receive_until(lambda _: len(health("ok")) >= ok + 4, 10)     # four more rounds of health
        assert len(health("gone")) == n                # removed: off health for good
    finally:
        stop.set()
        runner.join(timeout=30)
        sub.close()


def test_each_camera_cuts_its_own_windows_over_the_top_level_ones(clip12, free_endpoint, tmp_path):
    cfg = parse_config({
        "cameras": {"wide": {"path": str(clip12)}, "quick": {"path": str(clip12), "windows": {"stride_s": 1.0,
                                                                                            "length_s": 2.0}}},
        "windows": {"length_s": 4.0, "stride_s": 2.0, "sample_fps": 2.0},
        "models": {"person_detector": {"path": "x.onnx"}, "pose": {"path": "y.onnx"}},
        "alerts": {"endpoint": free_endpoint, "query_endpoint": None, "chat_endpoint": None},
    }, check_files=False)
    assert cfg.cameras["quick"].windows.sample_fps == 2.0             # the fields it does not set come from the top

    def make_source(camera, c, on_state):
        return VideoSource(camera, c.target, is_file=True, replay="fast", ingest=c.ingest, on_state=on_state)
    pipeline = Pipeline(cfg, make_source, StubScene(), BaselineDetector(cfg.detector.baseline),
                        Publisher(free_endpoint, outbox=tmp_path / "outbox.sqlite"), threading.Event())
    seen = []
    pipeline.observers.append(seen.append)
    assert pipeline.run() == 0
    spans = {cam: [(v.start, v.end) for v in seen if getattr(v, "camera", None) == cam and hasattr(v, "seconds")]
             for cam in ("wide", "quick")}
    assert spans["wide"] == [(2.0 * k, min(2.0 * k + 4.0, 12.0)) for k in range(6)]
    assert spans["quick"] == [(1.0 * k, min(1.0 * k + 2.0, 12.0)) for k in range(12)]
