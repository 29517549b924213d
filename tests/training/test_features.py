"""Features on disk: the windows rebuilt from them are the stream's own scene graphs, Hawkeye's
released layout reads, bad files are named, and extraction resumes."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from stream.config import load_config
from stream.ingest.source import VideoSource
from stream.ingest.windows import WindowAssembler
from stream.llm.features import clips_of
from stream.llm.hawkeye import HawkeyeConfig
from stream.scene.graph import scene_from_config
from stream.scene.relations import ROW
from training.extract import extract
from training.features import FeatureError, read_video, videos

ROOT = Path(__file__).resolve().parents[2]


def stream_graphs(path: Path, name: str):
    """What the pipeline's scene stage makes of a replayed file."""
    cfg = load_config(ROOT / "configs" / "demo.yaml")
    builder = scene_from_config(cfg, thumbs=True)
    w = cfg.windows
    asm = WindowAssembler(name, w.length_s, w.stride_s, w.sample_fps)
    out = []
    for f in VideoSource(name, str(path), is_file=True, replay="fast").frames():
        out += builder.build_many(asm.push(f.seq, f.ts, f.wall, f.pixels, f.gap))
    return out + builder.build_many(asm.finish())


def test_windows_rebuilt_from_features_are_the_streams_scene_graphs(tiny_bench):
    name = "test_000"
    live = stream_graphs(tiny_bench / "videos" / f"{name}.mp4", name)
    stored = read_video(tiny_bench, name).scene_graphs()
    assert [(g.window_id, g.start, g.end, g.final) for g in stored] == [(g.window_id, g.start, g.end, g.final) for g in live]
    cfg = HawkeyeConfig()
    for a, b in zip(live, stored):
        np.testing.assert_allclose(a.timestamps, b.timestamps)
        assert [t.track_id for t in a.tracks] == [t.track_id for t in b.tracks]
        for ta, tb in zip(a.tracks, b.tracks):
            np.testing.assert_array_equal(ta.present, tb.present)
            np.testing.assert_allclose(ta.keypoints, tb.keypoints, atol=1e-5)
            np.testing.assert_allclose(ta.dwell, tb.dwell)
            np.testing.assert_allclose(ta.kinematics, tb.kinematics, atol=1e-4)
        assert len(a.objects) == len(b.objects) and all(np.array_equal(x, y) for x, y in zip(a.objects, b.objects))
        np.testing.assert_array_equal(a.thumbs, b.thumbs)
        np.testing.assert_array_equal(a.motion_thumbs, b.motion_thumbs)
        assert a.relations == b.relations
        for ca, cb in zip(clips_of(a, cfg), clips_of(b, cfg)):      # the model's inputs are the same
            for field in ("frames", "motion", "pose", "people", "kinematics", "rel", "rel_nodes", "rel_mask"):
                np.testing.assert_allclose(getattr(ca, field), getattr(cb, field), atol=1e-5)
    assert sum(len(g.tracks) for g in stored) > 0 and any(g.relations and any(g.relations) for g in stored)


def test_features_written_before_kinematics_get_the_streams_by_replay(tiny_bench, tmp_path):
    root = tmp_path / "v2"
    shutil.copytree(tiny_bench, root, ignore=shutil.ignore_patterns("videos"))
    shutil.rmtree(root / "kin_feat")
    for name in videos(tiny_bench):
        stored, replayed = read_video(tiny_bench, name), read_video(root, name)
        assert any(len(s.kinematics) and s.kinematics[:, 0].any() for s in stored.scenes)   # someone moves
        for a, b in zip(stored.scenes, replayed.scenes):
            np.testing.assert_allclose(a.kinematics, b.kinematics, atol=1e-4)


def test_bad_feature_files_are_named_with_the_shape_expected(tiny_bench, tmp_path):
    root = tmp_path / "f"
    for kind in ("meta", "pose_feat", "box_feat", "thumb_feat", "rel_feat", "rel_nodes"):
        shutil.copytree(tiny_bench / kind, root / kind, ignore=shutil.ignore_patterns("train_*", "val_*"))
    frame = json.loads((root / "meta" / "test_000.json").read_text())["frames"][3]
    pose = root / "pose_feat" / "test_000" / f"frame_{frame}.npy"
    np.save(pose, np.zeros((2, 17, 3), np.float32))
    with pytest.raises(FeatureError, match=rf"frame_{frame}.npy: shape \(2, 17, 3\), expected \(N, 17, 5\)"):
        read_video(root, "test_000")
    pose.unlink()
    with pytest.raises(FeatureError, match=rf"frame_{frame}.npy: missing \(expected an array of shape \(N, 17, 5\)\)"):
        read_video(root, "test_000")
    pose.write_bytes(b"not numpy")
    with pytest.raises(FeatureError, match="not a numpy array file"):
        read_video(root, "test_000")
    with pytest.raises(FeatureError, match="training.extract"):
        read_video(root, "nonesuch")
    (root / "meta" / "test_000.json").write_text('{"frames": [1]}')
    with pytest.raises(FeatureError, match="not a feature index"):
        read_video(root, "test_000")


