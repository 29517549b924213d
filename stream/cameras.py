"""The cameras a pipeline runs: each one's runner (made by the runtime), its stats, zones and latest
health and scene. Cameras come and go while the pipeline runs (`reload`): a removed camera's
source stops and its end of stream flushes it through every stage before it is forgotten; an added
one starts; a changed one restarts once its old instance has flushed. The others never notice.
Used from the coordinator's calling thread (stream/pipeline.py); the HTTP read model
(stream/http/readmodel.py) reads the dicts."""
from __future__ import annotations

import logging
from typing import Callable

from stream.config import CameraConfig
from stream.metrics import CameraStats
from stream.runtime import CameraHost, CameraRunner, Runtime
from stream.scene.zones import Zones
from stream.types import SceneGraph

log = logging.getLogger(__name__)


class Cameras:
    def __init__(self, runtime: Runtime, host: CameraHost):
        self.runtime, self.host = runtime, host
        self.sources: dict[str, CameraRunner] = {}
        self.stats: dict[str, CameraStats] = {}
        self.zones: dict[str, Zones] = {}          # camera -> where its events may open (stream/scene/zones.py)
        self.drawn_zones: dict[str, dict] = {}     # camera -> zones drawn on the console, kept (they win)
        self.last_health: dict[str, dict] = {}     # camera -> its latest health message (the HTTP API's cameras)
        self.last_scene: dict[str, SceneGraph] = {}   # camera -> its latest scored window's scene (snapshots)
        self.ended: dict[str, str] = {}            # camera -> EndOfStream.reason (cameras still configured)
        self._restart: dict[str, CameraConfig] = {}   # changed cameras, started once the old instance ended
        self._removed: set[str] = set()               # cameras being removed (their end is not a result)

    def add(self, camera: str, cfg: CameraConfig) -> None:
        runner = self.runtime.camera(self.host, camera, cfg)
        self.sources[camera] = runner
        self.stats[camera] = CameraStats(camera, runner.kind, runner.name)
        self.ended.pop(camera, None)
        self.zones[camera] = Zones(self.drawn_zones.get(camera, cfg.zones))

    def start(self, camera: str, after_s: float = 0.0) -> None:
        self.sources[camera].start(after_s)

    def forget(self, camera: str) -> None:
        del self.sources[camera], self.stats[camera]
        for d in (self.last_health, self.last_scene, self.zones, self.ended):
            d.pop(camera, None)

    def running(self) -> bool:
        return any(cam not in self.ended for cam in self.sources)

    def reload(self, old: dict[str, CameraConfig], want: dict[str, CameraConfig]) -> None:
        """From the enabled cameras `old` to `want`."""
        for cam in sorted(old.keys() | want.keys()):
            if cam in want and cam not in old:
                log.info("reload: adding camera %s", cam)
                if cam in self.sources:       # still flushing an earlier removal: start after it
                    self._restart[cam] = want[cam]
                    self._removed.discard(cam)
                else:
                    self.add(cam, want[cam])
                    self.start(cam)
            elif cam in old and cam not in want:
                log.info("reload: removing camera %s", cam)
                self._restart.pop(cam, None)
                if cam in self.ended:          # already ended (failed): nothing to flush
                    self.forget(cam)
                    continue
                self._removed.add(cam)
                self.sources[cam].stop()
            elif old[cam] != want[cam]:
                log.info("reload: camera %s changed; restarting it", cam)
                if cam in self.ended:
                    self.forget(cam)
                    self.add(cam, want[cam])
                    self.start(cam)
                    continue
                self._restart[cam] = want[cam]
                self.sources[cam].stop()

    def finished(self, camera: str, reason: str) -> None:
        """The camera's end of stream went out: a removed camera is forgotten, a changed one starts
        again, any other stays with its reason (a failed camera stays on health until removed)."""
        self.sources[camera].join(timeout=5.0)
        if camera in self._removed or camera in self._restart:
            self._removed.discard(camera)
            self.forget(camera)
            if camera in self._restart:
                self.add(camera, self._restart.pop(camera))
                self.start(camera)
        else:
            self.ended[camera] = reason


def start_phases(cameras: dict[str, CameraConfig], stride_of: Callable[[str], float]) -> dict[str, float]:
    """When each camera starts, in seconds from now. Cameras paced in real time (live ones, and
    files replayed in real time) are spread evenly over their stride, so that their windows do not
    all close at once and reach the scene stage in one burst; fast replays start at once."""
    paced = [cam for cam, c in cameras.items() if c.live or c.replay == "realtime"]
    phases = dict.fromkeys(cameras, 0.0)
    phases.update({cam: i / len(paced) * stride_of(cam) for i, cam in enumerate(paced)})
    return phases
