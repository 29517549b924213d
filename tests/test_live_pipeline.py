"""The whole pipeline on live RTSP cameras from a real server: a failing camera beside a healthy
one, cameras added and removed by SIGHUP, and a slow stage that must not let latency grow."""
from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from stream.alerts.publisher import Publisher
from stream.config import parse_config
from stream.ingest.clips import camera_clip
from stream.ingest.source import VideoSource
from stream.detection.baseline import BaselineDetector
from stream.pipeline import Pipeline
from tests.harness import StubScene, Subscriber, start, write_config
from tests.servers import RtspServer, free_port

pytestmark = pytest.mark.slow
FAST_RETRY = {"backoff_initial_s": 0.2, "backoff_max_s": 1.0, "probe_s": 0.5}


@pytest.fixture(scope="module")
def h264_40s(vtest, tmp_path_factory) -> Path:
    return camera_clip(vtest, tmp_path_factory.mktemp("live") / "vtest40.mp4", 40.0)


def health(sub: Subscriber, camera: str) -> list[dict]:
    return sub.of("health", camera)


def transitions(messages: list[dict]) -> list[str]:
    """The states a camera went through (periodic health messages repeat the current one)."""
    states = [m["state"] for m in messages]
    return [s for i, s in enumerate(states) if i == 0 or s != states[i - 1]]


def test_a_failing_camera_leaves_the_others_at_full_rate_and_sighup_adds_and_removes_cameras(
        tmp_path, h264_40s, models_dir, free_endpoint):
    with RtspServer({"/lobby": h264_40s, "/dock": h264_40s}) as server:
        cams = {"lobby": {"url": server.url("/lobby", "viewer:hunter2")},
                "broken": {"url": f"rtsp://127.0.0.1:{free_port()}/nothing-here"}}
        windows = {"length_s": 2.0, "stride_s": 1.0, "sample_fps": 2.0}
        config = write_config(tmp_path, cams, free_endpoint, models_dir, windows=windows, ingest=FAST_RETRY)
        sub = Subscriber(free_endpoint)
        proc = start(config)
        try:
            sub.receive_until(lambda _: any(m["state"] == "streaming" for m in health(sub, "lobby"))
                              and any(m["state"] == "reconnecting" for m in health(sub, "broken")), 60)
            t_stream = time.monotonic()
            sub.receive_until(lambda _: time.monotonic() > t_stream + 6, 30)

            data = yaml.safe_load(config.read_text())         # reload: drop `broken`, add `dock`
            del data["cameras"]["broken"]
            data["cameras"]["dock"] = {"url": server.url("/dock")}
            config.write_text(yaml.safe_dump(data))
            proc.send_signal(signal.SIGHUP)
            sub.receive_until(lambda _: any(m["state"] == "stopped" for m in health(sub, "broken"))
                              and len(sub.of("verdict", "dock")) >= 3, 60)
            proc.send_signal(signal.SIGINT)
            sub.receive_until(lambda _: any(m["state"] == "stopped" for m in health(sub, "lobby")), 30)
            assert proc.wait(timeout=30) == 0, proc.stderr.read()
        finally:
            proc.kill()
            sub.close()
    err = proc.stderr.read()
    lobby = health(sub, "lobby")
    # the healthy camera never noticed: one connection, its declared rate, every window through
    # (it may say "starting" first: the cameras' starts are spread over a stride)
    assert transitions([m for m in lobby if m["state"] != "starting"]) == ["connecting", "streaming", "stopped"]
    rates = [m["measured_fps"] for m in lobby if m["state"] == "streaming" and m["measured_fps"]]
    assert np.median(rates) == pytest.approx(10.0, rel=0.05) and lobby[-1]["declared_fps"] == 10.0
    assert lobby[-1]["frames_decoded"] >= 0.95 * 10 * lobby[-1]["stream_time"]
    assert lobby[-1]["reconnects"] == 0 and lobby[-1]["windows_dropped"] == 0
    ids = [v["window_id"] for v in sub.of("verdict", "lobby")]
    assert ids == list(range(len(ids))) and len(ids) >= 8
    # the failing one said why, kept retrying, and went away on reload
    broken = health(sub, "broken")
    assert "refused" in next(m["detail"] for m in broken if m["state"] == "reconnecting").lower()
    assert broken[-1]["state"] == "stopped" and broken[-1]["frames_decoded"] == 0
    assert "reload: removing camera broken" in err and "reload: adding camera dock" in err
    assert any(m["state"] == "streaming" for m in health(sub, "dock"))
    assert "hunter2" not in err and all("hunter2" not in str(m) for _, m in sub.messages)


