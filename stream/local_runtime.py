"""The local runtime (`runtime.engine: local`, the default): every stage in this process.

One thread per camera runs its ingest stage (stream/ingest/camera.py) into the scene stage's
queues; `runtime.scene_workers` threads build the cameras' scene graphs (stream/scene/stage.py's
`ScenePool`, each camera on one of them), and the models run on the coordinator's detector thread (`InlineScorer`). stream/ray_runtime.py runs the same
stages as actors.
"""
from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING, Callable

import numpy as np

from stream.config import CameraConfig, WindowConfig
from stream.ingest.camera import CameraIngest
from stream.ingest.source import VideoSource
from stream.runtime import CameraHost
from stream.types import EndOfStream, SceneGraph

if TYPE_CHECKING:
    from stream.detection.registry import Detector


class LocalCamera:
    """A camera's ingest on a thread of this process; its windows go to the shared scene stage."""

    def __init__(self, host: CameraHost, camera: str, source: VideoSource, windows: WindowConfig, policy: str):
        self.host, self.camera, self.source, self.windows, self.policy = host, camera, source, windows, policy
        self.kind, self.name = source.kind, source.name
        self._thread: threading.Thread | None = None
        self.ingest: CameraIngest | None = None

    def start(self, after_s: float = 0.0) -> None:
        self._thread = threading.Thread(target=self._run, args=(after_s,), name=f"source-{self.camera}", daemon=True)
        self._thread.start()

    def _run(self, after_s: float) -> None:
        host, policy = self.host, self.policy
        self.source.stop.wait(after_s)
        ingest = self.ingest = CameraIngest(self.source, self.windows, host.stats_of(self.camera), host.ring_of(self.camera))
        reason = ingest.run(lambda window: host.emit_window(window, policy))
        host.emit_window(EndOfStream(self.camera, reason), policy)

    def stop(self) -> None:
        self.source.stop.set()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def counters(self) -> dict[str, int]:
        return self.ingest.counters() if self.ingest is not None else {}

    def frame(self, window_id: int) -> np.ndarray | None:
        return self.ingest.frame(window_id) if self.ingest is not None else None

    def scored(self, window_id: int) -> None:
        if self.ingest is not None:
            self.ingest.scored(window_id)


class LocalRuntime:
    """Threads in this process (the default): `make_source` opens each camera's source."""
    engine, scenes_built_here = "local", True

    def __init__(self, make_source: Callable[[str, CameraConfig, Callable], VideoSource]):
        self.make_source = make_source

    def camera(self, host: CameraHost, camera: str, cfg: CameraConfig) -> LocalCamera:
        def on_state(state: str, detail: str | None) -> None:
            host.state_changed(camera, state, detail)
        source = self.make_source(camera, cfg, on_state, **({"record": host.cfg.recordings}
                                                           if host.cfg.records(camera) else {}))
        return LocalCamera(host, camera, source, cfg.windows or host.cfg.windows, host.cfg.windows_policy_of(cfg))

    def close(self) -> None:
        pass


class InlineScorer:
    """The local runtime's models: each batch runs on the detector thread as it is submitted."""
    parallel, restarts = 1, 0

    def __init__(self, detector: Detector):
        self.detector = detector
        self.max_batch, self.max_wait_s = detector.max_batch, detector.max_wait_s
        self.explains = detector.explains

    def submit(self, scenes: list[SceneGraph]) -> Future:
        done: Future = Future()
        done.set_result(self.detector.batch(scenes))
        return done

    def explain(self, scene: SceneGraph, category: str, start: float, end: float) -> str:
        return self.detector.explain(scene, category, start, end)
