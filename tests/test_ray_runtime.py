"""The pipeline on a real multi-node Ray cluster on this machine (`ray.cluster_utils.Cluster`: a head
node and worker nodes, each its own raylet with its own resources and labels)."""
from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from stream.config import load_config, with_overrides
from stream.app import build_pipeline
from stream.types import Alert, EndOfStream, Verdict
from tests import harness
from tests.harness import ROOT, Subscriber, all_stopped, start, write_config

# the shipped model is quiet on vtest: thresholds every second crosses, so every run has events to compare
EVENTS = {"open_threshold": 1e-4, "close_threshold": 0.0, "min_duration_s": 1.0, "max_event_s": 10.0}


def demo_config(*args, **kwargs) -> Path:
    path = harness.demo_config(*args, **kwargs)
    cfg = yaml.safe_load(path.read_text())
    cfg["events"] = EVENTS
    cfg["detector"]["hawkeye"]["explain"] = False      # as many events as windows: no explanation traffic beside the batches
    path.write_text(yaml.safe_dump(cfg))
    return path

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    """A head node (the driver's) and a worker node labelled site=north."""
    from ray.cluster_utils import Cluster
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "labels": {"site": "head"}})
    c.north = c.add_node(num_cpus=2, labels={"site": "north"})
    yield c
    c.shutdown()


def run(config: Path, *, replay: str, duration_s: float, during=None, prepare=None) -> tuple[list[Verdict], list[Alert], dict]:
    """Run the pipeline in this process; the verdicts and alerts it published, and its last health.
    `during(published)` runs on a thread beside it; `prepare(pipeline)` before it starts."""
    got: list = []
    pipeline = build_pipeline(with_overrides(load_config(config), replay=replay, duration_s=duration_s))
    if prepare:
        prepare(pipeline)
    pipeline.observers.append(got.append)
    health: dict = {}
    publish = pipeline.publisher.publish

    def keep_health(topic, camera, body):
        if topic == "health":
            health[camera] = body
        return publish(topic, camera, body)
    pipeline.publisher.publish = keep_health
    watcher = threading.Thread(target=during, args=(got,), daemon=True) if during else None
    if watcher:
        watcher.start()
    assert pipeline.run() == 0, pipeline.failure
    if watcher:
        watcher.join(timeout=60)
    return ([g for g in got if isinstance(g, Verdict)], [g for g in got if isinstance(g, Alert)], health)


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("local")
    return run(demo_config(tmp, _port()), replay="fast", duration_s=40)


def _port() -> str:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def same_results(got: tuple, want: tuple) -> None:
    (verdicts, alerts, _), (ref_verdicts, ref_alerts, _) = got, want
    assert [v.window_id for v in verdicts] == [v.window_id for v in ref_verdicts] == list(range(len(ref_verdicts)))
    for v, r in zip(verdicts, ref_verdicts):
        assert abs(v.score - r.score) <= 1e-5, (v.window_id, v.score, r.score)
        assert [(s.start, s.end, s.category) for s in v.seconds] == [(s.start, s.end, s.category) for s in r.seconds]
        assert max(abs(s.score - q.score) for s, q in zip(v.seconds, r.seconds)) <= 1e-5
    def decided(alerts):        # the alerts the scores decide (updates with an explanation or evidence come
        return [(a.state, a.category, a.start, a.end, a.window_id)   # whenever those are ready: window_id -1)
                for a in alerts if a.window_id >= 0]
    assert decided(alerts) == decided(ref_alerts)
    opened = [a.alert_id for a in alerts if a.state == "open"]
    assert len(set(opened)) == len(opened) and {a.alert_id for a in alerts} == set(opened)
    assert sorted(a.alert_id for a in alerts if a.state == "close") == sorted(opened)


def test_the_demo_gives_the_same_verdicts_on_ray_with_ingest_on_another_node(tmp_path, cluster, local_reference):
    assert local_reference[0] and local_reference[1], "the reference run should score windows and raise alerts"
    config = demo_config(tmp_path, _port(), {"site": "north"}, engine="ray", address=cluster.address,
                         models={"labels": {"site": "head"}})
    pipelines, pictures = [], []

    def snapshot(published):          # the console's snapshot: the frame comes from the worker on the north node
        from stream.http.readmodel import Recent, Snapshots
        while not any(isinstance(g, Verdict) for g in published):
            time.sleep(0.05)
        pictures.append(Snapshots(pipelines[0], Recent()).jpeg("lobby"))
    got = run(config, replay="fast", duration_s=40, prepare=pipelines.append, during=snapshot)
    same_results(got, local_reference)
    assert pictures[0] is not None and cv2.imdecode(np.frombuffer(pictures[0], np.uint8), cv2.IMREAD_COLOR).shape == \
        (576, 768, 3)
    runtime = got[2]["lobby"]["runtime"]
    assert runtime["engine"] == "ray" and runtime["node"] == cluster.north.node_id      # ingest ran on the north node
    assert runtime["restarts"] == runtime["duplicates"] == 0
    assert got[2]["lobby"]["frames_decoded"] == local_reference[2]["lobby"]["frames_decoded"] > 0
    evidence = [a.evidence for a in got[1] if a.state == "close"]
    assert evidence and all(e for e in evidence)        # the worker wrote keyframes and clips where the frames are


