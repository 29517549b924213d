"""Scene graphs cross process boundaries (Ray) exactly, their bit masks packed."""
from __future__ import annotations

import pickle

import numpy as np

from stream.types import MotionSummary, SceneGraph


def graph(**parts) -> SceneGraph:
    return SceneGraph("lobby", 3, 6.0, 10.0, np.arange(8.0), np.arange(8.0), (768, 576), (), **parts)


def test_masks_and_motion_thumbnails_travel_packed_and_come_back_exactly():
    rng = np.random.default_rng(0)
    masks = rng.random((7, 90, 160)) > 0.7
    motion = MotionSummary(rng.random(7, np.float32), rng.random(7, np.float32), np.zeros(8, np.float32),
                           np.zeros(4, np.float32), masks)
    thumbs = rng.integers(0, 256, (8, 48, 64, 3), dtype=np.uint8)
    thumbs[0, 0, 0] = 0                                  # a black pixel where it moves: still exact
    moving = rng.random((8, 48, 64)) > 0.5
    scene = graph(motion=motion, thumbs=thumbs, motion_thumbs=thumbs * moving[..., None])
    wire = pickle.dumps(scene, protocol=5)
    back = pickle.loads(wire)
    assert back.motion.masks.dtype == bool and np.array_equal(back.motion.masks, masks)
    assert back.motion_thumbs.dtype == np.uint8 and np.array_equal(back.motion_thumbs, scene.motion_thumbs)
    assert np.array_equal(back.thumbs, thumbs) and np.array_equal(back.motion.energy, motion.energy)
    raw = masks.nbytes + thumbs.nbytes * 2
    assert len(wire) < 0.55 * raw        # masks 1 bit a pixel, the motion copy a mask over the thumbnails


def test_a_motion_copy_that_is_not_the_masked_thumbnail_travels_as_it_is():
    thumbs = np.full((2, 4, 4, 3), 10, np.uint8)
    odd = thumbs + 1                                     # not thumbs * mask: kept whole
    back = pickle.loads(pickle.dumps(graph(thumbs=thumbs, motion_thumbs=odd)))
    assert np.array_equal(back.motion_thumbs, odd)
    assert pickle.loads(pickle.dumps(graph())).motion_thumbs is None
