"""Continuous recording by remux: a camera's packets into MP4 segments that each play on their own,
named by wall-clock time, kept by retention, exported as one MP4, surviving a crash and a full
disk without stopping anything. Real H.264 (vtest.avi as a camera sends it) through PyAV."""
from __future__ import annotations

import time
from pathlib import Path

import av
import pytest

from stream.alerts.outbox import Outbox
from stream.alerts.recordings import Recordings
from stream.config import RecordingsConfig
from stream.ingest.clips import camera_clip
from stream.ingest.recorder import Recorder, recover, segments

T0 = 1_780_000_000.0        # a wall clock the tests drive: a day in 2026


@pytest.fixture(scope="module")
def h264_30s(vtest, tmp_path_factory) -> Path:
    """30 s of vtest.avi as H.264, 10 fps, a keyframe a second."""
    return camera_clip(vtest, tmp_path_factory.mktemp("rec") / "vtest30.mp4", 30.0)


def record(clip: Path, folder: Path, *, start: float = T0, segment_s: float = 10.0, close: bool = True,
           loops: int = 1) -> Recorder:
    """The clip's packets through a Recorder as a camera would send them: the wall clock moves
    with the packets' times (loops: the file again, timestamps starting over)."""
    now = [start]
    rec = Recorder("gate", folder, segment_s, clock=lambda: now[0])
    for loop in range(loops):
        with av.open(str(clip)) as c:
            stream = c.streams.video[0]
            rec.connected(stream)
            for packet in c.demux(stream):
                if packet.dts is not None:
                    now[0] = start + loop * 30.0 + float(packet.dts * stream.time_base)
                rec.packet(packet)
    if close:
        rec.close()
    return rec


def frames_in(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_packets_become_segments_of_about_segment_s_each_starting_at_a_keyframe(h264_30s, tmp_path):
    rec = record(h264_30s, tmp_path, segment_s=10.0)
    found = segments(tmp_path, "gate")
    assert rec.segments_written == len(found) == 3 and rec.faults == 0
    assert all(s.end is not None and 9.5 <= s.end - s.start <= 10.5 for s in found[:2])
    assert found[0].start == pytest.approx(T0, abs=0.01)
    assert found[0].path.parent.name == time.strftime("%Y-%m-%d", time.gmtime(T0))
    assert sum(frames_in(s.path) for s in found) == 300            # every frame, none decoded or encoded twice
    with av.open(str(found[1].path)) as c:                          # each plays alone: it opens on a keyframe
        first = next(c.demux(c.streams.video[0]))
        assert first.is_keyframe and c.streams.video[0].codec_context.name == "h264"
    assert segments(tmp_path, "gate", T0 + 12, T0 + 14) == [found[1]]


def test_a_loop_or_a_reconnection_starts_a_new_segment(h264_30s, tmp_path):
    record(h264_30s, tmp_path, segment_s=60.0, loops=2)
    found = segments(tmp_path, "gate")
    assert len(found) == 2 and [frames_in(s.path) for s in found] == [300, 300]


def test_a_segment_left_open_by_a_crash_plays_and_is_named_by_what_it_holds(h264_30s, tmp_path):
    rec = record(h264_30s, tmp_path, segment_s=60.0, close=False)
    open_ = segments(tmp_path, "gate")
    assert len(open_) == 1 and open_[0].end is None and open_[0].name.endswith(".partial.mp4")
    rec._out[0].close()                 # what the process had flushed when it died (fragmented MP4)
    assert recover(tmp_path, "gate") == 1
    (seg,) = segments(tmp_path, "gate")
    assert seg.end is not None and 28.0 <= seg.end - seg.start <= 30.5 and frames_in(seg.path) >= 290


def test_a_folder_that_cannot_be_written_is_a_counted_fault_and_recording_resumes(h264_30s, tmp_path):
    blocked = tmp_path / "gate"
    blocked.write_text("a file where the camera's folder goes")
    rec = record(h264_30s, tmp_path, segment_s=10.0)               # raises nothing
    assert rec.faults >= 3 and rec.segments_written == 0 and "Not a directory" in rec.problem
    blocked.unlink()
    rec = record(h264_30s, tmp_path, segment_s=10.0)
    assert rec.segments_written == 3 and rec.problem is None


def test_retention_keeps_events_footage_longer_and_an_export_is_one_playable_mp4(h264_30s, tmp_path):
    day, now = 86400.0, time.time()
    starts = {age: now - age * day - 60 for age in (10.0, 3.0, 0.0)}   # 30 s recorded 10, 3 and 0 days ago
    for start in starts.values():
        record(h264_30s, tmp_path / "rec", start=start, segment_s=5.0)  # 6 segments of 5 s each
    outbox = Outbox(tmp_path / "outbox.sqlite")
    ev = starts[10.0] + 12                              # an event 12-16 s into the oldest recording
    outbox.append([{"camera": "gate", "alert_id": "a1", "state": "close", "category": "fall",
                    "wall_start": ev, "wall_end": ev + 4}])
    outbox.close()
    cfg = RecordingsConfig(folder=tmp_path / "rec", segment_s=5.0, keep_days=7, keep_event_days=30, min_free_gb=0)
    store = Recordings(cfg, ["gate"], tmp_path / "outbox.sqlite")
    assert store.sweep(now) == 2                        # the old footage but the event's, a segment either side
    left = segments(tmp_path / "rec", "gate")
    old = [s for s in left if s.start < now - 7 * day]
    assert len(left) == 16 and [round(s.start - starts[10.0]) for s in old] == [5, 10, 15, 20]
    status = store.status("gate")
    assert status["segments"] == 16 and status["bytes"] > 0 and status["disk_full"] is False

    newest = [s for s in left if s.start > now - 3600]
    out = store.export("gate", newest[1].start + 2, newest[3].start + 2, tmp_path / "export.mp4")
    with av.open(str(out)) as c:
        seconds = float(c.duration / av.time_base)
        frames = sum(1 for _ in c.decode(video=0))
    assert 10.0 <= seconds <= 12.5 and 100 <= frames <= 125        # from the keyframe at or before the start
    with pytest.raises(ValueError, match="no recording of camera 'gate' between"):
        store.export("gate", now + 3600, now + 3700, tmp_path / "none.mp4")

    tight = Recordings(RecordingsConfig(folder=tmp_path / "rec", max_gb=status["bytes"] / 2 / 1024 ** 3,
                                        min_free_gb=0), ["gate"], tmp_path / "outbox.sqlite")
    tight.sweep(now)
    after = tight.status("gate")
    kept = segments(tmp_path / "rec", "gate")
    assert after["bytes"] <= status["bytes"] / 2
    assert len([s for s in kept if s.start < now - 7 * day]) == 4       # the event's footage goes last
    assert not [s for s in kept if now - 4 * day < s.start < now - 2 * day]   # plain footage, oldest first


def test_an_outbox_that_cannot_be_read_keeps_all_footage_from_going_by_age(h264_30s, tmp_path):
    now = time.time()
    record(h264_30s, tmp_path / "rec", start=now - 20 * 86400, segment_s=10.0)
    (tmp_path / "outbox.sqlite").write_text("not a database")
    store = Recordings(RecordingsConfig(folder=tmp_path / "rec", keep_days=7, min_free_gb=0), ["gate"],
                       tmp_path / "outbox.sqlite")
    assert store.sweep(now) == 0 and len(segments(tmp_path / "rec", "gate")) == 3
