"""The demo tells the truth, and events end: the README's demo transcript names the alerts a real
run of the demo raises; normal footage replayed in a loop never holds an event past its maximum."""
from __future__ import annotations

import importlib.util

import pytest

from stream.llm.lm import new_model
from tests.harness import ROOT, Subscriber, all_stopped, demo_config, start, write_config

pytestmark = pytest.mark.slow


def _transcript():
    spec = importlib.util.spec_from_file_location("demo_transcript", ROOT / "scripts" / "demo_transcript.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _alerts_of_a_run(config, endpoint, *flags) -> list[dict]:
    """The lobby camera's alerts from a real pipeline run of `config`, as a subscriber receives them."""
    sub = Subscriber(endpoint)
    proc = start(config, *flags)
    try:
        sub.receive_until(all_stopped({"lobby": None}), timeout_s=900)
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        proc.kill()
        sub.close()
    return sub.of("alert", "lobby")


def test_the_readme_demo_transcript_names_the_alerts_the_demo_raises(tmp_path, free_endpoint, vtest):
    claimed = _transcript().claimed((ROOT / "README.md").read_text())
    alerts = _alerts_of_a_run(demo_config(tmp_path, free_endpoint), free_endpoint, "--replay", "fast")
    raised = [a["category"] for a in alerts if a["state"] == "open"]
    assert raised == claimed, f"README.md's transcript shows {claimed}; the demo raised {raised}: " \
                              "run scripts/demo_transcript.py"


def test_normal_footage_in_a_loop_never_holds_an_event_longer_than_its_maximum(tmp_path, clip12, models_dir,
                                                                             free_endpoint):
    """An untrained model with an open threshold every second crosses: the worst case of scores that
    never fall. Events close at max_event_s and open again; none lasts longer."""
    model = new_model().save(tmp_path / "model")
    config = write_config(tmp_path, {"lobby": clip12}, free_endpoint, models_dir,
                          detector={"name": "hawkeye", "hawkeye": {"model": str(model), "explain": False}},
                          events={"open_threshold": 1e-6, "close_threshold": 0.0, "min_duration_s": 1.0,
                                  "cooldown_s": 0.0, "max_event_s": 8.0})
    closes = [a for a in _alerts_of_a_run(config, free_endpoint, "--loop", "--duration", "40") if a["state"] == "close"]
    assert len(closes) >= 3
    assert all(a["end"] - a["start"] <= 8.0 + 1e-6 for a in closes)
    assert any(a["reason"] == "longest event (8 s)" for a in closes)
    assert max(a["end"] for a in closes) > 30.0               # the loop went on past the 12 s clip
