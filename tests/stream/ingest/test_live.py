"""Live sources against real peers on loopback: Debian's gst-rtsp-server (killed, restarted,
frozen), ffmpeg sending MPEG-TS over UDP and SRT, damaged files, refused connections."""
from __future__ import annotations

import functools
import http.server
import logging
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from stream.config import IngestConfig
from stream.ingest.clips import camera_clip
from stream.ingest.source import SourceError, VideoSource, _bgr
from tests.servers import FfmpegSender, RtspServer, free_port


pytestmark = pytest.mark.slow      # a whole pipeline, or real peers on loopback


@pytest.fixture(scope="session")
def h264_20s(vtest, tmp_path_factory) -> Path:
    """20 s of vtest.avi as H.264 (10 fps, a keyframe a second), what an IP camera sends."""
    return camera_clip(vtest, tmp_path_factory.mktemp("live") / "vtest20.mp4", 20.0)


@pytest.fixture(scope="session")
def h264_frames(h264_20s) -> list[np.ndarray]:
    """The file's first 40 frames, converted to BGR the way the source converts them."""
    with av.open(str(h264_20s)) as c:
        return [_bgr(f)() for f, _ in zip(c.decode(video=0), range(40))]


class Recorder:
    """Runs a source on its own thread, recording frames (ts, arrival), states and pixels."""

    def __init__(self, source: VideoSource, keep_pixels: int = 0):
        self.source, self.keep_pixels = source, keep_pixels
        self.frames: list[tuple[float, float]] = []
        self.gaps: list[tuple[float, float]] = []
        self.images: list[np.ndarray] = []
        self.states: list[tuple[float, str, str | None]] = []
        self.error: Exception | None = None
        source.on_state = lambda s, d: self.states.append((time.monotonic(), s, d))
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            for d in self.source.frames():
                self.frames.append((d.ts, time.monotonic()))
                if d.gap:
                    self.gaps.append(d.gap)
                if len(self.images) < self.keep_pixels:
                    self.images.append(d.pixels())
        except Exception as e:   # noqa: BLE001 - the test inspects it
            self.error = e

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.source.stop.set()
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "the source did not stop"

    def wait(self, what, timeout: float, step: float = 0.05) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if what():
                return True
            time.sleep(step)
        return False

    def frames_after(self, t: float) -> int:
        return sum(1 for _, arrival in self.frames if arrival > t)

    def state_names(self) -> list[str]:
        return [s for _, s, _ in self.states]


def live(url: str, **ingest) -> VideoSource:
    return VideoSource("cam", url, is_file=False, ingest=IngestConfig(**{"probe_s": 0.5, **ingest}))


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_rtsp_delivers_the_real_clip_with_its_timestamps(h264_20s, h264_frames, transport):
    with RtspServer({"/lobby": h264_20s}) as server:
        src = live(server.url("/lobby", "admin:secret"), rtsp_transport=transport)
        with Recorder(src, keep_pixels=40) as rec:
            assert rec.wait(lambda: len(rec.frames) >= 40, timeout=15), rec.states
    assert rec.error is None and src.declared_fps == pytest.approx(10.0)
    ts = np.array([t for t, _ in rec.frames[:40]])
    assert ts[0] == 0.0 and np.allclose(np.diff(ts), 0.1, atol=1e-3)       # the clip's 10 fps PTS
    # the same bitstream decodes to the same pixels: frame i of the stream is frame i of the file
    for i in (0, 9, 25, 39):
        assert np.array_equal(rec.images[i], h264_frames[i]), i
    assert rec.state_names()[:2] == ["connecting", "streaming"]
    assert all("secret" not in (d or "") for _, _, d in rec.states) and "secret" not in src.name


def test_rtsp_server_killed_and_restarted_recovers_every_time(h264_20s):
    cap = 1.0
    with RtspServer({"/lobby": h264_20s}) as server:
        src = live(server.url("/lobby"), backoff_initial_s=0.2, backoff_max_s=cap, watchdog_s=2.0)
        with Recorder(src) as rec:
            assert rec.wait(lambda: len(rec.frames) > 10, timeout=15)
            threads_streaming = (threading.active_count(), os_threads())
            recoveries = []
            for _ in range(4):
                server.kill()
                time.sleep(1.5)                      # down for a while: the source retries with backoff
                ready = server.start()
                assert rec.wait(lambda: rec.frames_after(ready) > 0, timeout=cap + 2.0), \
                    f"no recovery within cap + 2 s; states {rec.state_names()[-6:]}"
                recoveries.append(next(a for _, a in rec.frames if a > ready) - ready)
                time.sleep(1.0)
            threads_after = (threading.active_count(), os_threads())
    ts = np.array([t for t, _ in rec.frames])
    assert np.all(np.diff(ts) > 0)                                  # monotonic across 4 restarts
    assert src.reconnects >= 4 and len(rec.gaps) >= 4               # every outage is a gap
    for (g0, g1) in rec.gaps:
        assert 1.0 < g1 - g0 < 6.0                                  # stream time kept pace with the outage
    assert threads_after[0] == threads_streaming[0]                 # no Python thread leaked
    assert threads_after[1] <= threads_streaming[1] + 2             # nor decoder threads
    assert max(recoveries) < cap + 2.0
    names = rec.state_names()
    assert names.count("streaming") == 5 and "reconnecting" in names


