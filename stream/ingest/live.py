"""Live video for the console: a camera's stream as fragmented MP4, one fragment a frame, to any
number of viewers (the console plays it with Media Source Extensions).

- **Remux, where the browser plays the codec (H.264):** the packets the source demuxes anyway are
  copied to each viewer's queue and muxed into that viewer's MP4: no decoding, no encoding; a
  viewer costs a memory copy and a muxer.
- **Transcode, only where it does not** (MPEG-4 part 2, MJPEG, H.265...): the frames the source
  decodes anyway are encoded to H.264 for each viewer (libx264, ultrafast, zero latency, a
  keyframe a second), only while they watch.

A viewer starts at the next keyframe. One that falls `max_behind` items behind (a slow network)
is dropped rather than slowing the camera; the page reconnects. A new connection of the camera
(or a file's next loop) ends the viewers' streams, whose codec parameters may have changed.
"""
from __future__ import annotations

import io
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator

import av
import numpy as np

PLAYABLE = {"h264"}                 # what browsers decode in MP4 everywhere
MOVFLAGS = "empty_moov+default_base_moof+frag_keyframe+frag_every_frame"
END = None                          # a viewer's queue: no more packets


@dataclass(frozen=True)
class Copied:
    """A packet's bytes and timing, copied off the source's packet (which the recorder then rebases)."""
    data: bytes
    pts: int | None
    dts: int | None
    duration: int
    keyframe: bool
    time_base: Fraction
    at: float                        # when the source had it (time.monotonic())


class _Sink(io.RawIOBase):
    """What the muxer writes, kept until the viewer's generator takes it."""

    def __init__(self):
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.chunks.append(bytes(b))
        return len(b)

    def take(self) -> bytes:
        out, self.chunks = b"".join(self.chunks), []
        return out


class Viewer:
    def __init__(self, feed: LiveFeed, max_behind: int):
        self.feed, self.items = feed, queue.Queue(maxsize=max_behind)
        self.dropped = False
        self.delays_ms: deque[float] = deque(maxlen=300)   # source had it -> its fragment handed to the server
        self.cpu_s, self.since = 0.0, time.monotonic()      # CPU spent muxing (and encoding) for this viewer

    def offer(self, item: Copied | tuple[np.ndarray, float] | None) -> None:
        try:
            self.items.put_nowait(item)
        except queue.Full:
            self.dropped = True            # too slow: its stream ends, the page reconnects

    def stream(self, timeout_s: float = 10.0) -> Iterator[bytes]:
        """The viewer's MP4 bytes: the header, then a fragment for every frame from the next keyframe."""
        sink = _Sink()
        out = av.open(sink, "w", format="mp4", options={"movflags": MOVFLAGS})
        try:
            encode = self.feed.transcoding
            target = self._encoder_stream(out) if encode else out.add_stream_from_template(self.feed.template)
            first, n = None, 0
            while not self.dropped:
                try:
                    item = self.items.get(timeout=timeout_s)
                except queue.Empty:
                    return
                if item is END:
                    return
                cpu = time.thread_time()
                if encode:
                    image, at = item
                    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:target.height, :target.width]),
                                                       format="bgr24").reformat(format="yuv420p")
                    frame.pts, n = n, n + 1
                    for packet in target.encode(frame):
                        out.mux(packet)
                else:
                    if first is None:
                        if not item.keyframe:
                            continue
                        first = item.dts if item.dts is not None else item.pts
                    out.mux(self._packet(item, first, target))
                    at = item.at
                chunk = sink.take()
                self.cpu_s += time.thread_time() - cpu
                if chunk:
                    self.delays_ms.append((time.monotonic() - at) * 1000.0)
                    yield chunk
        finally:
            self.feed.leave(self)
            try:
                out.close()
            except (av.FFmpegError, OSError, ValueError):
                pass

    def _encoder_stream(self, out):
        h, w = self.feed.size
        rate = Fraction(self.feed.fps).limit_denominator(1000)
        stream = out.add_stream("libx264", rate=rate, options={"preset": "ultrafast", "tune": "zerolatency"})
        stream.width, stream.height, stream.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
        stream.codec_context.gop_size = max(1, round(self.feed.fps))
        stream.codec_context.max_b_frames = 0
        return stream

    @staticmethod
    def _packet(item: Copied, first: int, target) -> av.Packet:
        packet = av.Packet(item.data)
        dts = (item.dts if item.dts is not None else item.pts) - first
        packet.dts, packet.pts = dts, max((item.pts if item.pts is not None else dts + first) - first, dts)
        packet.duration, packet.time_base, packet.stream = item.duration, item.time_base, target
        packet.is_keyframe = item.keyframe
        return packet


