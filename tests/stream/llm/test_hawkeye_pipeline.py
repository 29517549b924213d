"""`detector: hawkeye` through the whole pipeline (a real process, real footage, a real subscriber):
batched verdicts with per-second fast scores, alerts opened per camera thresholds, and an
explanation that follows an opened alert as an update; questions on the chat endpoint.

The model here is untrained (new weights, saved by the test): the test is about the wiring, so
thresholds are set where its near-constant scores open an event on one camera and never on the other."""
from __future__ import annotations

import pytest
import yaml

from stream.alerts.query import QueryClient, RequestError
from stream.llm.lm import new_model
from stream.llm.prompts import explanation_lead
from tests.harness import Subscriber, all_stopped, start, write_config


pytestmark = pytest.mark.slow      # a whole pipeline, or real peers on loopback


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return new_model().save(tmp_path_factory.mktemp("hawkeye") / "model")


def test_hawkeye_detector_scores_every_second_and_explains_opened_alerts(tmp_path, clip12, models_dir,
                                                                         free_endpoint, model_dir):
    cams = {"lobby": {"path": str(clip12)}, "gate": {"path": str(clip12), "events": {"open_threshold": 0.99,
                                                                                   "close_threshold": 0.5}}}
    config = write_config(tmp_path, cams, free_endpoint, models_dir,
                          detector={"name": "hawkeye", "hawkeye": {"model": str(model_dir), "max_batch": 8,
                                                                   "max_wait_ms": 100}},
                          events={"open_threshold": 1e-6, "close_threshold": 0.0, "min_duration_s": 1.0,
                                  "quiet_after_s": 60.0})
    sub = Subscriber(free_endpoint)
    proc = start(config)
    try:
        sub.receive_until(all_stopped(cams), timeout_s=240)
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        proc.kill()
        sub.close()
    for cam in cams:
        verdicts = sub.of("verdict", cam)
        assert [v["window_id"] for v in verdicts] == list(range(6))
        assert all(v["detector"] == "hawkeye" for v in verdicts)
        assert [len(v["seconds"]) for v in verdicts] == [4, 4, 4, 4, 4, 2]
        assert all(0.0 < s["score"] < 1.0 for v in verdicts for s in v["seconds"])
        assert abs(sum(verdicts[0]["categories"].values()) - 1.0) < 5e-3     # each rounded to 3 places
    alerts = sub.of("alert", "lobby")
    states = [a["state"] for a in alerts]
    assert states[0] == "open" and states[-1] == "close" and len({a["alert_id"] for a in alerts}) == 1
    updates = [a for a in alerts if a["state"] == "update"]
    assert updates and all(a["explanation"] for a in updates)          # generated text, off the scoring path
    category = alerts[0]["category"]                                    # decided once, on every message
    assert {a["category"] for a in alerts} == {category}
    assert all(a["explanation"].startswith(explanation_lead(category).strip()) for a in updates)
    assert sub.of("alert", "gate") == []                                # its own threshold: nothing opens


def test_a_user_asks_the_running_pipeline_about_a_camera(tmp_path, clip12, models_dir, free_endpoint, model_dir):
    config = write_config(tmp_path, {"lobby": clip12}, free_endpoint, models_dir, replay="realtime",
                          detector={"name": "hawkeye", "hawkeye": {"model": str(model_dir), "explain": False}})
    chat = yaml.safe_load(config.read_text())["alerts"]["chat_endpoint"]
    sub = Subscriber(free_endpoint)
    proc = start(config)
    client = QueryClient(chat, timeout_s=60, what="chat")
    try:
        sub.receive_until(lambda msgs: any(m["type"] == "verdict" for _, m in msgs), timeout_s=120)
        rep = client.request({"op": "chat", "camera": "lobby", "question": "Is anyone running?", "windows": 2})
        assert rep["ok"] and isinstance(rep["answer"], str) and rep["windows"][0] == 0, rep
        assert rep["start"] == 0.0 and rep["end"] >= 4.0
        # what a user can get wrong gets an error that names it; the pipeline goes on
        for bad, says in [({"op": "chat", "camera": "gate", "question": "hi"}, "no windows of camera 'gate'"),
                          ({"op": "chat", "camera": "lobby", "question": ""}, "question must be"),
                          ({"op": "chat", "camera": "lobby", "question": "x" * 501}, "at most 500"),
                          ({"op": "chat", "camera": "lobby", "question": "hi", "windows": 99}, "windows must be"),
                          ({"op": "since", "camera": "lobby", "after": 0}, "op must be 'chat'")]:
            rep = client.request(bad)
            assert not rep["ok"] and says in rep["error"], (bad, rep)
        sub.receive_until(all_stopped(["lobby"]), timeout_s=120)
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        client.close()
        proc.kill()
        sub.close()


