"""The real pipeline killed (SIGKILL) mid-stream and restarted, with a real subscriber process
writing what it receives: numbers continue, and the subscriber holds every stored alert once."""
from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import yaml

from tests.harness import ROOT, next_port, start, write_config

# thresholds low enough that the baseline opens and closes events on ordinary walking
TWITCHY = {"open_threshold": 0.1, "close_threshold": 0.05, "min_duration_s": 0.0, "close_after_s": 0.0,
           "cooldown_s": 0.0}


pytestmark = pytest.mark.slow      # a whole pipeline, or real peers on loopback


def test_the_pipeline_killed_and_restarted_continues_numbering_and_the_subscriber_misses_nothing(
        tmp_path, vtest, models_dir, free_endpoint):
    config = write_config(tmp_path, {"lobby": vtest}, free_endpoint, models_dir, events=TWITCHY)
    cfg = yaml.safe_load(config.read_text())
    cfg["alerts"].update(wait_for_subscriber_s=0, publish_verdicts=False)
    config.write_text(yaml.safe_dump(cfg))
    out, box = tmp_path / "alerts.jsonl", tmp_path / "outbox.sqlite"
    sub = subprocess.Popen([sys.executable, "-m", "stream.subscribe", "--endpoint", free_endpoint,
                            "--query", next_port(free_endpoint), "--out", str(out), "--json"],
                           cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines = lambda: out.read_text().splitlines() if out.exists() else []  # noqa: E731
    try:
        first = start(config)
        deadline = time.monotonic() + 240
        while len(lines()) < 3:                       # a few alerts out: kill it mid-stream
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline, "no alerts from the first run"
            time.sleep(0.1)
        first.send_signal(signal.SIGKILL)
        first.wait()
        con = sqlite3.connect(box)
        before = con.execute("SELECT seq, state, alert_id FROM alerts ORDER BY seq").fetchall()
        con.close()
        second = start(config, "--duration", "20")
        assert second.wait(timeout=300) == 0, second.stderr.read()
        con = sqlite3.connect(box)
        after = [(m["seq"], m["state"], m["alert_id"], m["reason"])
                 for m in (json.loads(b) for (b,) in con.execute("SELECT body FROM alerts ORDER BY seq"))]
        con.close()
        deadline = time.monotonic() + 30
        while len(lines()) < len(after):
            assert time.monotonic() < deadline, f"the subscriber has {len(lines())} of {len(after)}"
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        sub.send_signal(signal.SIGINT)
        sub.wait(timeout=10)
    assert [a[0] for a in after] == list(range(1, len(after) + 1))       # continued: no gap, no repeat
    assert len(after) > len(before)
    if before[-1][1] != "close":                                          # the kill left an event open
        assert after[len(before)][1:] == ("close", before[-1][2], "pipeline restarted")
    got = [json.loads(x) for x in lines()]
    assert [(m["seq"], m["state"], m["alert_id"], m["reason"]) for m in got] == after   # each once, in order
