"""Composing the benchmark's events into real cameras' normal footage (training/backdrops.py): each
split's videos play over that split's normal clips, at the clip's own scale, and the test split
stays on vtest.avi."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from training import backdrops, synth


def _clip(path: Path, frames: list[np.ndarray], fps: float, size: tuple[int, int]) -> None:
    synth.write_video(path, [cv2.resize(f, size) for f in frames], fps)


@pytest.fixture(scope="module")
def real_set(tmp_path_factory, bank) -> Path:
    """A real-clip set in the realset layout: two normal train clips (vtest's street at 25 fps and
    640 x 480; an empty grey room), one anomalous train clip, one normal val clip."""
    _, frames, _ = bank
    root = tmp_path_factory.mktemp("real")
    street = [frames[i // 2] for i in range(200)]                          # 8 s at 25 fps (each frame twice)
    _clip(root / "videos" / "normal-street-01.mp4", street, 25.0, (640, 480))
    _clip(root / "videos" / "normal-room-01.mp4", [np.full((360, 640, 3), 90, np.uint8)] * 60, 10.0, (640, 360))
    _clip(root / "videos" / "fall-street-01.mp4", frames[:60], 10.0, (768, 576))
    _clip(root / "videos" / "normal-street-02.mp4", frames[300:360], 10.0, (768, 576))
    db = {"normal-street-01": {"subset": "train", "annotations": []},
          "normal-room-01": {"subset": "train", "annotations": []},
          "fall-street-01": {"subset": "train", "annotations": [{"segment": [1, 3], "label": "fall"}]},
          "normal-street-02": {"subset": "val", "annotations": []}}
    (root / "gt.json").write_text(json.dumps({"database": db}))
    return root


def test_footage_is_read_at_the_benchmarks_rate_and_width_and_plays_back_and_forth(real_set):
    f = backdrops.read_frames(real_set / "videos" / "normal-street-01.mp4", 10.0)
    assert len(f) == 80 and f[0].shape == (576, 768, 3)                    # 8 s at 25 fps -> 10 fps, 640 -> 768 wide
    assert len(backdrops.read_frames(real_set / "videos" / "normal-street-01.mp4", 10.0, limit_s=3.0)) == 30
    seq = [0, 1, 2, 3]
    assert [backdrops.frame_at(seq, i) for i in range(9)] == [0, 1, 2, 3, 2, 1, 0, 1, 2]
    with pytest.raises(FileNotFoundError, match="cannot open backdrop video"):
        backdrops.read_frames(real_set / "videos" / "missing.mp4", 10.0)


def test_a_scenes_perspective_is_fitted_to_its_own_people(bank, detector):
    """On vtest.avi's own frames the fit finds vtest's perspective (the bank's, fitted to every
    frame's people); an empty room has nobody to measure, so vtest's scaled to it stands in."""
    b, frames, fps = bank
    (a, c), ground, fitted = backdrops.fit_scene(frames, fps, detector)
    assert fitted
    for y in (250.0, 400.0, 520.0):
        assert abs((a * y + c) - b.height_at(y)) < 0.2 * b.height_at(y), (y, a, c, b.perspective)
    assert 100 <= ground[0] < 250 and 350 <= ground[1] <= 576                # where its people walked
    room = [np.full((360, 640, 3), 90, np.uint8)] * 30
    persp, ground, fitted = backdrops.fit_scene(room, 10.0, detector)
    assert not fitted and persp == (0.269, 10.5 * 360 / 576) and ground == (200 * 360 / 576, 560 * 360 / 576)


def test_each_splits_videos_play_over_its_normal_clips_and_test_stays_on_vtest(real_set, bank, vtest, tmp_path):
    said: list[str] = []
    kw = dict(seed=3, counts={"train": 3, "val": 1, "test": 1}, seconds=8.0, clips=False, bank=bank[0],
              backdrops=real_set)
    gt = synth.generate(vtest, tmp_path, progress=said.append, **kw)["database"]
    assert [gt[v].get("backdrop") for v in sorted(gt)] == \
        [None, "normal-room-01", "normal-street-01", "normal-room-01", "normal-street-02"]   # test_000 first
    assert sum("backdrop train" in m for m in said) == 2 and sum("backdrop val" in m for m in said) == 1
    with __import__("av").open(str(tmp_path / "videos" / "train_000.mp4")) as c:
        s = c.streams.video[0]
        assert (s.width, s.height) == (768, 432) and s.frames in (0, 80)          # the room's aspect at 768 wide
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [b["name"] for b in manifest["backdrops"]["train"]] == ["normal-room-01", "normal-street-01"]
    assert not manifest["backdrops"]["train"][0]["fitted"] and manifest["backdrops"]["train"][1]["fitted"]
    for e in gt.values():                                       # events still at frame-exact spans in the video
        for a in e["annotations"]:
            assert 0 <= a["frames"][0] < a["frames"][1] <= 80
    # a rerun finds its fits in gen/backdrops.json and its videos made: nothing is done again
    said.clear()
    assert synth.generate(vtest, tmp_path, progress=said.append, **kw)["database"] == gt
    assert not any("backdrop" in m for m in said) and "5 of 5 videos already made: resuming" in said


def test_a_folder_that_is_not_a_real_clip_set_or_has_no_normal_clips_is_refused(real_set, bank, vtest, tmp_path):
    kw = dict(seed=3, counts={"train": 1}, seconds=8.0, clips=False, bank=bank[0], progress=lambda m: None)
    with pytest.raises(FileNotFoundError, match="--backdrops takes a real-clip set folder"):
        synth.generate(vtest, tmp_path / "a", backdrops=tmp_path, **kw)
    assert synth.generate(vtest, tmp_path / "a", backdrops=real_set, **kw)["database"]["train_000"]["backdrop"] \
        == "normal-room-01"                                    # the mistake is not held against the folder
    with pytest.raises(ValueError, match="no normal clips in its 'test' split"):
        synth.generate(vtest, tmp_path / "b", backdrops=real_set, backdrop_splits=("test",),
                       **{**kw, "counts": {"test": 1}})
    with pytest.raises(ValueError, match="unknown backdrop splits"):
        synth.generate(vtest, tmp_path / "c", backdrops=real_set, backdrop_splits=("training",), **kw)
    assert synth.main(["--video", str(vtest), "--out", str(tmp_path / "d"), "--backdrops", str(tmp_path / "none"),
                       "--train", "1", "--val", "0", "--test", "0"]) == 2