def test_the_baseline_says_it_cannot_answer_questions():
    from stream.detection.baseline import BaselineDetector
    from stream.config import BaselineConfig
    from stream.alerts.chat import ChatService

    with pytest.raises(RequestError, match="baseline detector does not answer questions"):
        ChatService(BaselineDetector(BaselineConfig())).handle({"op": "chat", "camera": "lobby", "question": "hi"})


def test_a_model_that_reads_pretrained_appearance_needs_it_in_the_config(tmp_path, clip12, models_dir, free_endpoint):
    from stream.config import ConfigError, load_config
    from stream.llm.hawkeye import HawkeyeConfig
    from stream.app import build_pipeline
    model = new_model(HawkeyeConfig(appearance_dim=1280)).save(tmp_path / "model")
    config = write_config(tmp_path, {"lobby": clip12}, free_endpoint, models_dir,
                          detector={"name": "hawkeye", "hawkeye": {"model": str(model)}})
    with pytest.raises(ConfigError, match=r"reads pretrained appearance features \(appearance_dim 1280\); "
                                          r"set models.appearance"):
        build_pipeline(load_config(config))


def test_a_camera_that_learnt_its_normal_from_a_recording_opens_no_event_on_it(tmp_path, clip12, models_dir,
                                                                                free_endpoint, model_dir):
    """`python -m stream.detection.normal learn` over real footage (the real scene stage and model), then the
    pipeline on the same footage: where every second crosses the threshold, the camera that learnt it
    stays quiet (its seconds are familiar), the one switched off alerts; health says which is which."""
    import subprocess
    import sys

    cams = {"lobby": {"path": str(clip12)}, "gate": {"path": str(clip12), "normal": False}}
    config = write_config(tmp_path, cams, free_endpoint, models_dir,
                          detector={"name": "hawkeye", "hawkeye": {"model": str(model_dir), "explain": False}},
                          events={"open_threshold": 1e-6, "close_threshold": 0.0, "min_duration_s": 1.0},
                          normal={"enabled": True, "store": str(tmp_path / "normal"), "warmup_minutes": 30})
    learn = subprocess.run([sys.executable, "-m", "stream.detection.normal", "learn", "--config", str(config), "lobby",
                            str(clip12)], capture_output=True, text=True, timeout=240)
    assert learn.returncode == 0, learn.stderr
    learnt = yaml.safe_load(learn.stdout)
    assert learnt["state"] == "ready" and learnt["seen_s"] >= 10 and learnt["entries"] >= 1
    sub = Subscriber(free_endpoint)
    proc = start(config)
    try:
        sub.receive_until(all_stopped(cams), timeout_s=240)
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        proc.kill()
        sub.close()
    assert sub.of("alert", "lobby") == [] and sub.of("alert", "gate")
    lobby, gate = sub.of("health", "lobby")[-1]["normal"], sub.of("health", "gate")[-1]["normal"]
    assert lobby["state"] == "ready" and lobby["suppressed"] >= 1 and gate["state"] == "off"
    assert (tmp_path / "normal" / "lobby.npz").exists() and not (tmp_path / "normal" / "gate.npz").exists()
