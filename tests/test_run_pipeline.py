"""End to end: the command line on real footage, received over a real ZeroMQ socket."""
from __future__ import annotations

import hashlib
import json
import signal
import time

import av
import cv2
import jsonschema

import pytest

from stream.alerts import schema
from tests.harness import Subscriber, all_stopped, start, write_config

pytestmark = pytest.mark.slow


def test_pipeline_replays_real_footage_to_a_zeromq_subscriber(tmp_path, clip12, models_dir, free_endpoint):
    cams = {"lobby": clip12, "gate": clip12}
    sub = Subscriber(free_endpoint)
    proc = start(write_config(tmp_path, cams, free_endpoint, models_dir))
    try:
        sub.receive_until(all_stopped(cams))
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
    finally:
        proc.kill()
        sub.close()

    health_schema = jsonschema.Draft202012Validator(json.loads(schema.schema_path("health").read_text()))
    for topic, msg in sub.messages:
        assert topic == f"{msg['type']}/{msg['camera']}" and msg["schema"] == schema.SCHEMA_VERSION
        if msg["type"] == "health":
            health_schema.validate(msg)                    # real health messages match the published schema
    assert {m["camera"] for m in sub.of("health")} == set(cams)
    for cam in cams:
        for kind in ("health", "verdict"):
            seqs = [m["seq"] for m in sub.of(kind, cam)]
            assert seqs == list(range(1, len(seqs) + 1)), (kind, cam, seqs)   # no gap, no repeat
        verdicts = sub.of("verdict", cam)
        # the windows tile the 12 s clip exactly: 0-4, 2-6, ..., 10-12
        assert [(v["start"], v["end"]) for v in verdicts] == [(2.0 * k, min(2.0 * k + 4, 12.0)) for k in range(6)]
        assert verdicts[-1]["final"] and all(len(v["seconds"]) >= 2 for v in verdicts)
        assert max(v["people"] for v in verdicts) >= 3        # the walkers were seen
        final = sub.of("health", cam)[-1]
        assert final["state"] == "stopped" and final["frames_decoded"] == 120
        assert final["windows_done"] == final["windows_emitted"] == 6 and final["windows_dropped"] == 0
        assert {"scene", "detector", "window_to_verdict"} <= set(final["latency_ms"])


def test_sigint_stops_cleanly_and_delivers_what_was_accepted(tmp_path, clip12, models_dir, free_endpoint):
    sub = Subscriber(free_endpoint)
    proc = start(write_config(tmp_path, {"lobby": clip12}, free_endpoint, models_dir, replay="realtime"))
    try:
        sub.receive_until(lambda msgs: any(m["type"] == "verdict" for _, m in msgs))
        proc.send_signal(signal.SIGINT)
        sub.receive_until(all_stopped(["lobby"]), timeout_s=30)
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
    finally:
        proc.kill()
        sub.close()
    final = sub.of("health", "lobby")[-1]
    assert final["state"] == "stopped" and final["stream_time"] < 11.0     # it stopped early
    verdicts = sub.of("verdict", "lobby")
    assert len(verdicts) == final["windows_emitted"] == final["windows_done"]   # nothing accepted was lost
    assert verdicts[-1]["final"]


def test_a_broken_camera_fails_alone_and_the_run_exits_1_with_one_line(tmp_path, clip12, models_dir, free_endpoint):
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"\x00not a video" * 5000)
    cams = {"good": clip12, "broken": junk}
    sub = Subscriber(free_endpoint)
    proc = start(write_config(tmp_path, cams, free_endpoint, models_dir), "--duration", "6")
    try:
        sub.receive_until(all_stopped(cams))
        code = proc.wait(timeout=30)
        err = proc.stderr.read()
    finally:
        proc.kill()
        sub.close()
    assert code == 1
    last = [line for line in err.strip().splitlines() if line.startswith("hawkwatch:")]
    assert len(last) == 1 and "camera broken" in last[0], err
    assert sub.of("health", "broken")[-1]["state"] == "failed"
    good = sub.of("health", "good")[-1]
    assert good["state"] == "stopped" and good["frames_decoded"] == 60 and good["windows_done"] == 3