def test_a_worker_node_killed_mid_run_loses_no_alert_and_duplicates_none(tmp_path, cluster, local_reference):
    east = cluster.add_node(num_cpus=2, labels={"site": "east"})
    config = demo_config(tmp_path, _port(), {"site": "east"}, engine="ray", address=cluster.address,
                         models={"labels": {"site": "east"}})
    killed = threading.Event()

    def kill_east_after_some_windows(got):
        import time
        while sum(isinstance(g, Verdict) for g in got) < 6:
            time.sleep(0.1)
        cluster.remove_node(east, allow_graceful=False)   # its camera and model workers go with it
        killed.set()
    got = run(config, replay="realtime", duration_s=40, during=kill_east_after_some_windows)
    assert killed.is_set()
    same_results(got, local_reference)       # every window scored and published once, every alert as without the fault
    runtime = got[2]["lobby"]["runtime"]
    assert runtime["restarts"] >= 1 and runtime["node"] != east.node_id


def test_a_model_worker_killed_with_a_batch_on_it_is_replaced_and_the_batch_scored_once(tmp_path, cluster,
                                                                                       local_reference):
    config = demo_config(tmp_path, _port(), engine="ray", address=cluster.address)
    killed = []

    def kill_the_worker_on_the_fifth_batch(pipeline):
        pool, submit = pipeline.scorer, pipeline.scorer.submit

        def submit_and_kill(scenes, *args, **kwargs):
            out = submit(scenes, *args, **kwargs)
            if not args and not killed and submit_and_kill.batches == 4:   # not a retry: the fifth batch
                ray.kill(pool.actors[0], no_restart=False)       # the batch just sent dies with it
                killed.append(scenes[0].window_id)
            submit_and_kill.batches += not args
            return out
        submit_and_kill.batches = 0
        pool.submit = submit_and_kill
    got = run(config, replay="fast", duration_s=40, prepare=kill_the_worker_on_the_fifth_batch)
    assert killed
    same_results(got, local_reference)
    assert got[2]["lobby"]["runtime"]["model_restarts"] >= 1


def test_a_live_camera_whose_worker_is_killed_reconnects_and_its_windows_continue(tmp_path, cluster, vtest,
                                                                                  tmp_path_factory):
    from stream.ingest.clips import camera_clip
    from tests.servers import RtspServer
    clip = camera_clip(vtest, tmp_path_factory.mktemp("live") / "vtest40.mp4", 40.0)
    with RtspServer({"/lobby": clip}) as server:
        config = demo_config(tmp_path, _port(), engine="ray", address=cluster.address)
        cfg = yaml.safe_load(config.read_text())
        cfg["cameras"]["lobby"] = {"url": server.url("/lobby"), "ingest": {"backoff_initial_s": 0.2}}
        cfg["detector"] = {"name": "baseline"}
        config.write_text(yaml.safe_dump(cfg))
        killed = []

        def kill_the_camera_worker(got):
            import time
            while sum(isinstance(g, Verdict) for g in got) < 4:
                time.sleep(0.1)
            killed.append(max(g.window_id for g in got if isinstance(g, Verdict)))
            ray.kill(pipeline_of[0].sources["lobby"].actor, no_restart=False)
        pipeline_of = []
        verdicts, _, health = run(config, replay="realtime", duration_s=30, during=kill_the_camera_worker,
                                  prepare=pipeline_of.append)
    ids = [v.window_id for v in verdicts]
    assert killed and ids == sorted(set(ids)) and ids[-1] > killed[0] + 2     # on after the restart, never back
    starts = [v.start for v in verdicts]
    assert starts == sorted(starts) and all(v.start == 2.0 * v.window_id for v in verdicts)  # stream time continues
    assert health["lobby"]["runtime"]["restarts"] == 1 and health["lobby"]["state"] == "stopped"