def test_hawkeyes_released_features_read_without_an_index(tmp_path):
    """pose_feat and rel_feat only, as Hawkeye ships them: frames from the file names, windows of
    4 s every 2 s, relations from the rows."""
    rng = np.random.default_rng(0)
    for n in range(0, 300, 15):          # 30 fps, a sampled frame every 0.5 s, 10 s
        people = rng.uniform(0, 1, (2, 17, 5)).astype(np.float32)
        people[..., 3] = [[1], [2]]      # track ids
        (tmp_path / "pose_feat" / "v").mkdir(parents=True, exist_ok=True)
        (tmp_path / "rel_feat" / "v").mkdir(parents=True, exist_ok=True)
        np.save(tmp_path / "pose_feat" / "v" / f"frame_{n}.npy", people)
        rel = np.zeros((1, ROW), np.float32)
        rel[0, 10] = rel[0, 51 + 1] = rel[0, 51 + 151 + 1] = 0.9
        np.save(tmp_path / "rel_feat" / "v" / f"frame_{n}.npy", rel)
    assert videos(tmp_path) == ["v"]
    graphs = read_video(tmp_path, "v", fps=30.0).scene_graphs()
    end = 9.5 + 1 / 30                   # the last frame lasts one frame interval
    assert [x for g in graphs for x in (g.start, g.end)] == pytest.approx([0, 4, 2, 6, 4, 8, 6, end, 8, end])
    assert [len(g.timestamps) for g in graphs] == [8, 8, 8, 8, 4] and graphs[-1].final
    assert {t.track_id for t in graphs[0].tracks} == {1, 2}
    (triple,) = graphs[0].relations[0]
    assert triple.predicate == 10 and triple.subject_class == 1 and triple.score == pytest.approx(0.9)


def test_extraction_resumes_where_it_stopped(tiny_bench, tmp_path):
    root = tmp_path / "f"
    shutil.copytree(tiny_bench / "meta", root / "meta")
    (root / "meta" / "val_000.json").unlink()                 # as if interrupted during val_000
    cfg = load_config(ROOT / "configs" / "demo.yaml")
    done = extract(sorted((tiny_bench / "videos").glob("*.mp4")), root, cfg, progress=False)
    assert list(done) == ["val_000"]
    assert json.loads((root / "meta" / "val_000.json").read_text())["frames"] == \
        json.loads((tiny_bench / "meta" / "val_000.json").read_text())["frames"]


def test_extraction_in_two_processes_writes_what_one_process_writes(tiny_bench, tmp_path):
    cfg = load_config(ROOT / "configs" / "demo.yaml")
    two = sorted((tiny_bench / "videos").glob("*.mp4"))[:2]
    done = extract(two, tmp_path / "a", cfg, progress=False, workers=2)
    assert sorted(done) == [v.stem for v in two]
    for v in two:                               # the tiny bench itself was extracted in one process
        a, b = read_video(tmp_path / "a", v.stem), read_video(tiny_bench, v.stem)
        assert a.frames == b.frames and a.windows == b.windows
        for ga, gb in zip(a.scene_graphs(), b.scene_graphs()):
            assert [t.track_id for t in ga.tracks] == [t.track_id for t in gb.tracks]
            for ta, tb in zip(ga.tracks, gb.tracks):
                np.testing.assert_allclose(ta.keypoints, tb.keypoints, atol=1e-4)
            assert ga.relations == gb.relations


def test_pretrained_appearance_is_filled_in_for_extracted_videos_as_the_stream_computes_it(tiny_bench, tmp_path):
    """Features extracted without models.appearance get it later without being redone: the
    sampled frames decoded again by number, and the result is what the stream's scene stage
    computes for the same windows (frame and person crops)."""
    from stream.config import AppearanceConfig
    demo = load_config(ROOT / "configs" / "demo.yaml")
    cfg = demo.model_copy(update={"models": demo.models.model_copy(update={
        "appearance": AppearanceConfig(path=ROOT / "models" / "efficientnet_lite0.onnx")})})
    name, root = "val_000", tmp_path / "f"
    for kind in ("meta", "pose_feat", "box_feat", "obj_feat", "kin_feat", "rel_feat", "rel_nodes", "thumb_feat"):
        src = tiny_bench / kind / (f"{name}.json" if kind == "meta" else name)
        (root / kind).mkdir(parents=True)
        (shutil.copy if kind == "meta" else shutil.copytree)(src, root / kind / src.name)
    assert read_video(root, name).scene_graphs()[0].appearance is None
    done = extract([tiny_bench / "videos" / f"{name}.mp4"], root, cfg, progress=False)
    assert done == {name: len(read_video(root, name).windows)}
    assert extract([tiny_bench / "videos" / f"{name}.mp4"], root, cfg, progress=False) == {}   # nothing left to do
    builder = scene_from_config(cfg, thumbs=True)
    w = cfg.windows
    asm = WindowAssembler(name, w.length_s, w.stride_s, w.sample_fps)
    live = []
    for f in VideoSource(name, str(tiny_bench / "videos" / f"{name}.mp4"), is_file=True, replay="fast").frames():
        live += builder.build_many(asm.push(f.seq, f.ts, f.wall, f.pixels, f.gap))
    live += builder.build_many(asm.finish())
    stored = read_video(root, name).scene_graphs()
    assert len(live) == len(stored) and sum(len(g.tracks) for g in live) > 0
    for a, b in zip(live, stored):
        assert a.appearance.shape == (len(a.timestamps), 1280) and a.appearance.dtype == np.float16
        np.testing.assert_allclose(a.appearance, b.appearance, atol=1e-2)
        for ta, tb in zip(a.tracks, b.tracks):
            assert ta.appearance.shape == (len(a.timestamps), 1280)
            np.testing.assert_allclose(ta.appearance, tb.appearance, atol=1e-2)
            assert not ta.appearance[~ta.present].any() and ta.appearance[ta.present].any()
