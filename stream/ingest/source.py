"""Decode one camera with PyAV into timestamped frames: files, RTSP, MPEG-TS over UDP, SRT, HLS and
local devices, surviving what real networks do.

Files replay paced or fast, looped or not, and end. Live sources never end on their own: when the
stream breaks, stalls (the watchdog: no frame for `watchdog_s`) or cannot be opened, the source
waits out an exponential backoff and reconnects, forever unless `max_reconnects` says otherwise.
Every state change goes to `on_state` (the pipeline publishes it on `health/<camera>`); errors
are logged at most once per 30 s per kind; credentials in URLs are never printed.

Stream time (stream/ingest/clock.py) starts at 0 with the first frame and stays monotonic and
continuous across reconnects, loops and PTS resets; outages come out as gaps. Frames come out as
`Decoded`, whose pixels are converted to BGR only if a later stage reads them.
"""
from __future__ import annotations

import logging
import os
import select
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import av
import cv2
import numpy as np

from stream.config import CameraConfig, IngestConfig, RecordingsConfig, source_kind
from stream.ingest.clock import BestEffortTimestamp, StreamClock
from stream.ingest.klv import KlvReader, KlvStats, SensorTrack, klv_payload, klv_stream
from stream.ingest.lifecycle import CONNECTING, FAILED, RECONNECTING, STALLED, STOPPED, STREAMING, Backoff
from stream.ingest.live import LiveFeed
from stream.ingest.recorder import Recorder
from stream.logs import RateLimitedLog
from stream.redact import redact
from stream.types import SensorMetadata

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decoded:
    seq: int
    ts: float                            # stream seconds
    wall: float                          # wall-clock time the frame was captured (decoded, for live sources)
    pixels: Callable[[], np.ndarray]     # makes the (H, W, 3) uint8 BGR image (deferred)
    gap: tuple[float, float] | None = None   # stream time with no frames just before this one
    sensor: SensorMetadata | None = None     # a drone feed's latest KLV metadata at or before this frame


class SourceError(RuntimeError):
    """The source cannot be opened or decoded; the message names the camera and the cause."""


class _Stalled(Exception):
    """The watchdog fired: no frame for watchdog_s."""


