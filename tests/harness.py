"""Driving the command line end to end: configs, the process, and a real ZeroMQ subscriber."""
from __future__ import annotations

import json
import queue
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import yaml
import zmq

from stream.alerts.outbox import Outbox
from stream.config import beside
from stream.types import SceneGraph, Window

ROOT = Path(__file__).resolve().parents[1]


def next_port(endpoint: str) -> str:
    """The port after a tcp endpoint's (the query endpoint beside a free PUB endpoint)."""
    return beside(endpoint, 1)


def write_config(tmp_path: Path, cameras: dict, endpoint: str, models_dir: Path, replay="fast", **sections) -> Path:
    """A config for `cameras` ({id: video file, or a camera mapping}); `sections` replace defaults."""
    cfg = {
        "version": 1, "replay": replay,
        "cameras": {cam: (c if isinstance(c, dict) else {"path": str(c)}) for cam, c in cameras.items()},
        "windows": {"length_s": 4.0, "stride_s": 2.0, "sample_fps": 2.0},
        "models": {"threads": 2, "person_detector": {"path": str(models_dir / "ssdlite_person.onnx")},
                   "pose": {"path": str(models_dir / "pose_landmark_full.onnx")}},
        "alerts": {"endpoint": endpoint, "health_interval_s": 0.5, "wait_for_subscriber_s": 20,
                   "query_endpoint": next_port(endpoint),
                   "chat_endpoint": next_port(next_port(endpoint)), "outbox": {"path": str(tmp_path / "outbox.sqlite")},
                   "evidence": {"folder": str(tmp_path / "evidence")}},
        **sections,
    }
    path = tmp_path / "hawkwatch.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def demo_config(tmp_path: Path, endpoint: str, labels: dict | None = None, http: dict | None = None,
                **runtime) -> Path:
    """configs/demo.yaml as shipped, with its files found from tmp_path, free endpoints, `http` (none by
    default: tests run several pipelines, no fixed port) and `runtime`."""
    cfg = yaml.safe_load((ROOT / "configs/demo.yaml").read_text())
    cfg["cameras"]["lobby"]["path"] = str(ROOT / "data/vtest.avi")
    for part in ("person_detector", "pose"):
        cfg["models"][part]["path"] = str(ROOT / "configs" / cfg["models"][part]["path"])
    cfg["detector"]["hawkeye"]["model"] = str(ROOT / "models/hawkeye")
    cfg["alerts"].update(endpoint=endpoint, query_endpoint=next_port(endpoint),
                         chat_endpoint=next_port(next_port(endpoint)), wait_for_subscriber_s=0,
                         outbox={"path": str(tmp_path / "outbox.sqlite")}, evidence={"folder": str(tmp_path / "ev")})
    cfg["http"] = http
    if labels:
        cfg["cameras"]["lobby"]["labels"] = labels
    if runtime:
        cfg["runtime"] = runtime
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


