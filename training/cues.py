"""What the model's inputs can show, per category, before any training: the per-second ROC-AUC
of single hand-read cues on a split's seconds of that category against its normal seconds.

    python -m training.cues --features data/bench --gt data/bench/gt.json --subset test

Each second is read as the model reads it (its clip from stream/llm/features.py, the people
the clip keeps), so a category no cue separates is one whose events leave little in the
scene graph, and no model trained on these features should be expected to find it. A cue near
0.5 says nothing; under 0.5 it points the other way (e.g. fewer people seen during falls).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from engines.cli import Parser
from stream.llm.features import DWELL_UNIT, KIN_SCALE, Clip, clips_of
from stream.scene.kinematics import KINEMATICS
from stream.llm.hawkeye import HawkeyeConfig
from stream.scene.relations import OBJ, OBJECTS, PRED, PREDICATES
from training.data import read_ground_truth, second_label
from training.features import read_video
from training.metrics import roc_auc

CUES = ("people", "fastest joint", "fastest person", "widest pose", "motion", "relations", "longest dwell",
        "unattended object", "fastest feet", "lying", "fastest approach", "contact", "fastest outward", "sharpest turn")
_P = len(PREDICATES)


def unattended(clip: Clip) -> float:
    """The highest score of a left object (`bag on street`, scored by its time there) that no
    person is `near`, over the clip's frames."""
    best = 0.0
    for t in range(len(clip.rel)):
        rows, nodes, mask = clip.rel[t], clip.rel_nodes[t], clip.rel_mask[t]
        bag = mask & (rows[:, _P + OBJ["bag"]] > 0) & (rows[:, PRED["on"]] > 0)
        attended = set(nodes[mask & (rows[:, PRED["near"]] > 0) & (rows[:, _P + len(OBJECTS) + OBJ["bag"]] > 0), 1])
        for k in np.flatnonzero(bag):
            if nodes[k, 0] not in attended:
                best = max(best, float(rows[k, PRED["on"]]))
    return best


def cues(clip: Clip) -> list[float]:
    """One second's cues: people seen (mean a frame); the fastest joint and the fastest person
    (median joint speed), body heights a second; the widest pose (width / height: lying people);
    the share of moving pixels in the motion frames; relation triples a frame; the longest any
    person has stayed in place (s); the most certain unattended left object; and from the
    people's kinematics (scene/kinematics.py): the fastest feet, the share of people lying, the
    fastest approach of a pair, any contact, the fastest move away from the group, the sharpest turn."""
    if len(clip.pose) == 0:
        return [0.0] * len(CUES)
    known = (clip.pose[..., 2] > 0.05) & clip.people[..., None]              # (T, P, 17)
    speed = np.linalg.norm(clip.pose[..., 3:5], axis=-1)
    person = np.where(known.sum(-1) >= 3, np.nanmedian(np.where(known, speed, np.nan), axis=-1), 0.0) \
        if known.any() else np.zeros(known.shape[:2])
    x, y = clip.pose[..., 0], clip.pose[..., 1]
    wide = 0.0
    for t, p in zip(*np.nonzero(known.sum(-1) >= 3)):
        k = known[t, p]
        h = y[t, p, k].max() - y[t, p, k].min()
        wide = max(wide, float((x[t, p, k].max() - x[t, p, k].min()) / max(h, 1e-3)))
    moving = float((clip.motion.max(axis=1) > 0).mean())
    dwell = float((clip.pose[..., 0, 5] * clip.people).max()) * DWELL_UNIT
    return [float(clip.people.sum(-1).mean()), float(np.where(known, speed, 0).max()),
            float(np.nan_to_num(person).max()), min(wide, 5.0), moving, float(clip.rel_mask.sum(-1).mean()),
            dwell, unattended(clip), *kinematic_cues(clip)]


def kinematic_cues(clip: Clip) -> list[float]:
    k = {name: clip.kinematics[..., i] * KIN_SCALE[i] for i, name in enumerate(KINEMATICS)}   # back to real units
    seen = clip.people
    if not seen.any():
        return [0.0] * 6
    return [float(k["speed"][seen].max()), float(k["lying"][seen].mean()), float(k["approach"][seen].max()),
            float(k["contact"][seen].max()), float(k["outward"][seen].max()), float(k["turn"][seen].max())]


def distinct_clips(graphs, cfg: HawkeyeConfig) -> list[Clip]:
    """A video's seconds as the model reads them, each once (overlapping windows repeat them), in order."""
    seen: dict[float, Clip] = {}
    for graph in graphs:
        for clip in clips_of(graph, cfg):
            seen.setdefault(round(clip.start, 3), clip)
    return [seen[s] for s in sorted(seen)]


def table(features: Path, gt_path: Path, subset: str, progress: bool = True) -> tuple[dict, dict]:
    """-> ({category: [AUC per cue]}, {category: seconds}) over the subset's seconds."""
    gt = read_ground_truth(gt_path)
    cfg = HawkeyeConfig()
    rows: list[tuple[str, list[float]]] = []
    names = [v for v, e in gt.items() if e["subset"] == subset]
    if not names:
        raise ValueError(f"{gt_path}: no videos in subset {subset!r}")
    for k, video in enumerate(names):
        if progress:
            print(f"\rreading {k + 1}/{len(names)} {video}", end="", file=sys.stderr, flush=True)
        for clip in distinct_clips(read_video(features, video).scene_graphs(), cfg):
            rows.append((second_label(gt[video]["segments"], clip.start, clip.end), cues(clip)))
    if progress:
        print(file=sys.stderr)
    labels = np.array([lab for lab, _ in rows], dtype=object)
    values = np.array([v for _, v in rows])
    out, counts = {}, {c: int((labels == c).sum()) for c in sorted(set(labels))}
    for cat in sorted(set(labels) - {"normal"}):
        sel = (labels == cat) | (labels == "normal")
        out[cat] = [roc_auc((labels[sel] == cat).astype(int), values[sel, j]) for j in range(len(CUES))]
    if len(set(labels)) > 1:
        out["any"] = [roc_auc((labels != "normal").astype(int), values[:, j]) for j in range(len(CUES))]
    return out, counts


def render(aucs: dict, counts: dict) -> str:
    head = "| category | seconds | " + " | ".join(CUES) + " |"
    lines = [head, "|" + "---|" * (len(CUES) + 2)]
    for cat, row in aucs.items():
        n = sum(v for c, v in counts.items() if c != "normal") if cat == "any" else counts[cat]
        lines.append(f"| {cat} | {n} | " + " | ".join(f"{100 * a:.0f}" for a in row) + " |")
    return "\n".join(lines) + f"\n\n(normal seconds: {counts.get('normal', 0)}; ROC-AUC ×100 against them)"


def main(argv: list[str] | None = None) -> int:
    p = Parser("python -m training.cues", __doc__)
    p.add_argument("--features", type=Path, default=Path("data/bench"), help="the benchmark's features folder")
    p.add_argument("--gt", type=Path, default=Path("data/bench/gt.json"), help="its ground truth")
    p.add_argument("--subset", default="test", help="the split whose seconds are measured (train, val, test)")
    args = p.parse_args(argv)
    try:
        aucs, counts = table(args.features, args.gt, args.subset)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(render(aucs, counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