class VideoSource:
    """One camera's decoder. `frames()` yields until a file ends, `stop` is set, `max_stream_s` of
    stream time has passed, or a live source is given up (`max_reconnects`)."""

    def __init__(self, camera: str, target: str, *, is_file: bool, is_device: bool = False,
                 replay: str = "realtime", loop: bool = False, ingest: IngestConfig | None = None,
                 stop: threading.Event | None = None, max_stream_s: float | None = None,
                 on_state: Callable[[str, str | None], None] | None = None, fast_until_s: float = 0.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] | None = None):
        self.camera, self.target = camera, target
        self.kind = source_kind(target, is_file=is_file, is_device=is_device)
        self.live = self.kind != "file"
        self.paced = not self.live and replay == "realtime"
        self.loop = loop and not self.live
        self.ingest = ingest or IngestConfig()
        self.stop = stop or threading.Event()
        self.max_stream_s = max_stream_s
        self.fast_until_s = fast_until_s     # a paced replay goes fast before this stream time (a restart catching up)
        self.on_state = on_state             # called with (state, detail) on every change, from this thread
        self._clock = clock
        self._sleep = sleep or (lambda s: self.stop.wait(s))
        self._log = RateLimitedLog(log)
        self.declared_fps: float | None = None
        self.state: str | None = None        # lifecycle.STATES once frames() runs
        self.detail: str | None = None       # why the source is in its state (redacted)
        self.end_reason = "finished"
        self.reconnects = 0                  # a live source's connection attempts after the first (a file's loops are none)
        self.recorder: Recorder | None = None   # continuous recording of the packets (open_source sets it)
        self.live_video = LiveFeed(camera)      # the console's live video (stream/ingest/live.py)
        self.decode_errors = 0               # packets the decoder rejected (corrupt data), skipped
        self.klv = KlvStats()                # a drone feed's KLV metadata packets: read, damaged, out of order
        self._klv_in = None                  # the connection's KLV data stream, if it has one
        self._klv_reader = KlvReader(self.klv)
        self._sensors = SensorTrack(self.klv)
        self._video_t = 0.0                  # the media time of the last video frame decoded (KLV without times)
        self.stamps = StreamClock(camera, live=self.live, gap_s=self.ingest.gap_s)
        self._best_effort = BestEffortTimestamp()
        self._deadline: float | None = None  # live + max_stream_s: the clock reading at which it ends anyway

    @property
    def name(self) -> str:
        return redact(self.target)

    def _set_state(self, state: str, detail: str | None = None) -> None:
        if state == self.state and detail == self.detail:
            return
        self.state, self.detail = state, detail
        if self.on_state:
            self.on_state(state, detail)

    # -- opening -----------------------------------------------------------------------------------
    @property
    def _probe(self) -> dict[str, str]:
        return {"analyzeduration": str(int(self.ingest.probe_s * 1_000_000))}

    def _options(self) -> dict[str, str]:
        opts: dict[str, str] = {}
        if self.kind == "rtsp":
            opts = {"rtsp_transport": self.ingest.rtsp_transport, **self._probe}
        elif self.kind == "udp":
            # a drone's MPEG-TS: never die on a receive-buffer overrun, read a large socket buffer
            opts = {**self._probe, "overrun_nonfatal": "1", "fifo_size": "278876", "buffer_size": str(8 << 20)}
        elif self.kind in ("srt", "http", "rtmp"):
            opts = self._probe
        return {**opts, **self.ingest.options}

    def _open(self):
        if not self.live:
            container = self._open_container(self.target, options={}, timeout=None)
        else:
            fmt = {"format": "v4l2"} if self.kind == "device" else {}
            timeout = (min(self.ingest.open_timeout_s, self._time_left()), self.ingest.watchdog_s)
            try:
                container = self._open_container(self.target, options=self._options(), timeout=timeout, **fmt)
            except _NoProtocol:
                container = _open_relay(self)
        if not container.streams.video:
            container.close()
            raise SourceError(f"camera {self.camera}: {self.name} has no video stream")
        stream = container.streams.video[0]
        if stream.codec_context is None or not stream.codec_context.name:
            container.close()
            raise SourceError(f"camera {self.camera}: {self.name}: unsupported video codec "
                              f"({stream.codec_context.name if stream.codec_context else 'unknown'})")
        stream.thread_type = "AUTO"   # frame + slice threads inside FFmpeg
        # a drone's STANAG 4609 feed: its KLV metadata is demuxed with the video, on a fresh timeline
        self._klv_in = klv_stream(container)
        self._klv_reader, self._sensors = KlvReader(self.klv), SensorTrack(self.klv)
        if stream.average_rate:
            self.declared_fps = float(stream.average_rate)
            self.stamps.set_nominal_fps(self.declared_fps)
        return container, stream

    def _open_container(self, target, **kwargs):
        try:
            return av.open(target, **kwargs)
        except av.ProtocolNotFoundError:
            raise _NoProtocol from None
        except av.ExitError:
            raise SourceError(f"camera {self.camera}: {self.name}: no answer within "
                              f"{self.ingest.open_timeout_s:g} s") from None
        except (av.FFmpegError, OSError) as e:
            raise SourceError(f"camera {self.camera}: cannot open {self.name}: {redact(str(e))}") from None

    # -- decoding ----------------------------------------------------------------------------------
    def _decode(self, container, stream) -> Iterator[av.VideoFrame]:
        """Frames of one connection. Packets the decoder rejects are skipped and counted; for a live
        source, no frame for watchdog_s raises _Stalled (a blocked read ends by PyAV's read timeout)."""
        last_frame = last_packet = self._clock()
        watchdog = self.ingest.watchdog_s
        try:
            for packet in container.demux(*(stream, self._klv_in) if self._klv_in is not None else (stream,)):
                if self.stop.is_set():
                    return
                if self.live:
                    now = self._clock()
                    if now - last_packet > watchdog:
                        # PyAV's read timeout interrupted a blocked read, and the demuxer handed out
                        # what it still held instead of failing: that is a stall too
                        raise _Stalled(f"no data for {now - last_packet:.1f} s (watchdog {watchdog:g} s)")
                    if now - last_frame > watchdog:
                        raise _Stalled(f"data but no decodable frame for {watchdog:g} s")
                    last_packet = now
                if self._klv_in is not None and packet.stream.index == self._klv_in.index:
                    self._metadata(packet)
                    continue
                try:
                    frames = packet.decode()
                except av.FFmpegError as e:
                    if isinstance(e, av.ExitError):
                        raise
                    self.decode_errors += 1
                    self._log(logging.WARNING, "decode", "camera %s: skipping corrupt data in %s: %s",
                              self.camera, self.name, e)
                    frames = []
                self.live_video.packet(packet)
                if self.recorder is not None:
                    self.recorder.packet(packet)      # after decoding: the recorder rebases its timestamps
                if frames and self.live:
                    last_frame = self._clock()
                yield from frames
        except av.ExitError:
            if self.stop.is_set():
                return
            raise _Stalled(f"no data for {watchdog:g} s") from None
        except av.FFmpegError as e:
            if not self.live:   # a damaged file: keep what decoded, say why it ended
                self._log(logging.WARNING, "read", "camera %s: %s ends early: %s", self.camera, self.name, e)
                return
            raise SourceError(f"camera {self.camera}: {self.name} broke: {redact(str(e))}") from None

    def _metadata(self, packet) -> None:
        """A KLV packet: decoded into the sensor track (damage is counted in `klv`, never raised)."""
        pts, data = klv_payload(packet)
        for at, meta in self._klv_reader.feed(data, pts):
            self._sensors.add(meta, at, self._video_t)

    def _time_left(self) -> float:
        """Seconds until a live source's `max_stream_s` runs out on the clock (inf without one)."""
        return float("inf") if self._deadline is None else max(0.05, self._deadline - self._clock())

    def _out_of_time(self) -> bool:
        if self._deadline is not None and self._clock() >= self._deadline:
            self.end_reason = "duration"
            return True
        return False

    def _frame_time(self, frame: av.VideoFrame) -> float | None:
        t = self._best_effort(frame.pts, frame.dts)
        return None if t is None or frame.time_base is None else float(t * frame.time_base)

    def frames(self) -> Iterator[Decoded]:
        seq = 0
        if self.live and self.max_stream_s is not None:
            # a live camera's stream time keeps pace with the clock once it flows; one that never
            # connects must end too
            self._deadline = self._clock() + self.max_stream_s
        backoff = Backoff(self.ingest.backoff_initial_s, self.ingest.backoff_max_s, self.ingest.backoff_jitter)
        t0_clock: float | None = None          # realtime replay: the clock reading at stream time 0
        connected_once = attempted = False
        try:
            while not self.stop.is_set():
                if self._out_of_time():
                    return
                if self.live or not connected_once:     # a file's next loop is not a new connection
                    self._set_state(CONNECTING)
                if self.live and attempted:
                    self.reconnects += 1                # every try after the first, refused ones too
                attempted = True
                try:
                    container, stream = self._open()
                except SourceError as e:
                    if not self.live:
                        raise
                    self._wait_to_reconnect(backoff, str(e))
                    continue
                connected_once = True
                self.live_video.connected(stream)
                if self.recorder is not None:
                    self.recorder.connected(stream)
                self.stamps.new_segment()
                self._best_effort.reset()
                streamed = False
                problem = "the stream ended"
                played: list[float] = []          # a file's first and last frame times, against its duration
                declared = _declared_duration(container, stream)
                try:
                    for frame in self._decode(container, stream):
                        t = self._frame_time(frame)
                        if t is not None:
                            self._video_t = t
                        stamp = self.stamps.stamp(t, self._clock())
                        if not self.live and t is not None:
                            played[1:] = [t] if played else [t, t]
                        if self.max_stream_s is not None and stamp.ts >= self.max_stream_s - 1e-6:
                            self.end_reason = "duration"
                            return
                        if self.paced and stamp.ts >= self.fast_until_s:
                            now = self._clock()
                            t0_clock = now - stamp.ts if t0_clock is None else t0_clock
                            if t0_clock + stamp.ts > now:
                                self._sleep(t0_clock + stamp.ts - now)
                        if self.stop.is_set():
                            break
                        if not streamed:
                            streamed = True
                            backoff.reset()
                            self._set_state(STREAMING)
                        pixels = _bgr(frame)
                        if self.live_video.transcoding and self.live_video.viewers:
                            self.live_video.frame(pixels())       # someone watches a codec browsers do not play
                        sensor = self._sensors.at(self._video_t) if self._klv_in is not None else None
                        yield Decoded(seq, stamp.ts, time.time(), pixels, stamp.gap, sensor)
                        seq += 1
                except _Stalled as e:
                    problem = str(e)
                    self._log(logging.WARNING, "stalled", "camera %s: %s stalled: %s; reconnecting",
                              self.camera, self.name, e)
                    self._set_state(STALLED, problem)
                except SourceError as e:
                    problem = str(e)
                finally:
                    container.close()
                if self.stop.is_set():
                    break
                if not self.live:
                    short = _shortfall(declared, stream, played)
                    if short is not None:
                        self._log(logging.WARNING, "short", "camera %s: %s %s", self.camera, self.name, short)
                    if not self.loop or self.stamps.last_ts is None:
                        if short is not None:
                            self.end_reason = short
                        return
                    log.info("camera %s: looping %s at stream time %.2f s", self.camera, self.name,
                             self.stamps.last_ts)
                    continue
                self._wait_to_reconnect(backoff, problem)
            self.end_reason = "stopped"
        except SourceError as e:
            self.end_reason = f"failed: {e}"
            self._set_state(FAILED, str(e))
            raise
        finally:
            self.live_video.close()
            if self.recorder is not None:
                self.recorder.close()
            if self.state != FAILED:
                self._set_state(STOPPED, self.end_reason)

    def _wait_to_reconnect(self, backoff: Backoff, problem: str) -> None:
        limit = self.ingest.max_reconnects
        if limit is not None and backoff.failures >= limit:
            raise SourceError(f"camera {self.camera}: gave up after {backoff.failures + 1} failed attempts: {problem}")
        delay = backoff.next_delay()
        self._log(logging.WARNING, "reconnect", "camera %s: %s; reconnecting in %.1f s", self.camera,
                  problem.removeprefix(f"camera {self.camera}: "), delay)
        self._set_state(RECONNECTING, problem.removeprefix(f"camera {self.camera}: "))
        self._sleep(min(delay, self._time_left()))


