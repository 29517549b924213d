"""People's kinematics: a runner's speed, a faller's posture, a pair closing in and touching, a
group scattering, measured from boxes and keypoints frame after frame."""
from __future__ import annotations

import numpy as np

from stream.scene.kinematics import KINEMATICS, PersonKinematics

COL = {k: i for i, k in enumerate(KINEMATICS)}


def box(x: float, y: float, w: float = 40.0, h: float = 100.0) -> list[float]:
    """A box whose feet stand at (x, y)."""
    return [x - w / 2, y - h, x + w / 2, y]


def upright(b) -> np.ndarray:
    """COCO-17 keypoints of a person standing in box b: shoulders at the top quarter, hips at mid-height."""
    k = np.zeros((17, 3), np.float32)
    cx, top, h = (b[0] + b[2]) / 2, b[1], b[3] - b[1]
    for i, (dx, fy) in {5: (-8, 0.25), 6: (8, 0.25), 11: (-6, 0.55), 12: (6, 0.55)}.items():
        k[i] = (cx + dx, top + fy * h, 0.9)
    return k


def run(frames, fps=2.0):
    """frames: per frame a list of (track id, box[, keypoints]) -> the last frame's (P, KIN)."""
    kin = PersonKinematics()
    out = None
    for n, people in enumerate(frames):
        ids = np.array([p[0] for p in people], np.int64)
        boxes = np.array([p[1] for p in people], np.float32).reshape(-1, 4)
        kps = np.array([p[2] if len(p) > 2 else upright(p[1]) for p in people], np.float32).reshape(-1, 17, 3)
        out = kin.update(n / fps, ids, boxes, kps, None)
    return out


def test_a_runner_is_faster_than_a_walker_in_body_heights_a_second():
    walker = run([[(1, box(100 + 60 * t, 300))] for t in range(4)])      # 60 px per 0.5 s: 1.2 heights/s
    runner = run([[(1, box(100 + 200 * t, 300))] for t in range(4)])     # 4 heights/s
    assert abs(walker[0, COL["speed"]] - 1.2) < 0.05 and abs(runner[0, COL["speed"]] - 4.0) < 0.05
    assert walker[0, COL["upright"]] == 1 and walker[0, COL["turn"]] == 0


def test_speeding_up_and_turning_back_show():
    out = run([[(1, box(x, 300))] for x in (100, 110, 120, 220, 120)])
    assert out[0, COL["turn"]] > 0.9
    faster = run([[(1, box(x, 300))] for x in (100, 110, 120, 220)])
    assert faster[0, COL["acceleration"]] > 1.0


def test_a_fall_is_lying_and_shrunk():
    fallen = [30.0, 260.0, 130.0, 300.0]                                  # wider than tall, on the ground
    out = run([[(1, box(100, 300))], [(1, box(100, 300))], [(1, fallen, np.zeros((17, 3)))]])
    assert out[0, COL["lying"]] == 1 and out[0, COL["shrink"]] < 0.5 and out[0, COL["upright"]] == 0


def test_a_pair_closing_in_then_touching():
    closing = run([[(1, box(100 + 40 * t, 300)), (2, box(400 - 40 * t, 300))] for t in range(3)])
    assert closing[:, COL["approach"]].min() > 1.0                     # both walk into each other
    assert abs(closing[0, COL["nearest"]] - 1.4) < 0.05 and closing[0, COL["contact"]] == 0
    touching = run([[(1, box(200, 300)), (2, box(230, 300))]])
    assert touching[:, COL["contact"]].tolist() == [1, 1] and touching[0, COL["neighbours"]] == 1
    apart = run([[(1, box(200 - 40 * t, 300)), (2, box(230 + 40 * t, 300))] for t in range(3)])
    assert apart[:, COL["approach"]].max() < 0


def test_a_group_scattering_moves_outward_and_a_newcomer_has_no_speed():
    centre = np.array([300.0, 300.0])
    dirs = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], float)
    frames = [[(i + 1, box(*(centre + d * (30 + 80 * t)))) for i, d in enumerate(dirs)] for t in range(3)]
    out = run(frames)
    assert out[:, COL["outward"]].min() > 1.0 and (out[:, COL["people"]] == 4).all()
    frames[-1].append((9, box(50, 300)))
    assert run(frames)[-1, COL["speed"]] == 0
