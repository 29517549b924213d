"""End to end: the command line on real footage, received over a real ZeroMQ socket."""
from __future__ import annotations

import json
import signal

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
