"""The console's live video at its source: a camera's packets remuxed (H.264) or its frames
transcoded (any other codec) into a fragmented MP4 per viewer, from a keyframe, that decodes; a
viewer too slow to keep up is dropped, and a new connection ends the old one's viewers."""
from __future__ import annotations

import io
import threading
from pathlib import Path

import av
import pytest

from stream.ingest.clips import camera_clip
from stream.ingest.live import LiveFeed


@pytest.fixture(scope="module")
def h264_10s(vtest, tmp_path_factory) -> Path:
    return camera_clip(vtest, tmp_path_factory.mktemp("live") / "vtest10.mp4", 10.0)


def feed_from(path: Path, packets: int = 60, watch_at: int = 3, max_behind: int = 300):
    """The file through a LiveFeed as a source feeds it, a viewer joining after `watch_at` packets;
    returns the feed and the viewer's bytes."""
    feed, out = LiveFeed("cam", max_behind=max_behind), []
    reader = None
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        feed.connected(stream)
        for n, packet in enumerate(c.demux(stream)):
            frames = packet.decode()
            if n == watch_at:
                viewer = feed.watch()
                reader = threading.Thread(target=lambda: out.extend(viewer.stream(timeout_s=5)))
                reader.start()
            feed.packet(packet)
            for f in frames:
                feed.frame(f.to_ndarray(format="bgr24"))
            if n >= packets:
                break
        feed.close()                       # the stream ends: so does the viewer's
    reader.join(timeout=30)
    return feed, b"".join(out)


def decoded(data: bytes) -> tuple[int, str, int]:
    with av.open(io.BytesIO(data)) as c:
        s = c.streams.video[0]
        frames = list(c.decode(s))
        return len(frames), s.codec_context.name, frames[0].width


def test_an_h264_camera_is_remuxed_from_the_next_keyframe(h264_10s):
    feed, data = feed_from(h264_10s)
    assert not feed.transcoding and data[4:8] == b"ftyp"
    frames, codec, width = decoded(data)
    assert codec == "h264" and width == 768 and 45 <= frames <= 52    # from the keyframe at 1 s: packets 10..60
    assert data.count(b"moof") == frames                                # a fragment a frame: no waiting for a GOP


def test_a_codec_browsers_do_not_play_is_transcoded_to_h264(vtest):
    feed, data = feed_from(vtest)
    assert feed.transcoding                                         # vtest.avi is MPEG-4 part 2 (msmpeg4)
    frames, codec, width = decoded(data)
    assert codec == "h264" and width == 768 and frames >= 50


def test_a_viewer_that_falls_behind_is_dropped_and_a_reconnection_ends_the_viewers(h264_10s):
    feed = LiveFeed("cam", max_behind=5)
    with av.open(str(h264_10s)) as c:
        stream = c.streams.video[0]
        feed.connected(stream)
        slow = feed.watch()                                       # never read
        for n, packet in enumerate(c.demux(stream)):
            feed.packet(packet)
            if n > 20:
                break
        assert slow.dropped
        assert list(slow.stream(timeout_s=1)) == [] and feed.viewers == 0
        fresh = feed.watch()
        feed.connected(stream)                                     # the camera reconnected
        assert feed.viewers == 0 and fresh.items.get_nowait() is None
    assert LiveFeed("idle").watch() is None                        # not streaming: nothing to watch