def _declared_duration(container, stream) -> float | None:
    """Seconds of video a file says it holds (its video stream's, else the container's)."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return container.duration / av.time_base if container.duration else None


def _shortfall(declared: float | None, stream, played: list[float]) -> str | None:
    """'ended early: ...' when a file's frames stopped well before its declared duration (a
    recording cut short, a damaged index); None when it played whole or declares no duration."""
    if declared is None:
        return None
    got = played[1] - played[0] if played else 0.0
    frame = 1.0 / float(stream.average_rate) if stream.average_rate else 0.1
    if got + frame < declared - max(0.5, 3 * frame):
        return f"ended early: {got + frame:.1f} s of {declared:.1f} s declared (truncated or damaged)"
    return None


class _NoProtocol(Exception):
    """PyAV's FFmpeg build lacks the URL's protocol (its wheels have no SRT)."""


def _open_relay(src: VideoSource) -> _RelayedContainer:
    """For a protocol PyAV's own FFmpeg lacks (SRT in the PyPI wheels): the system `ffmpeg` receives
    the stream and copies it, undecoded, as MPEG-TS into a pipe that PyAV demuxes and decodes.
    A pipe read that waits longer than the watchdog counts as the end of the stream.

    The URL (an SRT passphrase, a token) never goes on ffmpeg's command line, which every local
    user can read in the process table: ffmpeg reads it from a pipe, as a one-entry ffconcat list."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise SourceError(f"camera {src.camera}: PyAV's FFmpeg cannot open {src.kind}:// and no system ffmpeg "
                          "is installed to relay it (Debian: apt install ffmpeg)")
    url_r, url_w = os.pipe()
    cmd = [exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "concat", "-safe", "0",
           "-protocol_whitelist", f"file,pipe,udp,{src.kind}", "-i", f"/dev/fd/{url_r}",
           "-map", "0:v:0", "-map", "0:d?", "-c", "copy", "-f", "mpegts", "pipe:1"]   # video, and KLV if any
    errors = tempfile.TemporaryFile()     # not a pipe: a chatty relay must never block on it
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors,
                                pass_fds=(url_r,))
    finally:
        os.close(url_r)
    quoted = src.target.replace("'", "'\\''")
    with os.fdopen(url_w, "w") as f:      # a few hundred bytes: never more than the pipe holds
        f.write(f"ffconcat version 1.0\nfile '{quoted}'\n")
    reader = _PipeReader(proc, errors, first_timeout=src.ingest.open_timeout_s, timeout=src.ingest.watchdog_s)
    try:
        container = av.open(reader, format="mpegts", options=src._probe)
    except (av.FFmpegError, OSError) as e:
        err = reader.close()
        raise SourceError(f"camera {src.camera}: cannot open {src.name} through ffmpeg: "
                          f"{redact(err or str(e))}") from None
    return _RelayedContainer(container, reader)


