"""People cut out cleanly: BlazePose's segmentation and background subtraction together leave no
halo of background around a person, and recolouring changes clothes, never skin."""
from __future__ import annotations

import cv2
import numpy as np

from training import mattes, synth


def _people(bank, detector, frames, k: int = 6):
    """(frame, box) of k people standing clear of others in vtest.avi."""
    found = []
    for i in range(40, len(frames), 60):
        for box in detector.detect([frames[i]])[0].boxes:
            if box[3] - box[1] > 70:
                found.append((frames[i], box))
                break
    return found[:k]


def test_a_matte_holds_the_person_and_no_background(bank, detector, segmenter):
    b, frames, _ = bank
    people = _people(b, detector, frames)
    assert len(people) >= 4
    for frame, box in people:
        (person,) = segmenter([frame], [box])
        x0, y0, x1, y1 = box.astype(int)
        assert person[y0:y1, x0:x1].mean() > 0.3 and person[:max(1, y0 - 40)].max() < 0.5  # them, not the sky
        cut = mattes.matte(frame, b.background, box, person)
        assert cut is not None
        patch, alpha = cut
        assert patch.shape[:2] == alpha.shape and 0.75 * (y1 - y0) <= alpha.shape[0] <= 1.15 * (y1 - y0)
        # no halo: where the matte is opaque the picture is not the empty scene's (the patch is
        # found in the frame to compare it with the background behind it)
        _, _, (px, py), _ = cv2.minMaxLoc(-cv2.matchTemplate(frame, patch, cv2.TM_SQDIFF))
        behind = b.background[py:py + patch.shape[0], px:px + patch.shape[1]]
        solid = alpha > 0.5
        same = np.abs(patch.astype(int) - behind).max(axis=2) < 10
        assert 0.25 < solid.mean() < 0.85 and (same & solid).sum() < 0.06 * solid.sum()
        edge = (alpha > 0.05) & (alpha < 0.95)
        assert edge.sum() > 0 and edge.mean() < 0.35                  # feathered, over a thin band


def test_recolouring_moves_the_clothes_and_leaves_skin_and_head_alone():
    patch = np.zeros((100, 40, 3), np.uint8)
    patch[:17] = (30, 30, 40)                   # dark hair
    patch[17:52] = (150, 60, 20)                # a blue top
    patch[52:] = (90, 90, 90)                   # grey trousers
    patch[30:40, 0:6] = (120, 150, 200)         # a hand (skin tone) in front of the top
    alpha = np.ones((100, 40), np.float32)
    parts = mattes.regions(patch, alpha)
    assert (parts[:17] == 0).all() and (parts[30:40, 0:4] == 0).all()
    assert (parts[20:48, 10:30] == 1).all() and (parts[60:95, 10:30] == 2).all()
    out = mattes.recolour(patch, alpha, parts, {1: "red", 2: "khaki"})
    assert np.array_equal(out[:15], patch[:15]) and np.abs(out[31:39, 0:3].astype(int) - patch[31:39, 0:3]).max() <= 2
    assert np.abs(out[25:45, 12:28].mean(axis=(0, 1)) - mattes.PALETTE["red"]).max() < 25
    assert np.abs(out[60:95, 12:28].mean(axis=(0, 1)) - mattes.PALETTE["khaki"]).max() < 25


def test_pieces_of_one_persons_track_are_linked_and_others_are_not():
    def track(f0, n, x0, vx, y=400.0, h=100.0):
        return [(f, np.array([x0 + vx * k - 25, y - h, x0 + vx * k + 25, y])) for k, f in enumerate(range(f0, f0 + n))]
    tracks = {1: track(0, 20, 100, 5), 2: track(24, 20, 100 + 5 * 24, 5),        # the same walker, lost for 4 frames
              3: track(24, 20, 600, -5),                                        # someone else, elsewhere
              4: track(70, 10, 100 + 5 * 70, 5)}                                 # too long after (5 s at 10 fps)
    person = synth.link_tracks(tracks, 10.0)
    assert person == {1: 1, 2: 1, 3: 3, 4: 4}