def test_every_event_carries_its_keyframe_and_clip(tmp_path, clip12, models_dir, free_endpoint):
    # thresholds low enough that the baseline opens events on ordinary walking
    events = {"open_threshold": 0.1, "close_threshold": 0.05, "min_duration_s": 1.0, "close_after_s": 1.0}
    sub = Subscriber(free_endpoint)
    proc = start(write_config(tmp_path, {"lobby": clip12}, free_endpoint, models_dir, events=events))
    try:
        sub.receive_until(all_stopped(["lobby"]))
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
    finally:
        proc.kill()
        sub.close()

    alerts = sub.of("alert")
    alert_schema = jsonschema.Draft202012Validator(json.loads(schema.schema_path("alert").read_text()))
    for a in alerts:
        alert_schema.validate(a)
    opens = [a for a in alerts if a["state"] == "open"]
    assert opens, "no event opened"
    for op in opens:
        event = [a for a in alerts if a["alert_id"] == op["alert_id"]]
        assert event[0] is op and not op["evidence"] and event[-1]["state"] == "close"
        # an update carries the files once written, and so does every later message; a close that
        # came first waited for them
        first = next(k for k, a in enumerate(event) if a["evidence"])
        assert all(a["evidence"] == event[-1]["evidence"] for a in event[first:])
        assert event[first]["state"] == "update" or first == len(event) - 1
        files = {e["kind"]: e for e in event[-1]["evidence"]}
        assert set(files) == {"keyframe", "clip"}
        for e in files.values():
            data = open(e["path"], "rb").read()
            assert hashlib.sha256(data).hexdigest() == e["sha256"] and len(data) == e["bytes"]
            assert e["path"].startswith(str(tmp_path / "evidence" / "lobby"))
        assert cv2.imread(files["keyframe"]["path"]).shape == (576, 768, 3)
        with av.open(files["clip"]["path"]) as c:
            times = [f.time for f in c.decode(video=0)]
        # from 3 s before the span to as far after it as the clip had (the stream may have ended)
        assert len(times) >= 5 * 3 and times[-1] - times[0] >= min(op["end"] + 3, 12) - max(op["start"] - 3, 0) - 1


def test_zones_decide_where_events_open(tmp_path, clip12, models_dir, free_endpoint):
    """One file, three cameras: without zones events open; with the whole picture excluded, or an
    include zone where nobody walks (the lawn's lower left corner), none does."""
    events = {"open_threshold": 0.1, "close_threshold": 0.05, "min_duration_s": 1.0, "close_after_s": 1.0}
    everything = [[0, 0], [1, 0], [1, 1], [0, 1]]
    cams = {"open": clip12,
            "fenced": {"path": str(clip12), "zones": {"all": {"kind": "exclude", "points": everything}}},
            "lawn": {"path": str(clip12), "zones": {"lawn": {"points": [[0, 0.9], [0.1, 0.9], [0.1, 1], [0, 1]]}}}}
    sub = Subscriber(free_endpoint)
    proc = start(write_config(tmp_path, cams, free_endpoint, models_dir, events=events))
    try:
        sub.receive_until(all_stopped(list(cams)))
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
    finally:
        proc.kill()
        sub.close()
    assert [a for a in sub.of("alert", "open") if a["state"] == "open"]
    assert sub.of("alert", "fenced") == [] and sub.of("alert", "lawn") == []
    verdicts = {cam: [v["score"] for v in sub.of("verdict", cam)] for cam in cams}
    assert verdicts["open"] == verdicts["fenced"] == verdicts["lawn"]      # the scores are the same: only events differ


