import numpy as np
import pytest

from stream.ingest.windows import WindowAssembler


def _run(asm, timestamps):
    made = []
    windows = []
    for seq, ts in enumerate(timestamps):
        def image(seq=seq):
            made.append(seq)
            return np.zeros((2, 2, 3), np.uint8)
        windows += asm.push(seq, ts, 1000.0 + ts, image)
    return windows + asm.finish(), made


@pytest.mark.parametrize("length,stride", [(4.0, 2.0), (2.0, 2.0), (3.0, 1.0), (1.0, 0.5)])
def test_windows_tile_the_stream_exactly(length, stride):
    ts = np.arange(795) / 10.0                      # vtest.avi: 795 frames at 10 fps -> 79.5 s
    windows, _ = _run(WindowAssembler("cam", length, stride, 2.0), ts)
    assert [w.window_id for w in windows] == list(range(len(windows)))
    assert all(w.start == pytest.approx(k * stride) for k, w in enumerate(windows))
    assert all(w.end - w.start == pytest.approx(length) for w in windows if w.end < 79.5 - 1e-9)
    assert windows[-1].end == pytest.approx(79.5) and windows[-1].final
    assert not any(w.final for w in windows[:-1])
    assert all(b.start <= a.end + 1e-9 for a, b in zip(windows, windows[1:]))   # no hole between windows
    assert windows[-1].start < 79.5


def test_frames_are_sampled_at_the_configured_rate_and_only_they_are_converted():
    ts = np.arange(200) / 25.0                      # 8 s at 25 fps
    windows, made = _run(WindowAssembler("cam", 4.0, 4.0, 2.0), ts)
    sampled = sorted({f.seq for w in windows for f in w.frames})
    assert len(sampled) == 16                       # 2 fps for 8 s
    assert made == []                               # nothing converted until a stage reads it
    assert all(f.image.shape == (2, 2, 3) for w in windows for f in w.frames)
    assert made == sampled                          # then once each, and never for unsampled frames
    assert all(f.image is f.image for w in windows for f in w.frames)
    assert all(len(w.frames) == 8 for w in windows)
    for w in windows:
        assert all(w.start <= f.ts < w.end for f in w.frames)
        assert np.allclose(np.diff([f.ts for f in w.frames]), 0.5, atol=0.04 + 1e-9)   # within one frame


def test_overlapping_windows_share_frames():
    windows, _ = _run(WindowAssembler("cam", 4.0, 2.0, 2.0), np.arange(100) / 10.0)
    a, b = windows[0], windows[1]
    assert {f.seq for f in a.frames} & {f.seq for f in b.frames} == {f.seq for f in b.frames if f.ts < 4.0}


def test_a_gap_in_the_stream_leaves_windows_with_fewer_frames_not_a_hole():
    ts = np.concatenate([np.arange(0, 3, 0.1), np.arange(9, 12, 0.1)])
    windows, _ = _run(WindowAssembler("cam", 2.0, 2.0, 2.0), ts)
    assert [w.start for w in windows] == [0, 2, 4, 6, 8, 10]
    assert [len(w.frames) for w in windows] == [4, 2, 0, 0, 2, 4]


def test_a_reported_gap_is_listed_by_the_windows_it_touches_and_windows_inside_it_are_skipped():
    asm = WindowAssembler("cam", 2.0, 1.0, 2.0)
    windows = []
    for seq, ts in enumerate(np.arange(0, 3, 0.1)):          # 0 - 2.9 s, then a camera outage
        windows += asm.push(seq, ts, 1000.0 + ts, np.zeros((2, 2, 3), np.uint8))
    windows += asm.push(99, 9.0, 1009.0, np.zeros((2, 2, 3), np.uint8), gap=(3.0, 9.0))
    for seq, ts in enumerate(np.arange(9.1, 11.95, 0.1), start=100):
        windows += asm.push(seq, ts, 1000.0 + ts, np.zeros((2, 2, 3), np.uint8))
    windows += asm.finish()
    by_id = {w.window_id: w for w in windows}
    assert sorted(by_id) == [0, 1, 2, 8, 9, 10, 11] and asm.skipped == 5   # windows 3-7 lie inside the gap
    assert by_id[2].gaps == ((3.0, 4.0),) and len(by_id[2].frames) == 2
    assert by_id[8].gaps == ((8.0, 9.0),) and len(by_id[8].frames) == 2      # half gap: it says so
    assert by_id[9].gaps == () and by_id[11].final
    assert by_id[8].wall_start == pytest.approx(1008.0) and by_id[8].wall_end == pytest.approx(1010.0)


def test_no_empty_sliver_window_at_the_end():
    ts = np.append(np.arange(0, 5.95, 0.1), 5.98)     # the last frame lasts until 6.06 s, past window 3's start
    windows, _ = _run(WindowAssembler("cam", 4.0, 2.0, 2.0), ts)
    assert windows[-1].frames and windows[-1].final and windows[-1].start == 4.0


def test_timestamps_must_increase():
    asm = WindowAssembler("cam", 2.0, 1.0, 2.0)
    asm.push(0, 1.0, 0.0, lambda: np.zeros((1, 1, 3), np.uint8))
    with pytest.raises(ValueError, match="timestamps must increase"):
        asm.push(1, 1.0, 0.0, lambda: np.zeros((1, 1, 3), np.uint8))


def test_stride_longer_than_length_is_refused():
    with pytest.raises(ValueError):
        WindowAssembler("cam", 1.0, 2.0, 2.0)


def test_frames_lost_upstream_are_charged_to_every_window_that_spans_them():
    asm = WindowAssembler("cam", 4.0, 2.0, 2.0)
    windows = []
    for seq, ts in enumerate(np.arange(100) / 10.0):
        if seq in (25, 26):              # lost at 2.5 s and 2.6 s
            asm.note_dropped(ts)
            continue
        windows += asm.push(seq, ts, 0.0, lambda: np.zeros((1, 1, 3), np.uint8))
    windows += asm.finish()
    assert [w.dropped_frames for w in windows[:3]] == [2, 2, 0] and asm.dropped == 2