class _RelayedContainer:
    """A container whose close() also ends the relay process behind it."""

    def __init__(self, container, reader: _PipeReader):
        self._c, self._reader = container, reader

    def __getattr__(self, name):
        return getattr(self._c, name)

    def close(self) -> None:
        self._c.close()
        self._reader.close()


class _PipeReader:
    """A file-like view of a relay's stdout whose reads give up (EOF) after `timeout` seconds."""

    def __init__(self, proc: subprocess.Popen, errors, first_timeout: float, timeout: float):
        self._proc, self._errors, self._timeout, self._next_timeout = proc, errors, timeout, first_timeout
        self._fd = proc.stdout.fileno()

    def read(self, n: int = -1) -> bytes:
        ready, _, _ = select.select([self._fd], [], [], self._next_timeout)
        self._next_timeout = self._timeout
        if not ready:
            return b""
        return os.read(self._fd, n if n > 0 else 1 << 16)

    def close(self) -> str:
        """Stops the relay; returns what it printed on stderr (its last error), if anything."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._proc.stdout.close()
        self._errors.seek(max(0, self._errors.seek(0, os.SEEK_END) - 4096))
        lines = self._errors.read().decode(errors="replace").strip().splitlines()
        self._errors.close()
        return lines[-1] if lines else ""


def _bgr(frame: av.VideoFrame) -> Callable[[], np.ndarray]:
    """A deferred conversion to BGR; for yuv420p (most cameras) OpenCV's converter is ~2x swscale's."""
    if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0:
        return lambda: cv2.cvtColor(frame.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2BGR_I420)
    return lambda: frame.to_ndarray(format="bgr24")


def open_source(camera: str, c: CameraConfig, on_state: Callable[[str, str | None], None] | None = None, *,
                fast_until_s: float = 0.0, record: RecordingsConfig | None = None) -> VideoSource:
    """A camera's source as configured (the command line's overrides are in the config:
    stream/config.py's `with_overrides`), recording into `record`'s folder where given."""
    source = VideoSource(camera, c.target, is_file=c.kind == "file", is_device=c.kind == "device",
                         replay=c.replay, loop=c.loop, ingest=c.ingest, stop=threading.Event(),
                         max_stream_s=c.duration_s, on_state=on_state, fast_until_s=fast_until_s)
    if record is not None:
        source.recorder = Recorder(camera, record.folder, record.segment_s)
    return source