def test_a_slow_stage_drops_the_oldest_live_windows_and_latency_stays_bounded(h264_40s, free_endpoint, tmp_path):
    with RtspServer({"/lobby": h264_40s}) as server:
        cfg = parse_config({
            "cameras": {"lobby": {"url": server.url("/lobby"), "ingest": FAST_RETRY}},
            "windows": {"length_s": 1.0, "stride_s": 0.25, "sample_fps": 4.0},
            "models": {"person_detector": {"path": "x.onnx"}, "pose": {"path": "y.onnx"}},
            "queues": {"windows": 2},
            "alerts": {"endpoint": free_endpoint, "wait_for_subscriber_s": 10},
        }, check_files=False)
        stop = threading.Event()

        def make_source(camera, c, on_state):
            return VideoSource(camera, c.target, is_file=False, ingest=c.ingest, on_state=on_state)
        pipeline = Pipeline(cfg, make_source, StubScene(seconds=1.0), BaselineDetector(cfg.detector.baseline),
                            Publisher(free_endpoint, outbox=tmp_path / "outbox.sqlite"), stop)
        sub = Subscriber(free_endpoint)
        threading.Timer(12.0, stop.set).start()
        try:
            assert pipeline.run() == 0
            sub.receive_until(lambda _: any(m["state"] == "stopped" for m in health(sub, "lobby")), 10)
        finally:
            sub.close()
    # seconds from each window's emission by ingest to its verdict, as the subscriber sees them
    latencies = [v["latency_ms"]["window_to_verdict"] / 1000.0 for v in sub.of("verdict", "lobby")]
    stats = pipeline.stats["lobby"].snapshot()
    assert stats["windows_dropped"] > 10                      # 4 windows/s in, 1/s out
    assert stats["windows_emitted"] == stats["windows_done"] + stats["windows_dropped"]   # each one counted
    # a lossless queue would be ~8 s behind by now and growing; dropping keeps the wait at most
    # the queue's length plus the window in work (1 s each)
    bound = (cfg.queues.windows + 1) * 1.0 + 0.5
    third = len(latencies) // 3
    assert len(latencies) >= 9 and max(latencies) <= bound, latencies
    assert np.median(latencies[-third:]) <= np.median(latencies[:third]) + 0.5, latencies


def test_a_live_camera_is_recorded_in_segments_its_health_says_so_and_a_range_exports(
        tmp_path, h264_40s, models_dir, free_endpoint):
    """Continuous recording on a real RTSP camera: segments of its packets (remuxed, so every frame
    the camera sent), listed and served by the API, a time range exported as one MP4."""
    import json
    import urllib.request

    import av
    port = free_port()
    with RtspServer({"/lobby": h264_40s}) as server:
        config = write_config(tmp_path, {"lobby": {"url": server.url("/lobby")}}, free_endpoint, models_dir,
                              recordings={"enabled": True, "folder": str(tmp_path / "rec"), "segment_s": 4.0},
                              http={"endpoint": f"127.0.0.1:{port}"})
        sub = Subscriber(free_endpoint)
        proc = start(config, "--duration", "14")
        t0 = time.time()

        def get(path: str) -> bytes:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
                return r.read()
        try:
            sub.receive_until(lambda _: any(m.get("segments_recorded", 0) >= 2 for m in health(sub, "lobby")), 60)
            listed = json.loads(get(f"/api/cameras/lobby/recordings?start={t0 - 60}"))
            assert len(listed) >= 2 and all(s["start"] >= t0 - 5 for s in listed)
            closed = [s for s in listed if s["end"] is not None]
            segment = tmp_path / "segment.mp4"
            segment.write_bytes(get(closed[0]["url"]))
            with av.open(str(segment)) as c:
                assert c.streams.video[0].codec_context.name == "h264"        # the camera's own stream, remuxed
                assert 3.0 <= float(c.duration / av.time_base) <= 6.0
            span = f"start={closed[0]['start'] + 1}&end={closed[-1]['end']}"
            exported = tmp_path / "export.mp4"
            exported.write_bytes(get(f"/api/cameras/lobby/export.mp4?{span}"))
            with av.open(str(exported)) as c:
                frames = sum(1 for _ in c.decode(video=0))
            assert frames >= 10 * (closed[-1]["end"] - closed[0]["start"] - 1) * 0.9
            assert proc.wait(timeout=60) == 0, proc.stderr.read()
        finally:
            proc.kill()
            sub.close()
    last = health(sub, "lobby")[-1]
    assert last["recording_faults"] == 0 and last["segments_recorded"] >= 2
    assert last["recording"]["disk_full"] is False and last["recording"]["free_gb"] > 0   # as of the last sweep
