import threading

import numpy as np
import pytest

from stream.ingest.source import SourceError, VideoSource, _redact


def test_file_frames_have_stream_timestamps_from_zero_at_the_file_rate(clip12):
    src = VideoSource("cam", str(clip12), is_file=True, replay="fast")
    frames = list(src.frames())
    assert len(frames) == 120 and src.declared_fps == pytest.approx(10.0)
    ts = np.array([f.ts for f in frames])
    assert ts[0] == 0.0 and np.allclose(np.diff(ts), 0.1)
    assert [f.seq for f in frames] == list(range(120))
    img = frames[50].pixels()
    assert img.shape == (576, 768, 3) and img.dtype == np.uint8 and img.std() > 10   # real picture
    assert src.end_reason == "finished"


def test_realtime_replay_is_paced_by_the_file_timestamps(clip12):
    now = [100.0]
    sleeps = []

    def sleep(s):
        sleeps.append(s)
        now[0] += s

    src = VideoSource("cam", str(clip12), is_file=True, replay="realtime", clock=lambda: now[0], sleep=sleep)
    frames = list(src.frames())
    # the clock only moves by sleeping: the replay must have slept the file's duration
    assert sum(sleeps) == pytest.approx(frames[-1].ts, abs=1e-6)
    fast = VideoSource("cam", str(clip12), is_file=True, replay="fast", clock=lambda: 0.0,
                       sleep=lambda s: pytest.fail("fast replay must not sleep"))
    assert len(list(fast.frames())) == len(frames)


def test_looping_continues_stream_time_and_duration_stops_it(clip12):
    src = VideoSource("cam", str(clip12), is_file=True, replay="fast", loop=True, max_stream_s=30.0)
    ts = np.array([f.ts for f in src.frames()])
    assert len(ts) == 300 and np.all(np.diff(ts) > 0) and np.allclose(np.diff(ts), 0.1)
    assert src.end_reason == "duration"


def test_stop_event_ends_the_source(clip12):
    stop = threading.Event()
    src = VideoSource("cam", str(clip12), is_file=True, replay="fast", stop=stop)
    got = 0
    for _ in src.frames():
        got += 1
        if got == 10:
            stop.set()
    assert got == 10 and src.end_reason == "stopped"


def test_missing_or_garbage_file_is_a_source_error_naming_the_camera(tmp_path):
    with pytest.raises(SourceError, match="camera gate: cannot open"):
        list(VideoSource("gate", str(tmp_path / "none.avi"), is_file=True).frames())
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"\x00garbage" * 1000)
    with pytest.raises(SourceError, match="camera gate"):
        list(VideoSource("gate", str(junk), is_file=True).frames())


def test_credentials_in_urls_are_never_printed():
    assert _redact("rtsp://admin:secret@10.0.0.5:554/live") == "rtsp://***@10.0.0.5:554/live"
    assert _redact("rtsp://10.0.0.5/live") == "rtsp://10.0.0.5/live"
    assert _redact("/videos/a@b.avi") == "/videos/a@b.avi"
