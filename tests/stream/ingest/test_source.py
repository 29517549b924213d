import json
import subprocess
import threading

import numpy as np
import pytest

from stream.ingest.clips import camera_clip
from stream.ingest.source import SourceError, VideoSource


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
    assert src.reconnects == 0                   # two loops of a file are no reconnection


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



def ffprobe_frame_times(path) -> np.ndarray:
    """The container's frame times as FFmpeg's own tool reports them (best effort timestamps)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "frame=best_effort_timestamp_time", "-of", "json", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return np.array([float(f["best_effort_timestamp_time"]) for f in json.loads(out)["frames"]
                     if "best_effort_timestamp_time" in f])


@pytest.fixture(scope="session")
def fast_start_mp4(vtest, tmp_path_factory):
    """10 s of vtest.avi as H.264 in an MP4 with its index first (`-movflags +faststart`), as web
    players and many recorders write it."""
    folder = tmp_path_factory.mktemp("faststart")
    clip = camera_clip(vtest, folder / "plain.mp4", 10.0)
    out = folder / "faststart.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-i", str(clip), "-c", "copy",
                    "-movflags", "+faststart", str(out)], check=True)
    return out


@pytest.mark.parametrize("name", ["vtest", "megamind", "clip12", "fast_start_mp4"])
def test_stream_time_agrees_with_the_containers_frame_times(name, request):
    path = request.getfixturevalue(name)
    src = VideoSource("cam", str(path), is_file=True, replay="fast")
    ts = np.array([f.ts for f in src.frames()])
    probe = ffprobe_frame_times(path)
    assert abs(len(ts) - len(probe)) <= 1 and np.all(np.diff(ts) > 0)
    want = probe.max() - probe.min()
    assert ts[-1] == pytest.approx(want, rel=0.01), (name, ts[-1], want)
    # the health message's measured rate is what the file declares
    assert (len(ts) - 1) / ts[-1] == pytest.approx(src.declared_fps, rel=0.01)


def test_out_of_order_pts_do_not_stretch_realtime_replay(megamind):
    """Megamind_bugy.avi lasts 9.0 s: paced replay sleeps 9 s of stream time, not 18."""
    now, slept = [0.0], []

    def sleep(s):
        slept.append(s)
        now[0] += s
    src = VideoSource("cam", str(megamind), is_file=True, replay="realtime", clock=lambda: now[0], sleep=sleep)
    frames = list(src.frames())
    assert len(frames) == 270 and sum(slept) == pytest.approx(8.967, rel=0.01)


def test_a_file_cut_short_says_it_ended_before_its_declared_duration(fast_start_mp4, tmp_path):
    whole = VideoSource("cam", str(fast_start_mp4), is_file=True, replay="fast")
    assert len(list(whole.frames())) == 100 and whole.end_reason == "finished"
    data = fast_start_mp4.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])     # the index is first, so the front half still plays
    states = []
    src = VideoSource("cam", str(cut), is_file=True, replay="fast", on_state=lambda s, d: states.append((s, d)))
    frames = list(src.frames())
    assert 20 <= len(frames) < 90
    assert src.end_reason.startswith("ended early: ") and "of 10.0 s declared" in src.end_reason
    assert states[-1] == ("stopped", src.end_reason)