def test_a_frozen_server_trips_the_watchdog_and_the_source_reconnects(h264_20s):
    with RtspServer({"/lobby": h264_20s}) as server:
        src = live(server.url("/lobby"), watchdog_s=1.5, backoff_initial_s=0.2, backoff_max_s=1.0,
                   open_timeout_s=2.0)
        with Recorder(src) as rec:
            assert rec.wait(lambda: len(rec.frames) > 10, timeout=15)
            server.freeze()                          # the TCP connection stays open; nothing arrives
            frozen = time.monotonic()
            assert rec.wait(lambda: "stalled" in rec.state_names(), timeout=1.5 + 2.0), rec.state_names()
            stalled_at = next(t for t, s, _ in rec.states if s == "stalled")
            assert 1.4 <= stalled_at - frozen < 3.5
            time.sleep(1.0)
            server.thaw()
            thawed = time.monotonic()
            assert rec.wait(lambda: rec.frames_after(thawed + 0.2) > 5, timeout=10), rec.state_names()
    detail = next(d for _, s, d in rec.states if s == "stalled")
    assert "no data" in detail and src.reconnects >= 1
    assert np.all(np.diff([t for t, _ in rec.frames]) > 0)


def test_mpegts_over_udp_from_ffmpeg_survives_garbage_datagrams(h264_20s):
    port = free_port(socket.SOCK_DGRAM)
    src = live(f"udp://127.0.0.1:{port}", open_timeout_s=5.0)
    with Recorder(src) as rec, FfmpegSender(h264_20s, f"udp://127.0.0.1:{port}?pkt_size=1316"):
        assert rec.wait(lambda: len(rec.frames) > 20, timeout=15), rec.states
        before = len(rec.frames)
        rng = np.random.default_rng(0)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(200):                      # garbage bytes inside the stream
                s.sendto(rng.integers(0, 256, 1316, dtype=np.uint8).tobytes(), ("127.0.0.1", port))
                time.sleep(0.002)
        assert rec.wait(lambda: len(rec.frames) > before + 30, timeout=10)
    assert rec.error is None
    ts = np.array([t for t, _ in rec.frames])
    assert np.all(np.diff(ts) > 0) and np.median(np.diff(ts)) == pytest.approx(0.1, abs=0.01)
    assert src.declared_fps == pytest.approx(10.0)


def test_srt_feed_is_relayed_through_ffmpeg(h264_20s):
    port = free_port(socket.SOCK_DGRAM)
    with FfmpegSender(h264_20s, f"srt://127.0.0.1:{port}?mode=listener"):
        src = live(f"srt://127.0.0.1:{port}?mode=caller", open_timeout_s=5.0, backoff_initial_s=0.2)
        with Recorder(src) as rec:
            assert rec.wait(lambda: len(rec.frames) > 20, timeout=20), (rec.states, rec.error)
    ts = np.array([t for t, _ in rec.frames])
    assert np.all(np.diff(ts) > 0) and np.median(np.diff(ts)) == pytest.approx(0.1, abs=0.01)


def test_hls_over_http(h264_20s, tmp_path):
    """An HLS playlist cut by ffmpeg, served by a real HTTP server on loopback."""
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(h264_20s), "-c", "copy", "-f", "hls",
                    "-hls_time", "1", "-hls_list_size", "0", str(tmp_path / "live.m3u8")], check=True)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        src = live(f"http://127.0.0.1:{httpd.server_address[1]}/live.m3u8")
        src.max_stream_s = 5.0
        frames = list(src.frames())
        httpd.shutdown()
    ts = np.array([f.ts for f in frames])
    assert len(frames) == 50 and np.allclose(np.diff(ts), 0.1) and src.kind == "http"
    assert src.end_reason == "duration" and frames[-1].pixels().std() > 10


