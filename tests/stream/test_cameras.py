"""The running cameras without a pipeline: reload adds, removes and restarts them, each only once
its old instance has flushed, and never touches the others."""
from __future__ import annotations

from pathlib import Path

from stream.cameras import Cameras, start_phases
from stream.config import CameraConfig


class Runner:
    kind, name = "file", "x"

    def __init__(self, cfg: CameraConfig):
        self.cfg, self.started, self.stopped = cfg, False, False

    def start(self, after_s: float = 0.0):
        self.started = True

    def stop(self):
        self.stopped = True

    def join(self, timeout):
        pass


class Runtime:
    def __init__(self):
        self.made: list[tuple[str, CameraConfig]] = []

    def camera(self, host, camera, cfg):
        self.made.append((camera, cfg))
        return Runner(cfg)


def cam(path: str) -> CameraConfig:
    return CameraConfig(url=f"rtsp://127.0.0.1:8554{path}")


def started(n: int = 2):
    cams = Cameras(Runtime(), host=None)
    for i in range(n):
        cams.add(f"c{i}", cam(f"/v/{i}.avi"))
        cams.start(f"c{i}")
    return cams


def test_an_added_camera_starts_and_a_removed_one_goes_once_flushed():
    cams = started()
    keep = cams.sources["c0"]
    old = {"c0": cam("/v/0.avi"), "c1": cam("/v/1.avi")}
    cams.reload(old, {"c0": old["c0"], "c2": cam("/v/2.avi")})
    assert cams.sources["c2"].started and cams.sources["c1"].stopped and "c1" in cams.sources   # still flushing
    cams.finished("c1", "stopped")
    assert "c1" not in cams.sources and "c1" not in cams.stats and "c1" not in cams.ended
    assert cams.sources["c0"] is keep and not keep.stopped and cams.running()


def test_a_changed_camera_restarts_with_its_new_config_after_its_old_instance_ended():
    cams = started()
    old = {"c0": cam("/v/0.avi"), "c1": cam("/v/1.avi")}
    first = cams.sources["c1"]
    cams.reload(old, {"c0": old["c0"], "c1": cam("/v/other.avi")})
    assert first.stopped and cams.sources["c1"] is first              # not yet: its windows flush first
    cams.finished("c1", "stopped")
    assert cams.sources["c1"] is not first and cams.sources["c1"].started
    assert cams.sources["c1"].cfg.url.endswith("/v/other.avi") and "c1" not in cams.ended


def test_a_failed_camera_is_forgotten_or_restarted_at_once_and_one_readded_while_flushing_waits():
    cams = started()
    old = {"c0": cam("/v/0.avi"), "c1": cam("/v/1.avi")}
    cams.finished("c0", "failed: refused")
    assert cams.ended == {"c0": "failed: refused"}
    cams.reload(old, {"c1": old["c1"]})                                # nothing left of c0 to flush
    assert "c0" not in cams.sources
    cams.reload({"c1": old["c1"]}, {})                                 # c1 removed ...
    cams.reload({}, {"c1": old["c1"]})                                 # ... and added back while it flushes
    flushing = cams.sources["c1"]
    cams.finished("c1", "stopped")
    assert cams.sources["c1"] is not flushing and cams.sources["c1"].started and cams.running()


def test_cameras_paced_in_real_time_start_spread_over_their_stride_and_fast_replays_at_once():
    cams = {"a": CameraConfig(url="rtsp://cam/1"), "b": CameraConfig(url="rtsp://cam/2"),
            "c": CameraConfig(url="rtsp://cam/3"), "d": CameraConfig(url="rtsp://cam/4"),
            "quick": CameraConfig(path=Path(__file__), replay="fast")}
    phases = start_phases(cams, lambda camera: 2.0)
    assert phases == {"a": 0.0, "b": 0.5, "c": 1.0, "d": 1.5, "quick": 0.0}
