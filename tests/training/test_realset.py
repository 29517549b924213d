"""The real-clip set: the committed manifest holds together, and a clip is rebuilt from a source
checkout (a real git repository made here) with its trim and its labels moved into the kept part."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
import yaml

from training.data import read_ground_truth
from training.realset import ManifestError, main, read_manifest, rebuild, summary


def test_the_committed_manifest_keeps_every_camera_in_one_split_and_every_split_has_falls_fights_and_normal():
    m = read_manifest()
    splits = {s: {c.label for c in m.clips if m.split_of(c) == s} for s in ("train", "val", "test")}
    for s, labels in splits.items():
        assert {"fall", "scuffle", "normal"} <= labels, s
    assert len({c.camera for c in m.clips if c.label == "fall"}) >= 10
    assert len({c.camera for c in m.clips if c.label == "scuffle"}) >= 10
    assert all(c.licence and c.description for c in m.clips)
    assert "| fall |" in summary(m)


def _video(path: Path, seconds: float, fps: int = 10) -> None:
    with av.open(str(path), "w") as out:
        s = out.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = 96, 64, "yuv420p"
        for i in range(int(seconds * fps)):
            img = np.full((64, 96, 3), (i * 7) % 255, np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)


@pytest.fixture
def source(tmp_path):
    """A checkout `owner/cams` with one 12 s clip committed; returns (sources folder, commit)."""
    repo = tmp_path / "src" / "owner" / "cams"
    repo.mkdir(parents=True)
    _video(repo / "hall.avi", 12.0)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(git + ["add", "hall.avi"], check=True)
    subprocess.run(git + ["commit", "-qm", "clip"], check=True)
    commit = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    return tmp_path / "src", commit


def _manifest(tmp_path, commit, **clip) -> Path:
    entry = {"id": "fall-hall-01", "repo": "owner/cams", "commit": clip.pop("sha", commit), "path": "hall.avi", "licence": "MIT",
             "camera": "hall", "duration_s": 12.0, "fps": 10.0, "size": [96, 64], "trim": [2.0, 10.0],
             "description": "a person falls in a hall", "events": [{"category": "fall", "start": 5.0, "end": 6.5}]}
    entry.update(clip)
    path = tmp_path / "clips.yaml"
    path.write_text(yaml.safe_dump({"cameras": {"hall": "val"}, "clips": [entry]}))
    return path


def test_a_clip_is_rebuilt_from_its_checkout_trimmed_with_its_labels_in_the_kept_seconds(tmp_path, source):
    sources, commit = source
    failed = rebuild(read_manifest(_manifest(tmp_path, commit)), sources, tmp_path / "real", progress=False)
    assert failed == {}
    with av.open(str(tmp_path / "real" / "videos" / "fall-hall-01.mp4")) as c:
        frames = sum(1 for _ in c.decode(video=0))
    assert frames == 80                                        # 8 s kept at 10 fps
    gt = read_ground_truth(tmp_path / "real" / "gt.json")["fall-hall-01"]
    assert gt["subset"] == "val" and gt["duration"] == 8.0
    assert [(s.start, s.end, s.label) for s in gt["segments"]] == [(3.0, 4.5, "fall")]


def test_a_clip_whose_source_is_missing_is_named_and_the_rest_still_builds(tmp_path, source):
    sources, commit = source
    path = _manifest(tmp_path, commit, path="gone.avi")
    assert main(["--manifest", str(path), "--sources", str(sources), "--out", str(tmp_path / "real")]) == 1
    assert json.loads((tmp_path / "real" / "gt.json").read_text())["database"] == {}
    failed = rebuild(read_manifest(path), sources, tmp_path / "real", progress=False)
    assert "gone.avi" in failed["fall-hall-01"]


@pytest.mark.parametrize("change, message", [
    ({"camera": "lobby"}, "camera 'lobby' (clip fall-hall-01) has no split"),
    ({"events": [{"category": "fight", "start": 3.0, "end": 4.0}]}, "unknown category 'fight'"),
    ({"events": [{"category": "fall", "start": 11.0, "end": 11.5}]}, "lies outside the kept part [2, 10]"),
    ({"trim": [2.0, 30.0]}, "must lie inside the file"),
    ({"sha": "abc"}, "clips.0 (fall-hall-01).commit"),
])
def test_a_wrong_manifest_entry_is_named(tmp_path, change, message):
    with pytest.raises(ManifestError) as e:
        read_manifest(_manifest(tmp_path, "0" * 40, **change))
    assert message in str(e.value)
