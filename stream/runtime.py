"""The interfaces between the coordinator (stream/pipeline.py) and a runtime (stream/local_runtime.py,
stream/ray_runtime.py): what a runtime gives the coordinator (`Runtime`, a `CameraRunner` per
camera, and the scorer that runs the detector: stream/detection/stage.py's `Scorer`), and all a camera runner may use of
the coordinator (`CameraHost`). Neither side imports the other's module."""
from __future__ import annotations

from typing import Protocol

import numpy as np

from stream.config import CameraConfig, HawkwatchConfig
from stream.frames import FrameRing
from stream.metrics import CameraStats
from stream.types import EndOfStream, SceneGraph, Window


class CameraHost(Protocol):
    """The coordinator, as a camera runner sees it; every method may be called from any thread."""
    cfg: HawkwatchConfig        # the running config (its queues' policy)

    def emit_window(self, window: Window | EndOfStream, policy: str) -> bool: ...   # False: the run aborted
    def scene_arrived(self, scene: SceneGraph | EndOfStream, waited_ms: float = 0.0) -> bool: ...
    def state_changed(self, camera: str, state: str, detail: str | None) -> None: ...
    def stats_of(self, camera: str) -> CameraStats: ...
    def ring_of(self, camera: str) -> FrameRing | None: ...     # where evidence frames are kept, if anywhere


class CameraRunner(Protocol):
    """Runs one camera's ingest (locally a thread feeding the shared scene stage; on Ray an actor
    that also builds the camera's scene graphs). Whatever it produces ends with an EndOfStream."""
    kind: str               # file | rtsp | http | device ...
    name: str               # the target, redacted

    def start(self, after_s: float = 0.0) -> None: ...   # its source opens `after_s` later (a stop ends the wait)
    def stop(self) -> None: ...
    def join(self, timeout: float) -> None: ...
    def counters(self) -> dict[str, int]: ...
    def frame(self, window_id: int) -> np.ndarray | None: ...   # a recent window's last frame (snapshots)
    def scored(self, window_id: int) -> None: ...                 # frames of earlier windows may go


class Runtime(Protocol):
    """What runs the cameras and the models (local threads, or Ray actors)."""
    engine: str
    scenes_built_here: bool   # cameras hand this process windows for its scene stage (else scene graphs)

    def camera(self, host: CameraHost, camera: str, cfg: CameraConfig) -> CameraRunner: ...
    def close(self) -> None: ...
