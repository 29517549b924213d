"""Hawkeye's per-clip features from the stream's own scene graphs, so that training reads exactly
what the stream extracts.

Hawkeye cuts a video into 1-second clips and keeps, per clip N, `pose_feat/<video>/frame_N.npy`
of shape (5, 17, 5) and `rel_feat/<video>/frame_N.npy` of shape (K, 353). Here each clip's
features come from the sampled frame nearest the clip's centre:

- pose (5, 17, 5): up to 5 people, the most confident first (zero rows when fewer); per COCO-17
  joint x and y in frame pixels, score, the person's track id in HigherHRNet's tag slot, and 1 if
  the joint was seen (else 0).
- relations (K, 353): that frame's triples as 51 predicate + 151 subject + 151 object
  probabilities (stream/scene/relations.py); (0, 353) when there are none.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from stream.scene.relations import ROW, relation_rows
from stream.types import SceneGraph

MAX_PEOPLE = 5


def clip_features(scene: SceneGraph, second: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(pose, relations) of clip [second, second + 1) from the window's sampled frames, or None
    when the window has no frame in that second."""
    ts = scene.timestamps
    inside = np.flatnonzero((ts >= second) & (ts < second + 1))
    if inside.size == 0:
        return None
    t = int(inside[np.argmin(np.abs(ts[inside] - (second + 0.5)))])
    people = sorted((tr for tr in scene.tracks if tr.present[t]), key=lambda tr: -float(tr.box_scores[t]))
    pose = np.zeros((MAX_PEOPLE, 17, 5), np.float32)
    for p, tr in enumerate(people[:MAX_PEOPLE]):
        kp = tr.keypoints[t]
        pose[p, :, :3] = kp
        pose[p, :, 3] = tr.track_id
        pose[p, :, 4] = kp[:, 2] > 0
    rel = relation_rows(list(scene.relations[t])) if scene.relations else np.zeros((0, ROW), np.float32)
    return pose, rel


def export_window(scene: SceneGraph, root: Path, video: str, *, skip_existing: bool = True) -> list[int]:
    """Write the features of every whole second the window covers; returns the clip numbers written.
    Overlapping windows cover the same seconds: with `skip_existing` the first one written stays."""
    written = []
    for second in range(math.floor(scene.start), math.ceil(scene.end)):
        pose_path = Path(root) / "pose_feat" / video / f"frame_{second}.npy"
        rel_path = Path(root) / "rel_feat" / video / f"frame_{second}.npy"
        if skip_existing and pose_path.exists() and rel_path.exists():
            continue
        feats = clip_features(scene, second)
        if feats is None:
            continue
        for path, array in zip((pose_path, rel_path), feats):
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, array)
        written.append(second)
    return written
