"""The synthetic benchmark: scripted events have frame-exact spans, the composed people are real
enough for the person detector, and the output is Hawkeye's layout, reproducible by seed."""
from __future__ import annotations

import json

import av
import numpy as np
import pytest

from training import synth


def plan(bank, kind: str, seed: int = 1, n: int = 200):
    b, frames, fps = bank
    rng = np.random.default_rng(seed)
    return synth.plan_video(b, b.sprites, "v", "train", [kind], n, fps, len(frames), (768, 576), rng, 0), b, fps


def speeds(actor, bank, fps):
    """Body heights a second moved between consecutive visible frames."""
    v = np.hypot(np.diff(actor.x), np.diff(actor.y)) * fps / np.array([bank.height_at(y) for y in actor.y[1:]])
    return np.where(actor.visible[1:] & actor.visible[:-1], v, np.nan)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_fall_is_annotated_from_the_first_tilted_frame_to_upright_again(bank, seed):
    p, _, _ = plan(bank, "fall", seed)
    (ann,) = p.annotations
    f0, f1 = ann["frames"]
    a = p.actors[0]
    tilted = np.flatnonzero(np.abs(a.angle) > 0)
    assert ann["label"] == "fall" and ann["segment"] == [round(f0 / 10, 3), round(f1 / 10, 3)]
    assert tilted[0] == f0 + 1 and a.angle[f0] == 0       # the fall starts at f0 (angle 0 -> 88 over 4 frames)
    assert tilted[-1] == f1 - 2 and a.angle[f1 - 1] == 0  # and ends standing at f1 - 1
    assert np.abs(a.angle[f0 + 3:f1 - 8]).min() >= 80     # lying in between


@pytest.mark.parametrize("seed", [1, 2])
def test_running_starts_at_the_span_and_runs_at_running_speed(bank, seed):
    p, b, fps = plan(bank, "running", seed)
    (ann,) = p.annotations
    f0, f1 = ann["frames"]
    v = speeds(p.actors[0], b, fps)
    assert np.nanmax(v[:f0 - 1]) < synth.WALK[1] * 1.1        # walking before
    assert np.nanmin(v[f0:f1 - 2]) > synth.RUN[0] * 0.9       # running during
    assert not p.actors[0].visible[f1:].any()                 # the span ends where the runner leaves


def test_abandoned_bag_is_left_before_the_span_and_stays(bank):
    p, b, fps = plan(bank, "abandoned", 4)
    (ann,) = p.annotations
    f0, f1 = ann["frames"]
    (bag,) = p.props
    owner = p.actors[0]
    assert bag["from"] < f0 and f1 == 200                     # on the ground before, and to the end
    gap = np.hypot(owner.x[f0] - bag["x"], owner.y[f0] - bag["y"]) / bag["h"]
    assert gap >= 0.8                                         # the owner is away when the span starts


def test_scuffle_dispersal_chase_and_loitering_have_their_people(bank):
    counts = {"scuffle": 2, "chase": 2, "loitering": 1}
    for kind, n in counts.items():
        p, _, _ = plan(bank, kind, 5, n=300)
        assert len(p.actors) == n and p.annotations[0]["label"] == kind
    p, _, _ = plan(bank, "dispersal", 5, n=300)
    f0 = p.annotations[0]["frames"][0]
    centre = np.mean([(a.x[f0], a.y[f0]) for a in p.actors], axis=0)
    spread = lambda t: np.mean([np.hypot(a.x[t] - centre[0], a.y[t] - centre[1]) for a in p.actors])  # noqa: E731
    assert len(p.actors) >= 4 and spread(f0 + 15) > 2.5 * spread(f0 - 1)   # they scatter from the span's start


def test_composed_people_are_found_by_the_person_detector(bank, detector):
    b, frames, fps = bank
    rng = np.random.default_rng(0)
    found = 0
    trials = 12
    for k in range(trials):
        sprite = b.sprites[k % len(b.sprites)]
        x, y = rng.uniform(150, 620), rng.uniform(260, 540)
        h = b.height_at(y)
        img = b.background.copy()
        synth.paste(img, sprite, rng.uniform(0, 30), x, y, h, 0.0, bool(k % 2))
        dets = detector.detect([img])[0]
        truth = np.array([x - 0.25 * h, y - h, x + 0.25 * h, y])
        ious = [_iou(d, truth) for d in dets.boxes]
        found += bool(ious) and max(ious) > 0.4
    assert found >= 0.8 * trials


