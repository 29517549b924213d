"""Driving the command line end to end: configs, the process, and a real ZeroMQ subscriber."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml
import zmq

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
