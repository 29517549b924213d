"""Farneback motion on real vtest.avi frames: where people walk, how fast, which way."""
import numpy as np
import pytest

from stream.scene.motion import MotionExtractor, masked_frame
from stream.scene.people import PersonDetector


@pytest.fixture(scope="module")
def pair_of_frames(vtest):
    import av
    out = {}
    with av.open(str(vtest)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i in (100, 105):
                out[i] = f.to_ndarray(format="bgr24")
            if i > 105:
                break
    return out[100], out[105]                                      # 0.5 s apart


def test_a_still_scene_has_no_motion(pair_of_frames):
    m = MotionExtractor()
    s = m.summarise([m.pair(pair_of_frames[0], pair_of_frames[0], 0.5)], 576)
    assert s.moving[0] < 1e-3 and s.energy[0] < 1e-3


def test_a_known_shift_is_measured_in_frame_pixels_per_second_and_direction(pair_of_frames):
    a = pair_of_frames[0]
    m = MotionExtractor()
    right = m.pair(a, np.roll(a, 12, axis=1), 0.5)                 # 12 px to the right in 0.5 s
    assert np.median(right.flow[..., 0]) == pytest.approx(24.0, rel=0.1) and abs(np.median(right.flow[..., 1])) < 1
    assert m.summarise([right], 576).directions[0] > 0.8           # bin 0: rightwards
    up = m.pair(a, np.roll(a, -12, axis=0), 0.5)
    assert m.summarise([up], 576).directions[2] > 0.8              # bin 2: upwards (image y points down)


def test_what_moves_is_where_the_people_walk(pair_of_frames, models_dir):
    from engines import create_engine
    m = MotionExtractor()
    p = m.pair(*pair_of_frames, 0.5)
    s = m.summarise([p], 576)
    assert 0.005 < s.moving[0] < 0.3 and s.vector().shape == (4 + 8 + 7,)
    boxes = PersonDetector(create_engine("onnxruntime", models_dir / "ssdlite_person.onnx")).detect(
        [pair_of_frames[0]])[0].boxes
    scale = p.mask.shape[1] / 768
    near_people = np.zeros_like(p.mask)                            # within a body height of a detected walker
    for x0, y0, x1, y1 in boxes * scale:
        h = y1 - y0
        near_people[max(0, int(y0 - h)):int(y1 + h) + 1, max(0, int(x0 - h)):int(x1 + h) + 1] = True
    assert (p.mask & near_people).sum() / p.mask.sum() > 0.9, "moving pixels should be around the walkers"
    assert near_people.mean() < 0.4                                # (that is not most of the frame)
    assert p.mask[int(0.6 * p.mask.shape[0]):].mean() < 0.01       # the empty lawn in front does not move
    hidden = masked_frame(pair_of_frames[1], p.mask)
    assert hidden.shape == pair_of_frames[1].shape and (hidden.sum(axis=2) == 0).mean() > 0.7
