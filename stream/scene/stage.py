"""The scene stage's loop: cameras' windows in, their scene graphs out, built in batches across
cameras. The local runtime runs it on one thread of the coordinator's process
(stream/pipeline.py); on Ray each camera worker runs it on its own windows
(stream/ray_runtime.py)."""
from __future__ import annotations

import queue
import time
from typing import Callable

from stream.queues import StageQueue
from stream.scene.graph import SceneBuilder
from stream.types import EndOfStream, SceneGraph


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