def test_sighup_adds_and_removes_cameras_on_ray(tmp_path, cluster, clip12, models_dir, free_endpoint):
    cams = {"a": {"path": str(clip12), "loop": True, "labels": {"site": "north"}}}
    config = write_config(tmp_path, cams, free_endpoint, models_dir, replay="realtime")
    sub = Subscriber(free_endpoint)
    proc = start(config, "--runtime", "ray", "--ray-address", cluster.address)   # the flags hold across reloads
    try:
        sub.receive_until(lambda _: len(sub.of("verdict", "a")) >= 2, 180)
        text = yaml.safe_load(config.read_text())
        text["cameras"] = {"b": {"path": str(clip12), "loop": True}}
        config.write_text(yaml.safe_dump(text))
        proc.send_signal(signal.SIGHUP)
        sub.receive_until(lambda _: len(sub.of("verdict", "b")) >= 2 and
                          any(m["state"] == "stopped" for m in sub.of("health", "a")), 180)
        proc.send_signal(signal.SIGINT)
        sub.receive_until(all_stopped(["a", "b"]), 60)
        code, err = proc.wait(timeout=60), proc.stderr.read()
        assert code == 0, err
    finally:
        proc.kill()
        sub.close()
    assert "adding camera b" in err and "removing camera a" in err and "take effect only after a restart" not in err
    b = [m["window_id"] for m in sub.of("verdict", "b")]
    assert b == list(range(len(b)))
    assert all(m["runtime"]["engine"] == "ray" for m in sub.of("health"))


def test_an_address_where_no_ray_head_answers_is_a_config_error_at_once(tmp_path, free_endpoint):
    import time
    config = demo_config(tmp_path, free_endpoint, engine="ray", address=free_endpoint.removeprefix("tcp://"))
    t0 = time.monotonic()
    proc = start(config)
    assert proc.wait(timeout=120) == 2
    err = proc.stderr.read()
    assert "config error: runtime.address 127.0.0.1:" in err and "no Ray head answers there" in err, err
    assert time.monotonic() - t0 < 60          # not Ray's own minutes of retrying


def test_workers_no_node_has_room_for_fail_with_the_setting_named(tmp_path, cluster, free_endpoint):
    config = demo_config(tmp_path, free_endpoint, engine="ray", address=cluster.address, start_timeout_s=30,
                         cameras={"num_gpus": 1})           # the cluster has no GPU
    proc = start(config, "--replay", "fast")
    code, err = proc.wait(timeout=180), proc.stderr.read()
    assert code == 1, err
    assert "camera lobby: its camera worker was not placed within runtime.start_timeout_s (30 s)" in err, err
    assert "runtime.cameras wants 1 GPU in all and the cluster has 0" in err

    config = demo_config(tmp_path, free_endpoint, engine="ray", address=cluster.address, start_timeout_s=10,
                         models={"num_cpus": 64})
    proc = start(config)
    assert proc.wait(timeout=180) == 2
    assert "config error: runtime.models: 1 model worker(s) with 64 CPU and 0 GPU each were not placed within " \
           "runtime.start_timeout_s (10 s)" in proc.stderr.read()


def test_no_stage_imports_ray():
    """The stages run under either runtime: none of them (nor the local runtime) needs Ray."""
    import subprocess
    import sys
    code = ("import sys, stream.pipeline, stream.ingest.camera, stream.scene.graph, stream.llm.detector, "
            "stream.detection.events, stream.alerts.publisher; print('ray' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


def test_a_live_camera_worker_holds_at_most_in_flight_scene_graphs_and_counts_what_it_drops(tmp_path, vtest,
                                                                                          tmp_path_factory, models_dir):
    """The camera worker as a plain object (no cluster needed): nobody pulls for a while, so its
    live camera must drop its oldest windows and keep the newest `in_flight`."""
    import time
    from stream.ingest.clips import camera_clip
    from stream.ray_runtime import CameraWorker
    from tests.servers import RtspServer
    clip = camera_clip(vtest, tmp_path_factory.mktemp("live") / "vtest20.mp4", 20.0)
    with RtspServer({"/lobby": clip}) as server:
        config = write_config(tmp_path, {"lobby": {"url": server.url("/lobby")}}, _port(), models_dir,
                              windows={"length_s": 1.0, "stride_s": 0.5, "sample_fps": 2.0},
                              queues={"windows": 2}, runtime={"engine": "ray", "in_flight": 2})
        worker = CameraWorker(load_config(config), "lobby")
        try:
            worker.start(token=1)
            time.sleep(10)                       # 19 windows' worth of stream, nobody pulling
            got = worker.pull(timeout_s=1.0)
        finally:
            worker.stop()
            deadline = time.monotonic() + 30          # its threads end with the stream's end
            while time.monotonic() < deadline and not any(
                    isinstance(i, EndOfStream) for i in worker.pull(timeout_s=0.5)["items"]):
                pass
            worker.close()
    ids = [g.window_id for g in got["items"]]
    assert 1 <= len(ids) <= 2 and ids == sorted(ids)
    counters = got["counters"]
    assert counters["windows_dropped"] >= 5 and counters["windows_emitted"] >= counters["windows_dropped"] + len(ids)
    assert ids[-1] >= counters["windows_dropped"]      # what it kept are the newest
    assert ("streaming", None) in [(s, d) for s, d in got["states"]]