def test_refused_connection_retries_with_backoff_then_gives_up_when_told(caplog):
    url = f"rtsp://user:pw@127.0.0.1:{free_port()}/none"
    src = live(url, backoff_initial_s=0.05, backoff_max_s=0.2, max_reconnects=5)
    with caplog.at_level(logging.WARNING, logger="stream.ingest.source"):
        rec = Recorder(src)
        rec._run()
    assert isinstance(rec.error, SourceError) and "gave up after 6 failed attempts" in str(rec.error)
    assert "Connection refused" in str(rec.error) and "pw" not in str(rec.error)
    names = rec.state_names()
    assert names.count("reconnecting") == 5 and names[-1] == "failed"
    assert src.reconnects == 5                   # refused attempts count: a dead camera's counter moves
    # one log line, not one per attempt
    assert len([r for r in caplog.records if "reconnecting in" in r.getMessage()]) == 1
    assert all("pw@" not in r.getMessage() for r in caplog.records)


def test_a_wrong_url_keeps_retrying_with_the_reason_in_the_state():
    src = live(f"rtsp://127.0.0.1:{free_port()}/none", backoff_initial_s=0.05, backoff_max_s=0.1)
    with Recorder(src) as rec:
        assert rec.wait(lambda: rec.state_names().count("reconnecting") >= 5, timeout=10)
    assert rec.error is None and rec.state_names()[-1] == "stopped"
    assert "refused" in next(d for _, s, d in rec.states if s == "reconnecting")


def test_a_missing_camera_device_is_a_clear_error():
    src = VideoSource("desk", "/dev/video-hawkwatch-none", is_file=False, is_device=True,
                      ingest=IngestConfig(max_reconnects=0))
    with pytest.raises(SourceError, match="camera desk: gave up after 1 failed attempts: .*"
                                          "cannot open /dev/video-hawkwatch-none: .*No such file"):
        list(src.frames())
    assert src.kind == "device" and src.state == "failed"


def test_corrupted_and_truncated_files_yield_what_they_hold(h264_20s, vtest, tmp_path, caplog):
    data = bytearray(h264_20s.read_bytes())
    rng = np.random.default_rng(1)
    for at in (len(data) // 3, len(data) // 2):            # garbage over two stretches of frames
        data[at:at + 20_000] = rng.integers(0, 256, 20_000, dtype=np.uint8).tobytes()
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(bytes(data))
    mkv = camera_clip(vtest, tmp_path / "rec.mkv", 20.0).read_bytes()   # a streamable recording, cut short
    truncated = tmp_path / "truncated.mkv"
    truncated.write_bytes(mkv[: len(mkv) // 2])
    with caplog.at_level(logging.WARNING, logger="stream.ingest.source"):
        for path in (corrupt, truncated):
            src = VideoSource("cam", str(path), is_file=True, replay="fast")
            frames = list(src.frames())
            ts = np.array([f.ts for f in frames])
            assert 50 <= len(frames) <= 200 and np.all(np.diff(ts) > 0), (path.name, len(frames))
            assert frames[-1].pixels().std() > 10
            # the recording cut short says so; the corrupted one played to its end
            assert src.end_reason.startswith("ended early") == (path is truncated), src.end_reason
    assert src.decode_errors == 0 and any("corrupt data in" in r.getMessage() for r in caplog.records)
    # an MP4 cut short has lost its index (the moov box at the end): it cannot be opened, and says so
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(h264_20s.read_bytes()[: len(data) // 2])
    with pytest.raises(SourceError, match="camera cam: cannot open .*cut.mp4: .*Invalid data"):
        list(VideoSource("cam", str(cut), is_file=True).frames())


def test_an_unsupported_codec_is_named(h264_20s, tmp_path):
    clip = camera_clip(h264_20s, tmp_path / "c.mkv", 2.0)
    bad = tmp_path / "unknown_codec.mkv"
    bad.write_bytes(clip.read_bytes().replace(b"V_MPEG4/ISO/AVC", b"V_HAWK/ISO/XYZ\x00"))
    with pytest.raises(SourceError, match="camera cam: .*unknown_codec.mkv: unsupported video codec"):
        list(VideoSource("cam", str(bad), is_file=True, replay="fast").frames())


def test_duration_ends_a_live_camera_that_never_connects(h264_20s):
    """--duration counts for a live camera from its start, connected or not: a closed port and a
    404 path both end on time instead of retrying forever."""
    with RtspServer({"/lobby": h264_20s}) as server:
        for url in (f"rtsp://127.0.0.1:{free_port()}/closed", server.url("/no-such-path")):
            src = VideoSource("cam", url, is_file=False, max_stream_s=2.0,
                              ingest=IngestConfig(probe_s=0.5, backoff_initial_s=0.2, backoff_max_s=5.0))
            t0 = time.monotonic()
            with Recorder(src) as rec:
                assert rec.wait(lambda: not rec.thread.is_alive(), timeout=10), url
            took = time.monotonic() - t0
            assert not rec.frames and rec.error is None and src.end_reason == "duration", url
            assert 1.9 <= took < 8.0 and "reconnecting" in rec.state_names(), (url, took)
            assert rec.state_names()[-1] == "stopped"
