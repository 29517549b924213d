"""The local runtime (`runtime.engine: local`, the default): every stage in this process.

One thread per camera runs its ingest stage (stream/ingest/camera.py) into the shared windows
queue; one thread runs the scene stage over all cameras' windows (`scene_stage`), and the models
run on the coordinator's detector thread (`InlineModels`). stream/ray_runtime.py runs the same
stages as actors.
"""
from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Callable

import numpy as np

from stream.config import CameraConfig, WindowConfig
from stream.ingest.camera import CameraIngest
from stream.ingest.source import VideoSource
from stream.queues import StageQueue
from stream.scene.graph import SceneBuilder
from stream.types import EndOfStream, SceneGraph

if TYPE_CHECKING:
    from stream.detectors import Detector
    from stream.pipeline import Pipeline


class LocalCamera:
    """A camera's ingest on a thread of this process; its windows go to the shared scene stage."""

    def __init__(self, pipeline: Pipeline, camera: str, source: VideoSource, windows: WindowConfig):
        self.pipeline, self.camera, self.source, self.windows = pipeline, camera, source, windows
        self.kind, self.name = source.kind, source.name
        self._thread: threading.Thread | None = None
        self.ingest: CameraIngest | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"source-{self.camera}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        p = self.pipeline
        policy = p.cfg.queues.windows_policy
        if policy == "auto":
            policy = "drop_oldest" if self.source.live else "block"
        ring = p.evidence.ring(self.camera) if p.evidence is not None else None
        ingest = self.ingest = CameraIngest(self.source, self.windows, p.stats[self.camera], ring)
        reason = ingest.run(lambda window: p.emit_window(window, policy))
        p.emit_window(EndOfStream(self.camera, reason), policy)

    def stop(self) -> None:
        self.source.stop.set()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def counters(self) -> dict[str, int]:
        return {"reconnects": self.source.reconnects, "decode_errors": self.source.decode_errors}

    def frame(self, window_id: int) -> np.ndarray | None:
        return self.ingest.frame(window_id) if self.ingest is not None else None

    def scored(self, window_id: int) -> None:
        if self.ingest is not None:
            self.ingest.scored(window_id)


class LocalRuntime:
    """Threads in this process (the default): `make_source` opens each camera's source."""
    engine, scene_stage = "local", True

    def __init__(self, make_source: Callable[[str, CameraConfig, Callable], VideoSource]):
        self.make_source = make_source

    def camera(self, pipeline: Pipeline, camera: str, cfg: CameraConfig) -> LocalCamera:
        def on_state(state: str, detail: str | None) -> None:
            pipeline.state_changed(camera, state, detail)
        source = self.make_source(camera, cfg, on_state)
        return LocalCamera(pipeline, camera, source, cfg.windows or pipeline.cfg.windows)

    def close(self) -> None:
        pass


class InlineModels:
    """The local runtime's models: each batch runs on the detector thread as it is submitted."""
    parallel, restarts = 1, 0

    def __init__(self, detector: Detector):
        self.detector = detector
        self.max_batch, self.max_wait_s = detector.max_batch, detector.max_wait_s
        self.explains = getattr(detector, "explains", False) and hasattr(detector, "explain")

    def submit(self, scenes: list[SceneGraph]) -> Future:
        done: Future = Future()
        done.set_result(self.detector.batch(scenes))
        return done

    def explain(self, scene: SceneGraph, category: str, start: float, end: float) -> str:
        return self.detector.explain(scene, category, start, end)


def scene_stage(scene: SceneBuilder, windows: StageQueue, put: Callable[[SceneGraph | EndOfStream], object],
                max_batch: int, max_wait_s: float, running: Callable[[], bool]) -> None:
    """Windows -> scene graphs, while `running()`. Windows are gathered, across cameras, until they
    hold `max_batch` new frames or `max_wait_s` has passed since the first, and built together; an
    end of stream closes the batch it interrupts and follows it."""
    held = None
    while running():
        try:
            item, held = held or windows.get(timeout=0.1), None
        except queue.Empty:
            continue
        if isinstance(item, EndOfStream):
            scene.forget(item.camera)
            put(item)
            continue
        items, frames, deadline = [item], scene.new_frames(item), time.monotonic() + max_wait_s
        while frames < max_batch:
            try:
                nxt = windows.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if isinstance(nxt, EndOfStream):
                held = nxt
                break
            items.append(nxt)
            frames += scene.new_frames(nxt)
        for graph in scene.build_many(items):
            put(graph)


def open_source(camera: str, c: CameraConfig, *, on_state: Callable[[str, str | None], None] | None = None,
                replay: str | None = None, loop: bool | None = None, duration_s: float | None = None,
                fast_until_s: float = 0.0) -> VideoSource:
    """A camera's source as configured, with the command line's overrides (`replay`, `loop`, `duration_s`)."""
    return VideoSource(camera, c.target, is_file=c.path is not None, is_device=c.device is not None,
                       replay=replay or c.replay, loop=c.loop if loop is None else loop, ingest=c.ingest,
                       stop=threading.Event(), max_stream_s=duration_s, on_state=on_state,
                       fast_until_s=fast_until_s)
