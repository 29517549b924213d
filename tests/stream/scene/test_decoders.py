"""Each decoder on outputs built from known keypoints, the way the real heads would emit them."""
import numpy as np
import pytest

from stream.scene.decoders import decode_associative_embedding, decode_simcc, decode_yolo_pose

RNG = np.random.default_rng(7)


def person(x0, y0, scale):
    """17 plausible COCO keypoints of a standing person whose box starts at (x0, y0)."""
    base = np.array([[.5, .05], [.55, .03], [.45, .03], [.6, .05], [.4, .05], [.7, .2], [.3, .2], [.75, .4],
                     [.25, .4], [.8, .55], [.2, .55], [.62, .55], [.38, .55], [.63, .77], [.37, .77], [.64, .98],
                     [.36, .98]])
    return np.array([x0, y0]) + base * np.array([scale * 0.5, scale])


def test_yolo_pose_keeps_the_people_merges_duplicates_and_returns_their_keypoints():
    A = 8400
    out = np.zeros((56, A), np.float32)
    out[:4] = RNG.uniform(0, 640, (4, A))
    out[4] = RNG.uniform(0, 0.1, A)                                 # background anchors
    truth = [person(100, 50, 300), person(400, 120, 200)]
    for j, (kp, anchor) in enumerate(zip(truth, (10, 5000))):
        x0, y0 = kp.min(0)
        x1, y1 = kp.max(0)
        for dup, score in ((0, 0.9 - j * 0.1), (1, 0.5)):           # each person found twice by nearby anchors
            col = out[:, anchor + dup]
            col[:5] = [(x0 + x1) / 2 + dup, (y0 + y1) / 2, x1 - x0, y1 - y0, score]
            col[5:] = np.concatenate([kp, np.full((17, 1), 0.95)], axis=1).reshape(-1)
    people = decode_yolo_pose(out[None], score_threshold=0.25)
    assert len(people.scores) == 2 and np.allclose(people.scores, [0.9, 0.8])
    for got, kp in zip(people.keypoints, truth):
        assert np.allclose(got[:, :2], kp, atol=1e-4) and np.allclose(got[:, 2], 0.95)
    assert np.allclose(decode_yolo_pose(out.T).keypoints, people.keypoints)   # (A, 56) layout too
    with pytest.raises(ValueError, match="56 rows"):
        decode_yolo_pose(np.zeros((1, 60, 100)))


def test_simcc_recovers_keypoints_to_half_a_pixel_and_scores_by_the_weaker_axis():
    ratio, W, H = 2.0, 192, 256
    kp = person(30, 10, 230)
    bins_x, bins_y = np.arange(int(W * ratio)), np.arange(int(H * ratio))
    sx = np.exp(-0.5 * ((bins_x[None, :] - kp[:, :1] * ratio) / 2.0) ** 2)[None]   # (1, 17, 384)
    sy = np.exp(-0.5 * ((bins_y[None, :] - kp[:, 1:] * ratio) / 2.0) ** 2)[None]
    sy[0, 9] *= 0.2                                                  # the left wrist is unsure in y
    out = decode_simcc(sx, sy, split_ratio=ratio)
    assert out.shape == (1, 17, 3)
    assert np.abs(out[0, :, :2] - kp).max() <= 0.5
    assert out[0, 9, 2] == pytest.approx(0.2, abs=0.01) and np.all(np.delete(out[0, :, 2], 9) > 0.9)
    with pytest.raises(ValueError, match="SimCC outputs"):
        decode_simcc(np.zeros((1, 16, 10)), np.zeros((1, 16, 10)))


def test_associative_embedding_groups_joints_into_people_by_their_tags():
    size, grid = (512, 512), 128
    truth = [person(60, 40, 400), person(300, 100, 350)]
    truth[1][3] = truth[1][4]                                        # (overlapping ears are fine)
    hm = np.zeros((17, grid, grid), np.float32)
    tags = np.zeros((17, grid, grid), np.float32)
    yy, xx = np.mgrid[0:grid, 0:grid]
    for kp, tag in zip(truth, (0.2, 3.0)):
        for k, (x, y) in enumerate(kp):
            if tag == 3.0 and k == 16:
                continue                                             # the second person's right ankle is hidden
            gx, gy = (x + 0.5) / 4 - 0.5, (y + 0.5) / 4 - 0.5           # input pixels -> heatmap cells
            blob = np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / 2.0)
            hm[k] = np.maximum(hm[k], blob)
            tags[k][blob > 0.01] = tag + RNG.normal(0, 0.05)
    people = decode_associative_embedding(hm, tags, input_size=size)
    assert len(people.scores) == 2
    order = np.argsort(people.boxes[:, 0])
    for got, kp, hidden in zip(people.keypoints[order], truth, (None, 16)):
        seen = [k for k in range(17) if k != hidden]
        assert np.abs(got[seen, :2] - kp[seen]).max() <= 4.0        # within one heatmap cell (4 px)
        assert np.all(got[seen, 2] > 0.5)
    assert people.keypoints[order][1, 16, 2] == 0                   # the hidden joint stays unknown
    with pytest.raises(ValueError, match="heatmaps must be"):
        decode_associative_embedding(hm[:5], tags[:5], input_size=size)
