"""Pictures of the scene stage: what is drawn lands where the graph says, and the command writes
PNGs per window or an MP4 of every sampled frame."""
from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from stream.scene.relations import PRED, Triple
from stream.scene.render import colour, draw, main
from stream.types import PersonTrack, SceneGraph


def standing(x: float, y0: float, h: float) -> np.ndarray:
    """COCO-17 keypoints of an upright person centred on x, head at y0, h tall (all seen)."""
    ys = {0: 0.05, 1: 0.04, 2: 0.04, 3: 0.05, 4: 0.05, 5: 0.2, 6: 0.2, 7: 0.35, 8: 0.35, 9: 0.5, 10: 0.5,
          11: 0.5, 12: 0.5, 13: 0.75, 14: 0.75, 15: 0.97, 16: 0.97}
    kp = np.zeros((17, 3), np.float32)
    for k, fy in ys.items():
        side = -1 if k % 2 else 1          # left joints have odd indices
        kp[k] = (x + side * (0 if k == 0 else 0.12 * h), y0 + fy * h, 0.9)
    return kp


def graph() -> SceneGraph:
    a, b = standing(100, 40, 120), standing(220, 50, 110)
    tracks = (PersonTrack(3, np.array([True]), np.array([[80, 40, 120, 160]], np.float32), np.ones(1), a[None]),
              PersonTrack(9, np.array([True]), np.array([[200, 50, 240, 160]], np.float32), np.ones(1), b[None]))
    rel = (Triple(3, 1, PRED["near"], 9, 1, 0.8), Triple(9, 1, PRED["near"], 3, 1, 0.8))
    return SceneGraph("cam", 0, 0.0, 1.0, np.array([0.5]), np.array([0.0]), (320, 200), tracks, relations=(rel,))


def test_skeletons_ids_and_relation_edges_are_drawn_where_the_graph_says():
    g = graph()
    img = draw(np.zeros((200, 320, 3), np.uint8), g, 0, scale=2.0)
    assert img.shape == (400, 640, 3)
    kp = g.tracks[0].keypoints[0]
    mid = ((kp[11, :2] + kp[13, :2]) / 2 * 2).round().astype(int)       # halfway along hip -> knee
    assert tuple(img[mid[1], mid[0]]) == colour(3)
    x, y = (kp[15, :2] * 2).round().astype(int)                          # a joint: a white dot
    assert tuple(img[y, x]) == (255, 255, 255)
    # box centres (100, 100) and (220, 105), doubled: the edge passes x = 260 at y = 202.5
    column = img[198:208, 260].astype(int)
    assert column.sum(axis=0).min() >= 250 and np.all(column.max(axis=1) == column.min(axis=1))   # white, anti-aliased
    assert img[340:, :].max() == 0 and img[:, 500:].max() == 0            # nothing drawn far from the people


def test_untracked_frames_draw_nothing_but_the_header():
    g = graph()
    hidden = SceneGraph("cam", 0, 0.0, 1.0, np.array([0.5]), np.array([0.0]), (320, 200),
                        tuple(PersonTrack(t.track_id, np.array([False]), t.boxes, t.box_scores, t.keypoints)
                              for t in g.tracks), relations=((),))
    img = draw(np.zeros((200, 320, 3), np.uint8), hidden, 0)
    assert img[30:, :].max() == 0


def test_render_command_writes_a_png_per_window_and_an_mp4(clip12, tmp_path, capsys):
    pngs = tmp_path / "pngs"
    assert main([str(clip12), "--out", str(pngs), "--seconds", "6", "--scale", "1"]) == 0
    files = sorted(pngs.glob("*.png"))
    assert [f.name for f in files] == [f"vtest12_w000{k}.png" for k in range(3)]   # 4 s windows, 2 s apart, in 6 s
    plain = None
    for f in files:
        img = cv2.imread(str(f))
        assert img.shape == (576, 768, 3)
        plain = img if plain is None else plain
    assert "window 2" in capsys.readouterr().err                         # progress, one line a window

    mp4 = tmp_path / "scene.mp4"
    assert main([str(clip12), "--out", str(mp4), "--seconds", "6", "--scale", "0.5"]) == 0
    with av.open(str(mp4)) as c:
        frames = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
    assert len(frames) == 12 and frames[0].shape == (288, 384, 3)       # 6 s sampled at 2 fps, each once


def test_render_command_rejects_what_it_cannot_use(tmp_path, clip12, capsys):
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "missing.avi"), "--out", str(tmp_path)])
    assert e.value.code == 2 and "no such video file" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("cameras: {}\n")
    assert main([str(clip12), "--out", str(tmp_path), "--config", str(bad)]) == 2
    assert "config error" in capsys.readouterr().err
