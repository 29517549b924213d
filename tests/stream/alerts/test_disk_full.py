"""A full disk never stops detection: the outbox on a real, small tmpfs that the test fills up
and frees again, with real ZeroMQ sockets and the real command line."""
from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from stream.alerts.publisher import Publisher
from stream.config import parse_config
from stream.ingest.source import VideoSource
from stream.pipeline import Pipeline
from stream.alerts.query import QueryClient
from stream.alerts.subscriber import AlertSubscriber
from tests.harness import StubScene, Subscriber, all_stopped, next_port, start, write_config
from tests.stream.alerts.test_alerts import alert, stored


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs of its own (needs root, as CI and the developers' machines run)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of the disk; returns the file to delete to give them back."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def test_alerts_go_out_while_the_disk_is_full_and_are_stored_once_space_returns(small_disk, free_endpoint):
    query = next_port(free_endpoint)
    pub = Publisher(free_endpoint, outbox=small_disk / "outbox.sqlite", query_endpoint=query)
    got: list[dict] = []
    sub = AlertSubscriber(free_endpoint, query)
    try:
        pub.publish_alerts([{"camera": "lobby", **alert(f"a{k}")} for k in range(3)])
        filler = fill(small_disk)
        big = "x" * 20_000                          # rows that need new pages
        for k in range(3, 23):
            pub.publish_alerts([{"camera": "lobby", **alert(f"a{k}", explanation=big)}])
        health = pub.publish("health", "lobby", {})
        assert health["outbox_state"]["state"] == "degraded" and health["outbox_state"]["held"] == 20
        assert "full" in health["outbox_state"]["reason"] and health["alert_seq"] == 23
        # a subscriber that joins now gets every alert, the held ones from memory
        sub.catch_up_all(got.append)
        assert [a["seq"] for a in got] == list(range(1, 24))
        client = QueryClient(query)
        assert client.request({"op": "cameras"})["cameras"] == {"lobby": 23}
        client.close()
        filler.unlink()                              # space returns: the writer stores what it held
        deadline = time.monotonic() + 10
        while pub.outbox.status()["state"] != "ok" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pub.outbox.status() == {"state": "ok", "reason": None, "held": 0, "lost": 0}
        pub.publish_alerts([{"camera": "lobby", **alert("a23")}])
    finally:
        sub.close()
        pub.close()
    rows = stored(small_disk / "outbox.sqlite")
    assert [r["seq"] for r in rows] == list(range(1, 25))              # nothing lost, numbers unchanged
    assert [r["alert_id"] for r in rows] == [f"a{k}" for k in range(24)]


def test_held_alerts_beyond_the_bound_are_counted_and_said(small_disk, free_endpoint, caplog):
    pub = Publisher(free_endpoint, outbox=small_disk / "outbox.sqlite")
    pub.outbox.max_held = 5
    try:
        fill(small_disk)
        sent = pub.publish_alerts([{"camera": "lobby", **alert(f"a{k}", explanation="x" * 20_000)}
                                   for k in range(8)])
        assert [m["seq"] for m in sent] == list(range(1, 9))           # all published live
        assert pub.outbox.status()["held"] == 5 and pub.outbox.status()["lost"] == 3
        assert "3 published alerts dropped unstored" in caplog.text
    finally:
        pub.close()


def test_a_full_disk_at_start_up_is_one_line_and_exit_1(small_disk, tmp_path, clip12, models_dir, free_endpoint):
    fill(small_disk)
    cfg = write_config(tmp_path, {"lobby": clip12}, free_endpoint, models_dir,
                       alerts={"endpoint": free_endpoint, "query_endpoint": None, "chat_endpoint": None,
                               "outbox": {"path": str(small_disk / "outbox.sqlite")},
                               "evidence": {"folder": str(tmp_path / "evidence")}})
    proc = start(cfg)
    out, err = proc.communicate(timeout=120)
    lines = [line for line in err.strip().splitlines() if line.startswith("hawkwatch:")]
    assert proc.returncode == 1 and len(lines) == 1, err
    assert "alerts.outbox" in lines[0] and "full" in lines[0], lines


class _Alarmed:
    """A detector that finds a fall in seconds 2-6 of every camera (the scene models are not what
    this test is about; the pipeline, the outbox and the sockets are real)."""
    max_batch, max_wait_s, name, explains, talks = 1, 0.0, "alarmed", False, False

    def batch(self, scenes):
        from stream.types import SecondScore, Verdict
        out = []
        for s in scenes:
            seconds = tuple(SecondScore(t, t + 1, 0.9 if 2 <= t < 6 else 0.1, "fall")
                            for t in np.arange(s.start, s.end))
            out.append(Verdict(s.camera, s.window_id, s.start, s.end, s.wall_start, s.wall_end,
                               max(x.score for x in seconds), seconds, {"fall": 0.9}, "", self.name, 0,
                               final=s.final))
        return out


def test_the_pipeline_goes_on_publishing_with_a_full_disk_and_says_so(small_disk, clip12, free_endpoint):
    """Today's fault: the outbox could not write and the whole pipeline exited 1 with no final
    health. Now alerts go out live, health says `degraded`, and the run ends normally."""
    cfg = parse_config({"cameras": {"lobby": {"path": str(clip12)}},
                        "models": {"person_detector": {"path": "x.onnx"}, "pose": {"path": "y.onnx"}},
                        "alerts": {"endpoint": free_endpoint, "query_endpoint": None, "chat_endpoint": None,
                                   "health_interval_s": 0.5, "wait_for_subscriber_s": 10}}, check_files=False)

    def make_source(camera, c, on_state):
        return VideoSource(camera, c.target, is_file=True, replay="fast", on_state=on_state)
    publisher = Publisher(free_endpoint, outbox=small_disk / "outbox.sqlite")
    fill(small_disk)
    pipeline = Pipeline(cfg, make_source, StubScene(), _Alarmed(), publisher, threading.Event())
    sub = Subscriber(free_endpoint)
    try:
        code = pipeline.run()
        sub.receive_until(all_stopped(["lobby"]), 30)
    finally:
        sub.close()
    assert code == 0
    alerts = sub.of("alert", "lobby")
    assert [a["state"] for a in alerts][:1] == ["open"] and alerts[-1]["state"] == "close"
    assert [a["seq"] for a in alerts] == list(range(1, len(alerts) + 1))
    final = sub.of("health", "lobby")[-1]
    assert final["state"] == "stopped" and final["outbox_state"]["state"] == "degraded"
    assert final["outbox_state"]["held"] >= len(alerts) - 1 and "full" in final["outbox_state"]["reason"]