def test_signals_while_the_models_load_stop_cleanly(tmp_path, clip12, models_dir, free_endpoint):
    """SIGHUP and SIGTERM during start-up (the Hawkeye model loading) used to kill the process with
    129; the handlers are installed first: the HUP is a reload, the TERM a clean stop."""
    config = write_config(tmp_path, {"lobby": clip12}, free_endpoint, models_dir, replay="realtime",
                          detector={"name": "hawkeye", "hawkeye": {"model": str(models_dir / "hawkeye")}})
    proc = start(config)
    try:
        time.sleep(0.5)                        # Python is up; torch and the models are still loading
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert proc.poll() is None, proc.communicate()[1]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "SIGTERM: stopping" in err and "hawkwatch: error" not in err


def test_check_validates_a_config_and_its_models_without_running_it(tmp_path, clip12, models_dir, free_endpoint):
    import subprocess
    import sys
    from tests.harness import ROOT
    config = write_config(tmp_path, {"lobby": clip12}, free_endpoint, models_dir)
    ok = subprocess.run([sys.executable, str(ROOT / "run_pipeline.py"), "check", str(config)],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert f"config {config}: 1 camera(s): lobby (file {clip12}); detector baseline; runtime local; alerts on " \
           f"{free_endpoint}" in ok.stdout and ok.stdout.rstrip().endswith(f"{config}: ok")
    assert not (tmp_path / "outbox.sqlite").exists()          # nothing ran: no outbox made

    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    text = config.read_text().replace(str(models_dir / "pose_landmark_full.onnx"), str(broken))
    config.write_text(text)
    bad = subprocess.run([sys.executable, str(ROOT / "run_pipeline.py"), "check", str(config)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2, bad.stderr
    assert f"hawkwatch check: config error: models.pose.path: {broken} does not load as a model: DecodeError" \
        in bad.stderr


def test_json_logs_are_one_object_a_line_with_the_start_up_line_and_no_secret(tmp_path, clip12, models_dir,
                                                                             free_endpoint):
    from tests.servers import free_port
    cams = {"lobby": clip12, "door": {"url": f"rtsp://admin:S3cr3t-99@127.0.0.1:{free_port()}/live",
                                      "ingest": {"backoff_initial_s": 0.2, "open_timeout_s": 2}}}
    config = write_config(tmp_path, cams, free_endpoint, models_dir, replay="fast",
                          alerts={"endpoint": free_endpoint, "wait_for_subscriber_s": 0, "query_endpoint": None,
                                  "chat_endpoint": None, "outbox": {"path": str(tmp_path / "outbox.sqlite")},
                                  "evidence": {"folder": str(tmp_path / "evidence")}})
    proc = start(config, "--log-format", "json", "--duration", "4")
    _, err = proc.communicate(timeout=120)
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]   # every line is one JSON object
    assert all({"time", "level", "logger", "thread", "message"} <= set(line) for line in lines)
    starting = [line["message"] for line in lines if line["message"].startswith("starting: config")]
    assert starting and "2 camera(s): " in starting[0] and f"lobby (file {clip12})" in starting[0]
    assert "door (rtsp rtsp://***@127.0.0.1:" in starting[0]
    assert "S3cr3t-99" not in err
    assert any(line["level"] == "WARNING" and "door" in line["message"] for line in lines)   # it could not connect


def test_the_http_api_serves_cameras_and_prometheus_metrics_behind_its_token(tmp_path, clip12, models_dir,
                                                                            free_endpoint):
    import os
    import re
    import urllib.error
    import urllib.request
    from prometheus_client.parser import text_string_to_metric_families
    from tests.harness import ROOT
    from tests.servers import free_port
    port = free_port()
    events = {"open_threshold": 0.1, "close_threshold": 0.05, "min_duration_s": 1.0, "close_after_s": 1.0}
    config = write_config(tmp_path, {"lobby": clip12}, free_endpoint, models_dir, replay="realtime", events=events,
                          http={"endpoint": f"127.0.0.1:{port}", "token_env": "HAWKWATCH_TEST_TOKEN"})
    sub = Subscriber(free_endpoint)
    proc = subprocess_with_env(config, {**os.environ, "HAWKWATCH_TEST_TOKEN": "t0k-77"})

    def get(path, token="t0k-77"):
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                     headers={"Authorization": f"Bearer {token}"} if token else {})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("content-type"), r.read().decode()
    try:
        sub.receive_until(lambda msgs: sum(m["type"] == "verdict" for _, m in msgs) >= 2 and
                          any(m["type"] == "alert" for _, m in msgs))
        opened = sub.of("alert")[0]
        got = json.loads(get("/api/events?camera=lobby&limit=10")[2])
        event = next(e for e in got["events"] if e["alert_id"] == opened["alert_id"])
        assert event["category"] == opened["category"] and event["seq"] >= opened["seq"]   # its latest message
        assert json.loads(get("/api/events?category=no-such-category")[2]) == {"events": [], "next_offset": None}
        assert json.loads(get("/api/events?limit=1")[2])["next_offset"] == 1          # paged
        later = json.loads(get(f"/api/events?since={opened['wall_start'] + 3600}")[2])
        assert later["events"] == []
        status, _, body = get("/api/cameras")
        cameras = json.loads(body)
        assert status == 200 and [c["camera"] for c in cameras] == ["lobby"] and cameras[0]["state"] == "streaming"
        assert json.loads(get("/healthz", None)[2]) == {"ok": True}       # the liveness probe needs no token
        for token in (None, "wrong"):
            try:
                get("/api/cameras", token)
                raise AssertionError("answered without the token")
            except urllib.error.HTTPError as e:
                assert e.code == 401
        status, kind, text = get("/metrics")
        assert status == 200 and kind.startswith("text/plain")
        families = {f.name: f for f in text_string_to_metric_families(text)}
        frames = [s.value for s in families["hawkwatch_frames_decoded"].samples if s.labels == {"camera": "lobby"}]
        assert frames and frames[0] > 0
        buckets = [s for s in families["hawkwatch_stage_latency_seconds"].samples
                   if s.name.endswith("_bucket") and s.labels["stage"] == "scene"]
        assert buckets and buckets[-1].labels["le"] == "+Inf" and buckets[-1].value >= 2
        assert [s.labels for s in families["hawkwatch_camera_up"].samples] == [{"camera": "lobby"}]  # one series
        states = {s.labels["hawkwatch_camera_state"]: s.value for s in families["hawkwatch_camera_state"].samples}
        assert set(states) >= {"streaming", "reconnecting", "stopped"} and sum(states.values()) == 1
        assert families["process_resident_memory_bytes"].samples[0].value > 50e6       # the process's own metrics
        assert "process_open_fds" in families and "process_max_fds" in families
        assert get("/openapi.json")[2].count("/api/cameras") >= 1
        dashboard = json.loads((ROOT / "deploy/grafana/hawkwatch.json").read_text())
        queried = {re.sub(r"_(total|bucket|sum|count)$", "", name) for panel in dashboard["panels"]
                   for target in panel["targets"] for name in re.findall(r"hawkwatch_[a-z_]+", target["expr"])}
        assert queried and queried <= set(families), queried - set(families)   # the dashboard asks for what is there
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        proc.kill()
        sub.close()


def subprocess_with_env(config, env):
    import subprocess
    import sys
    from tests.harness import ROOT
    return subprocess.Popen([sys.executable, str(ROOT / "run_pipeline.py"), "--config", str(config)], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_an_http_port_already_taken_is_a_config_error_at_start(tmp_path, clip12, models_dir, free_endpoint):
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        config = write_config(tmp_path, {"lobby": clip12}, free_endpoint, models_dir,
                              http={"endpoint": f"127.0.0.1:{port}"})
        proc = start(config)
        code, err = proc.wait(timeout=120), proc.stderr.read()
    assert code == 2 and f"config error: http.endpoint: 127.0.0.1:{port}: port {port} is already in use" in err, err