def _iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_the_benchmark_is_in_hawkeye_layout_and_reproducible(tiny_bench, tiny_gt, bank, tmp_path, vtest):
    db = tiny_gt["database"]
    assert {e["subset"] for e in db.values()} == {"train", "val", "test"}
    for name, e in db.items():
        clips = sorted((tiny_bench / "dataset" / "vid_split" / name).glob("*.mp4"))
        assert [c.name for c in sorted(clips, key=lambda c: int(c.stem.split("_")[0]))] == \
            [f"{s}_{s + 1}.mp4" for s in range(8)]
        with av.open(str(tiny_bench / "videos" / f"{name}.mp4")) as c:
            assert sum(1 for _ in c.decode(video=0)) == e["frames"] == 80
        for a in e["annotations"]:
            f0, f1 = a["frames"]
            assert a["segment"] == [round(f0 / 10, 3), round(f1 / 10, 3)] and 0 <= f0 < f1 <= 80
    again = synth.generate(vtest, tmp_path, seed=3, counts={"train": 2, "val": 1, "test": 1}, seconds=8.0,
                           clips=False, bank=bank[0], progress=lambda m: None)
    assert again == tiny_gt
    manifest = json.loads((tiny_bench / "manifest.json").read_text())
    assert manifest["seed"] == 3 and len(manifest["source_sha256"]) == 64
    # no person plays in two splits, and every annotation names actors of its own split
    cast = {k: set(v) for k, v in manifest["actors_by_split"].items()}
    assert all(cast.values()) and not (cast["train"] & cast["val"] or cast["train"] & cast["test"]
                                       or cast["val"] & cast["test"])
    for e in db.values():
        for a in e["annotations"]:
            assert a["actors"] and set(a["actors"]) <= cast[e["subset"]], (a, e["subset"])


def test_an_unknown_split_or_a_short_video_is_refused(tmp_path, vtest):
    with pytest.raises(ValueError, match="unknown splits"):
        synth.generate(vtest, tmp_path, counts={"training": 3})
    short = tmp_path / "short.mp4"
    synth.write_video(short, [np.zeros((64, 64, 3), np.uint8)] * 10, 10.0)
    with pytest.raises(ValueError, match="10 frames"):
        synth.generate(short, tmp_path)


def test_the_contact_sheet_shows_one_labelled_frame_per_category(tiny_bench, tiny_gt, tmp_path):
    from training.sheet import contact_sheet, main
    labels = {a["label"] for e in tiny_gt["database"].values() if e["subset"] == "train" for a in e["annotations"]}
    sheet = contact_sheet(tiny_bench, "train", columns=2, width=200)
    tile_h = sheet.shape[0] // ((len(labels) + 1) // 2)
    assert sheet.shape[1] == 400 and sheet.shape[0] % tile_h == 0 and sheet.std() > 10    # real frames
    assert main(["--bench", str(tiny_bench), "--subset", "train", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 10_000
    assert main(["--bench", str(tiny_bench), "--subset", "nowhere", "--out", str(tmp_path / "x.png")]) == 2


def test_generation_in_two_processes_resumes_after_an_interruption(tiny_gt, bank, tmp_path, vtest):
    """Two processes make the same benchmark as one; a run stopped part-way (a video whose record
    was never written) is finished by the next run, which makes only what is missing; other
    settings in the same folder are refused."""
    kw = dict(seed=3, counts={"train": 2, "val": 1, "test": 1}, seconds=8.0, clips=False, bank=bank[0])
    assert synth.generate(vtest, tmp_path, progress=lambda m: None, workers=2, **kw) == tiny_gt
    (tmp_path / "gen" / "train_001.json").unlink()              # as if killed while writing train_001
    said: list[str] = []
    assert synth.generate(vtest, tmp_path, progress=said.append, workers=2, **kw) == tiny_gt
    assert "3 of 4 videos already made: resuming" in said
    assert [m.split(":")[0] for m in said if m.startswith("[")] == ["[4/4] train_001"]
    with pytest.raises(ValueError, match="holds a benchmark made with other settings"):
        synth.generate(vtest, tmp_path, progress=lambda m: None, **{**kw, "seed": 4})


def test_each_video_can_have_a_camera_of_its_own(tiny_gt, bank, tmp_path, vtest):
    """--cameras: the same events (the plan does not change), seen through a different camera per
    video, each recorded in the ground truth and the manifest; the camera is deterministic."""
    from training.cameras import Camera
    kw = dict(seed=3, counts={"train": 2, "val": 1, "test": 1}, seconds=8.0, clips=False, bank=bank[0],
              progress=lambda m: None)
    gt = synth.generate(vtest, tmp_path, cameras=True, **kw)
    for name, e in gt["database"].items():
        plain = tiny_gt["database"][name]
        assert e["annotations"] == plain["annotations"] and e["frames"] == plain["frames"]
    cams = [e["camera"] for e in gt["database"].values()]
    assert len({json.dumps(c, sort_keys=True) for c in cams}) == len(cams)      # no two videos share a view
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["cameras"] == {n: e["camera"] for n, e in gt["database"].items()}
    frame = bank[1][100]
    cam = Camera.draw(np.random.default_rng(5))
    a, b = cam.apply(frame, 7), cam.apply(frame, 7)
    assert np.array_equal(a, b) and a.shape == frame.shape and not np.array_equal(a, frame)
    still = Camera(zoom=1.0, centre=(0.5, 0.5), tilt=0.0, brightness=0.0, contrast=1.0, temperature=0.0, blur=0.0,
                   noise=0.0, crf=20, seed=0)
    assert np.abs(still.apply(frame, 0).astype(int) - frame).max() <= 1        # the identity camera changes nothing
    with av.open(str(tmp_path / "videos" / "test_000.mp4")) as c:
        assert next(c.decode(video=0)).to_ndarray(format="bgr24").std() > 10          # a real picture
