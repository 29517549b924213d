"""Decode a camera's video with PyAV into timestamped frames: files (paced or fast, looped) and URLs.

Stream time starts at 0 with the camera's first frame, is monotonic, and continues across loops.
Frames come out as `Decoded` (timestamp + a way to make the BGR image), so that frames which
will not be sampled are never converted.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import av
import cv2
import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decoded:
    seq: int
    ts: float                            # stream seconds
    wall: float                          # wall-clock time the frame was captured (emitted)
    pixels: Callable[[], np.ndarray]     # makes the (H, W, 3) uint8 BGR image (deferred)


class SourceError(RuntimeError):
    """The source cannot be opened or decoded; the message names the camera and the cause."""


class VideoSource:
    """One camera's decoder. `frames()` yields until the input ends, `stop` is set, or
    `max_stream_s` of stream time has passed."""

    def __init__(self, camera: str, target: str, *, is_file: bool, replay: str = "realtime", loop: bool = False,
                 stop: threading.Event | None = None, max_stream_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] | None = None):
        self.camera, self.target, self.is_file = camera, target, is_file
        self.paced = is_file and replay == "realtime"
        self.loop = loop and is_file
        self.stop = stop or threading.Event()
        self.max_stream_s = max_stream_s
        self._clock = clock
        self._sleep = sleep or (lambda s: self.stop.wait(s))
        self.declared_fps: float | None = None
        self.end_reason = "finished"

    def _open(self):
        try:
            container = av.open(self.target, options={} if self.is_file else {"rtsp_transport": "tcp"},
                                timeout=None if self.is_file else 10.0)
        except (av.FFmpegError, OSError) as e:
            raise SourceError(f"camera {self.camera}: cannot open {_redact(self.target)}: {e}") from e
        if not container.streams.video:
            container.close()
            raise SourceError(f"camera {self.camera}: {_redact(self.target)} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"   # frame + slice threads inside FFmpeg
        if stream.average_rate:
            self.declared_fps = float(stream.average_rate)
        return container, stream

    def frames(self) -> Iterator[Decoded]:
        seq = 0
        offset = 0.0                    # stream time added for each loop of a file
        last_ts: float | None = None
        t0_clock: float | None = None
        while True:
            container, stream = self._open()
            step = 1.0 / (self.declared_fps or 25.0)
            first_pts_time: float | None = None
            try:
                for frame in container.decode(stream):
                    if self.stop.is_set():
                        self.end_reason = "stopped"
                        return
                    t = frame.time
                    if t is None:                       # no timestamp: continue at the nominal rate
                        ts = (last_ts + step) if last_ts is not None else 0.0
                    else:
                        if first_pts_time is None:
                            first_pts_time = t
                        ts = offset + (t - first_pts_time)
                        if last_ts is not None and ts <= last_ts:  # repeated or backwards PTS
                            ts = last_ts + step
                    if last_ts is not None and ts - last_ts > 0:
                        step = min(ts - last_ts, 1.0)
                    if self.max_stream_s is not None and ts >= self.max_stream_s - 1e-6:
                        self.end_reason = "duration"
                        return
                    if self.paced:
                        now = self._clock()
                        if t0_clock is None:
                            t0_clock = now - ts
                        delay = t0_clock + ts - now
                        if delay > 0:
                            self._sleep(delay)
                            if self.stop.is_set():
                                self.end_reason = "stopped"
                                return
                    last_ts = ts
                    yield Decoded(seq, ts, time.time(), _bgr(frame))
                    seq += 1
            except av.FFmpegError as e:
                raise SourceError(f"camera {self.camera}: decoding {_redact(self.target)} failed: {e}") from e
            finally:
                container.close()
            if not self.loop or last_ts is None:
                return
            offset = last_ts + step
            log.info("camera %s: looping %s at stream time %.2f s", self.camera, _redact(self.target), offset)


def _bgr(frame: av.VideoFrame) -> Callable[[], np.ndarray]:
    """A deferred conversion to BGR; for yuv420p (most cameras) OpenCV's converter is ~2x swscale's."""
    if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0:
        return lambda: cv2.cvtColor(frame.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2BGR_I420)
    return lambda: frame.to_ndarray(format="bgr24")


def _redact(target: str) -> str:
    """Never print credentials: rtsp://user:pass@host/ -> rtsp://***@host/."""
    scheme, sep, rest = target.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return target