class LiveFeed:
    """One camera's live view: fed by its source (packets; frames where it transcodes)."""

    def __init__(self, camera: str, max_behind: int = 300):
        self.camera, self.max_behind = camera, max_behind
        self.codec: str | None = None       # the stream's codec while it streams
        self.template = None                # the input stream (what a remuxing viewer copies)
        self.transcoding = False
        self.fps, self.size = 10.0, (0, 0)  # the stream's rate, and (height, width) of its frames
        self._viewers: list[Viewer] = []
        self._lock = threading.Lock()

    # -- the source's side ------------------------------------------------------------------------
    def connected(self, stream) -> None:
        """A new connection (or loop): viewers of the old one end; this one's codec decides the route."""
        self._end_viewers()
        self.codec = stream.codec_context.name
        self.transcoding = self.codec not in PLAYABLE
        self.fps = float(stream.average_rate or stream.guessed_rate or 10) or 10.0
        self.size = (stream.codec_context.height, stream.codec_context.width)
        self.template = stream

    def packet(self, packet) -> None:
        """A demuxed packet of the camera's stream (remuxed to viewers where the codec plays)."""
        if self.transcoding or not self._viewers or packet.size == 0:
            return
        self._offer(Copied(bytes(packet), packet.pts, packet.dts, int(packet.duration or 0), bool(packet.is_keyframe),
                           packet.time_base, time.monotonic()))

    def frame(self, image: np.ndarray) -> None:
        """A decoded frame (BGR), for viewers to encode where the codec does not play."""
        if self.transcoding and self._viewers:
            self.size = image.shape[:2]
            self._offer((image, time.monotonic()))

    def close(self) -> None:
        self._end_viewers()
        self.codec = None

    # -- the viewers' side ----------------------------------------------------------------------
    def watch(self) -> Viewer | None:
        """A new viewer, or None while the camera is not streaming."""
        if self.codec is None:
            return None
        viewer = Viewer(self, self.max_behind)
        with self._lock:
            self._viewers.append(viewer)
        return viewer

    def leave(self, viewer: Viewer) -> None:
        with self._lock:
            if viewer in self._viewers:
                self._viewers.remove(viewer)

    @property
    def viewers(self) -> int:
        return len(self._viewers)

    def mime(self) -> str | None:
        """The MIME type with codecs (for the page's MediaSource), or None while not streaming."""
        if self.codec is None:
            return None
        extradata = None if self.transcoding else self.template.codec_context.extradata
        if extradata and extradata[0] == 1 and len(extradata) >= 4:        # avcC: profile, compatibility, level
            return f'video/mp4; codecs="avc1.{extradata[1]:02X}{extradata[2]:02X}{extradata[3]:02X}"'
        return 'video/mp4; codecs="avc1.42C01F"'         # x264's ultrafast: constrained baseline

    def cpu_per_viewer(self) -> float | None:
        """The current viewers' CPU (muxing, and encoding where it transcodes), in % of a core each."""
        with self._lock:
            found = [v.cpu_s / max(time.monotonic() - v.since, 1e-6) * 100 for v in self._viewers]
        return round(sum(found) / len(found), 2) if found else None

    def delay_ms(self) -> dict | None:
        """p50/p95 of the current viewers' recent delays: the source had a frame -> its fragment
        went to the server (decode on the way in, transcoding where there is some, muxing)."""
        with self._lock:
            found = [d for v in self._viewers for d in v.delays_ms]
        if not found:
            return None
        p50, p95 = np.percentile(found, [50, 95])
        return {"p50": round(float(p50), 1), "p95": round(float(p95), 1)}

    def _offer(self, item: Copied | tuple[np.ndarray, float]) -> None:
        with self._lock:
            viewers = list(self._viewers)
        for v in viewers:
            v.offer(item)

    def _end_viewers(self) -> None:
        with self._lock:
            viewers, self._viewers = self._viewers, []
        for v in viewers:
            v.offer(END)
