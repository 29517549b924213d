"""The scene stage's loop: cameras' windows in, their scene graphs out, built in batches across
cameras. The local runtime runs it on `runtime.scene_workers` threads of the coordinator's
process (`ScenePool`, each camera on one of them); on Ray each camera worker runs it on its own
windows (stream/ray_runtime.py)."""
from __future__ import annotations

import queue
import threading
import time
from typing import Callable

from stream.queues import StageQueue
from stream.scene.graph import SceneBuilder
from stream.types import EndOfStream, SceneGraph, Window


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


class ScenePool:
    """The local runtime's scene workers: `len(builders)` threads, each running `scene_stage` over
    its own windows queue with its own SceneBuilder. A camera's windows all go to one worker (the
    one with the fewest cameras when its first window comes), where its tracks and caches live, so
    its scene graphs stay in window order; ONNX Runtime and OpenCV release the GIL while they
    work, so the workers use as many cores. A camera is given back at its end of stream: a camera
    restarted by a reload may go to another worker, since it starts only once its old instance
    has flushed."""

    def __init__(self, builders: list[SceneBuilder], size: int, on_drop: Callable | None = None):
        self.builders = builders
        self.queues = [StageQueue(size, on_drop=on_drop) for _ in builders]
        self._worker: dict[str, int] = {}
        self._lock = threading.Lock()

    def put(self, item: Window | EndOfStream, *, policy: str | None = None,
            abort: threading.Event | None = None) -> bool:
        with self._lock:
            worker = self._worker.get(item.camera)
            if worker is None:
                load = [0] * len(self.queues)
                for w in self._worker.values():
                    load[w] += 1
                worker = self._worker[item.camera] = load.index(min(load))
            if isinstance(item, EndOfStream):
                del self._worker[item.camera]
        return self.queues[worker].put(item, policy=policy, abort=abort)

    def qsize(self) -> int:
        return sum(q.qsize() for q in self.queues)

    def person_scores(self, default: float, cameras: dict[str, float]) -> list[str]:
        """Each worker's SceneBuilder.person_scores; the cameras below the models' floor."""
        return sorted({cam for b in self.builders for cam in b.person_scores(default, cameras)})

    def pose_every(self, default: int, cameras: dict[str, int]) -> None:
        """Each worker's SceneBuilder.pose_every."""
        for b in self.builders:
            b.pose_every(default, cameras)

    def run(self, worker: int, put: Callable[[SceneGraph | EndOfStream], object], max_batch: int, max_wait_s: float,
            running: Callable[[], bool]) -> None:
        """Worker `worker`'s loop (on a thread of its own)."""
        scene_stage(self.builders[worker], self.queues[worker], put, max_batch, max_wait_s, running)