class Subscriber:
    def __init__(self, endpoint: str):
        self.sock = zmq.Context.instance().socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.messages: list[tuple[str, dict]] = []

    def receive_until(self, done, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not done(self.messages):
            assert time.monotonic() < deadline, f"timed out; got {len(self.messages)} messages"
            if self.sock.poll(200):
                topic, body = self.sock.recv_multipart()
                self.messages.append((topic.decode(), json.loads(body)))

    def of(self, kind: str, camera: str | None = None) -> list[dict]:
        return [m for t, m in self.messages if m["type"] == kind and (camera is None or m["camera"] == camera)]

    def close(self):
        self.sock.close()


def all_stopped(cameras):
    def done(msgs):
        final = {m["camera"] for _, m in msgs if m["type"] == "health" and m["state"] in ("stopped", "failed")}
        return final >= set(cameras)
    return done


def start(config: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "run_pipeline.py"), "--config", str(config), *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class StubScene:
    """A scene stage without models, optionally slow (a stand-in where a test is about the wiring
    around the scene stage, not its models: the real models cannot be made slow on demand)."""

    def __init__(self, seconds: float = 0.0):
        self.seconds = seconds
        self.batches: list[list[tuple[str, int]]] = []    # (camera, window id) of each batch, in order

    def new_frames(self, window: Window) -> int:
        return len(window.frames)

    def build_many(self, windows: list[Window]) -> list[SceneGraph]:
        self.batches.append([(w.camera, w.window_id) for w in windows])
        time.sleep(self.seconds)
        return [self._graph(w) for w in windows]

    def _graph(self, window: Window) -> SceneGraph:
        return SceneGraph(window.camera, window.window_id, window.start, window.end,
                          np.array([f.ts for f in window.frames]), np.array([f.wall for f in window.frames]),
                          (0, 0), (), latency_ms={"scene": self.seconds * 1000}, final=window.final,
                          gaps=window.gaps, wall_start=window.wall_start, wall_end=window.wall_end)

    def person_scores(self, default: float, cameras: dict, floor: float | None = None) -> list[str]:
        return []                       # no models: every score applies

    def pose_every(self, default: int, cameras: dict) -> None:
        pass                            # no pose model

    def forget(self, camera: str) -> None:
        pass


def drone_geometry(*, altitude: float = 120.0, off_nadir: float = 35.0, heading: float = 30.0,
                   size: tuple[int, int] = (640, 360)) -> dict:
    """An alert's `geometry` as the pipeline makes it (stream/scene/geolocate.py `place`): one
    frame of a drone above (45.0, 7.0) looking `off_nadir` degrees from straight down, with two
    people and a left object in it."""
    from stream.scene.geolocate import place, with_ground_truth
    from stream.types import PersonTrack, SensorMetadata
    meta = with_ground_truth(SensorMetadata(platform_heading=heading, platform_pitch=0.0, platform_roll=0.0,
                                            sensor_rel_az=0.0, sensor_rel_el=off_nadir - 90.0, sensor_rel_roll=0.0,
                                            sensor_lat=45.0, sensor_lon=7.0, sensor_alt=250.0 + altitude, hfov=40.0,
                                            time_us=1_700_000_000_000_000), size, 250.0)
    tracks = tuple(PersonTrack(k, np.array([True]), np.array([box], float), np.array([0.9]), np.zeros((1, 17, 3)))
                   for k, box in ((3, (300, 150, 320, 210)), (7, (360, 170, 378, 222))))
    scene = SceneGraph("drone1", 0, 0.0, 1.0, np.array([0.5]), np.array([1000.5]), size, tracks,
                       objects=(np.array([[200.0, 250.0, 230.0, 280.0, 40.0, 2.0]]),), sensors=(meta,))
    geometry = place(scene, 0.0, 1.0)
    assert geometry is not None, "the drone's metadata places nothing"
    return geometry


class OutboxPipeline:
    """A pipeline stand-in for the HTTP API and the console over a real outbox: no camera runs, the
    events are what the outbox holds (for tests of what the pages show, not of the pipeline)."""

    def __init__(self, outbox: Outbox):
        self.publisher = SimpleNamespace(outbox=outbox, query=None)
        self.cameras = SimpleNamespace(drawn_zones={})
        self.observers, self.sources, self.last_health, self.stats = [], {}, {}, {}
        self.windows = self.scenes = self.to_publish = queue.Queue()
        self.recordings = None


def placed_outbox(path: Path) -> tuple[Outbox, dict[str, dict]]:
    """An outbox at `path` holding a drone's event (`flown`, with `drone_geometry()`) and a fixed
    camera's (`fixed`, none), open (the caller closes it); and each event's alert as stored."""
    from stream.alerts.publisher import alert_payload
    from stream.types import Alert
    now = time.time()
    alerts = [Alert("flown", "drone1", "open", "fighting", 0.91, 2.0, 6.0, now - 60, now - 56,
                    "two people grapple by the track", 3, geometry=drone_geometry()),
              Alert("fixed", "lobby", "open", "loitering", 0.72, 1.0, 9.0, now - 30, now - 22, "one stays", 4)]
    box = Outbox(path)
    stored = box.append([alert_payload(a) for a in alerts])
    return box, {a.alert_id: json.loads(s.body) for a, s in zip(alerts, stored)}
