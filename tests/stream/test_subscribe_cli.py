"""The subscriber's command line, as a user runs it: a real process against real sockets."""
from __future__ import annotations

import json
import subprocess
import sys
import time

from stream.alerts.publisher import Publisher
from stream.config import beside
from stream.subscribe import format_message
from tests.harness import ROOT, next_port
from tests.stream.alerts.test_alerts import alert


def subscribe(*args: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "stream.subscribe", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    return done, time.monotonic() - t0


def test_without_query_the_endpoint_beside_the_pub_one_is_asked(tmp_path, free_endpoint):
    pub = Publisher(free_endpoint, outbox=tmp_path / "o.sqlite", query_endpoint=next_port(free_endpoint))
    try:
        pub.publish_alerts([{"camera": "lobby", **alert(f"a{k}")} for k in range(3)])
        done, _ = subscribe("--endpoint", free_endpoint, "--from-start", "--json", "--timeout", "2")
    finally:
        pub.close()
    got = [json.loads(line) for line in done.stdout.splitlines()]
    assert [m["seq"] for m in got] == [1, 2, 3], done.stderr      # fetched from the derived query endpoint
    assert done.returncode == 1 and "no message for 2 s" in done.stderr


def test_no_query_endpoint_is_named_and_the_timeout_counts_from_the_start(free_endpoint):
    done, took = subscribe("--endpoint", free_endpoint, "--timeout", "1.5", timeout=30)
    assert done.returncode == 1 and took < 10, (took, done.stderr)
    assert f"no answer from the query endpoint {next_port(free_endpoint)} (--endpoint's port + 1)" in done.stderr
    assert "Pass --query" in done.stderr
    done, _ = subscribe("--endpoint", "ipc:///tmp/hawkwatch-nowhere", "--timeout", "1.5")   # beside it, as `auto`
    assert done.returncode == 1 and "the query endpoint ipc:///tmp/hawkwatch-nowhere.query" in done.stderr
    done, _ = subscribe("--endpoint", "tcp://127.0.0.1:65535")
    assert done.returncode == 2 and "--query is needed" in done.stderr and len(done.stderr.splitlines()) == 1


def test_readable_alerts_show_their_evidence_files():
    msg = {"type": "alert", "camera": "lobby", "seq": 4, "sent_at": 0.0, "state": "update", "category": "fall",
           "score": 0.9, "start": 1.0, "end": 3.0, "alert_id": "0123456789", "explanation": "",
           "evidence": [{"kind": "keyframe", "path": "/var/ev/lobby/a.jpg"}, {"kind": "clip", "path": "/var/ev/a.mp4"}]}
    line = format_message("alert/lobby", msg)
    assert line.endswith("keyframe /var/ev/lobby/a.jpg  clip /var/ev/a.mp4")
    assert beside("tcp://10.0.0.5:5556", 1) == "tcp://10.0.0.5:5557" and beside("ipc:///x", 1) == "ipc:///x.query"
    assert beside("tcp://10.0.0.5:65535", 1) is None


def test_sigint_ends_the_subscriber_even_when_its_launcher_blocked_and_ignored_it(tmp_path):
    """A parent that blocks or ignores SIGINT passes both on across exec; the subscriber undoes them."""
    import signal
    import subprocess
    import sys
    import time

    def launcher():                     # runs in the child before exec: what such a parent leaves behind
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    proc = subprocess.Popen([sys.executable, "-m", "stream.subscribe", "--endpoint", "tcp://127.0.0.1:1",
                             "--query", "tcp://127.0.0.1:2", "--out", str(tmp_path / "a.jsonl")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=launcher)
    time.sleep(3.0)                     # started, asking the (absent) query endpoint
    proc.send_signal(signal.SIGINT)
    try:
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
