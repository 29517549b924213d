"""Hawkeye's metrics: frame-level FNR and F2, ActivityNet-style mAP at temporal IoU thresholds,
and frame-level ROC-AUC and AP. Plain numpy; tests check them against scikit-learn and cases
computed by hand.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[int, int, int, int]:
    """-> tp, fp, fn, tn of boolean frame labels."""
    t, p = np.asarray(y_true, bool), np.asarray(y_pred, bool)
    return int((t & p).sum()), int((~t & p).sum()), int((t & ~p).sum()), int((~t & ~p).sum())


def fnr(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """False negative rate: anomalous frames missed / anomalous frames (nan without any)."""
    tp, _, fn, _ = confusion(y_true, y_pred)
    return fn / (tp + fn) if tp + fn else float("nan")


def f_beta(y_true: np.ndarray, y_pred: np.ndarray, beta: float = 2.0) -> float:
    """F-beta of the anomalous class (beta 2: recall weighs four times precision); 0 when nothing is right."""
    tp, fp, fn, _ = confusion(y_true, y_pred)
    b2 = beta * beta
    denom = (1 + b2) * tp + b2 * fn + fp
    return (1 + b2) * tp / denom if denom else 0.0


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve: the probability that a random anomalous frame scores above a
    random normal one, ties counting half (nan with one class only)."""
    t = np.asarray(y_true, bool)
    s = np.asarray(score, np.float64)
    n_pos, n_neg = int(t.sum()), int((~t).sum())
    if not n_pos or not n_neg:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), np.float64)
    sorted_s = s[order]
    # average ranks over ties
    edges = np.flatnonzero(np.diff(sorted_s)) + 1
    starts = np.r_[0, edges]
    ends = np.r_[edges, len(s)]
    for a, b in zip(starts, ends):
        ranks[order[a:b]] = (a + b + 1) / 2.0        # 1-based mean rank of the tie group
    return float((ranks[t].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(y_true: np.ndarray, score: np.ndarray) -> float:
    """AP as the sum over thresholds of (recall step) x precision, thresholds at each distinct score
    (the definition scikit-learn's average_precision_score uses); nan without positives."""
    t = np.asarray(y_true, bool)
    s = np.asarray(score, np.float64)
    if not t.any():
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s, t = s[order], t[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]     # the last index of each distinct score
    tp = np.cumsum(t)[last]
    fp = (last + 1) - tp
    precision = tp / (tp + fp)
    recall = tp / t.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def tiou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Temporal intersection over union of two [start, end] segments."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """ActivityNet's AP: the area under the precision envelope (precision made monotone from the right)."""
    p = np.r_[0.0, precision, 0.0]
    r = np.r_[0.0, recall, 1.0]
    for i in range(len(p) - 2, -1, -1):
        p[i] = max(p[i], p[i + 1])
    idx = np.flatnonzero(r[1:] != r[:-1]) + 1
    return float(np.sum((r[idx] - r[idx - 1]) * p[idx]))


@dataclass(frozen=True)
class Detection:
    video: str
    start: float
    end: float
    label: str
    score: float
    opened: float = float("nan")     # stream time the open alert went out (the end of the window that opened it)


def rank(detections: list[Detection]) -> list[Detection]:
    """Best score first, tied scores as ActivityNet's evaluation orders them (`argsort()[::-1]`
    over the list as given: among equal scores the later detection comes first), so results
    can be compared with theirs."""
    order = np.argsort(np.array([d.score for d in detections], np.float64), kind="stable")[::-1]
    return [detections[i] for i in order]


def segment_ap(truth: dict[str, list[tuple[float, float]]], detections: list[Detection], threshold: float) -> float:
    """AP of one class: detections ranked by score over all videos; each is a true positive if it
    overlaps a not yet matched ground-truth segment of its video with tIoU >= threshold (the best
    such one), else a false positive (ActivityNet's rule). nan without ground truth."""
    n_truth = sum(len(v) for v in truth.values())
    if n_truth == 0:
        return float("nan")
    if not detections:
        return 0.0
    used = {v: np.zeros(len(segs), bool) for v, segs in truth.items()}
    ranked = rank(detections)
    tp = np.zeros(len(ranked))
    for i, d in enumerate(ranked):
        segs = truth.get(d.video, [])
        ious = np.array([tiou((d.start, d.end), s) for s in segs])
        for j in np.argsort(-ious) if len(ious) else []:
            if ious[j] < threshold:
                break
            if not used[d.video][j]:
                used[d.video][j] = True
                tp[i] = 1
                break
    ctp = np.cumsum(tp)
    precision = ctp / np.arange(1, len(ranked) + 1)
    recall = ctp / n_truth
    return interpolated_ap(precision, recall)


def mean_ap(truth: dict[str, list[tuple[float, float, str]]], detections: list[Detection],
            thresholds=(0.1, 0.2, 0.3)) -> dict[float, float]:
    """mAP at each tIoU threshold: the mean of per-class segment AP over the classes that have
    ground truth (ActivityNet detection)."""
    classes = sorted({lab for segs in truth.values() for _, _, lab in segs})
    out = {}
    for th in thresholds:
        aps = []
        for c in classes:
            t = {v: [(s, e) for s, e, lab in segs if lab == c] for v, segs in truth.items()}
            aps.append(segment_ap(t, [d for d in detections if d.label == c], th))
        out[th] = float(np.mean(aps)) if aps else float("nan")
    return out


def labels_without_truth(truth: dict[str, list[tuple[float, float, str]]], detections: list[Detection]) -> dict[str, int]:
    """Detection labels no ground-truth segment has, with how many detections carry each: mAP
    averages over the classes with truth, so these would otherwise vanish without a word."""
    known = {lab for segs in truth.values() for _, _, lab in segs}
    out: dict[str, int] = {}
    for d in detections:
        if d.label not in known:
            out[d.label] = out.get(d.label, 0) + 1
    return dict(sorted(out.items()))


def category_confusion(truth: dict[str, list[tuple[float, float, str]]], detections: list[Detection]) -> dict[str, dict[str, int]]:
    """Event category (rows, plus `normal` for alerts that overlap no event) against the category
    of the alert that overlaps the event most (columns, plus `missed` for events no alert overlaps)."""
    out: dict[str, dict[str, int]] = {}

    def count(row: str, col: str) -> None:
        out.setdefault(row, {})
        out[row][col] = out[row].get(col, 0) + 1
    by_video: dict[str, list[Detection]] = {}
    for d in detections:
        by_video.setdefault(d.video, []).append(d)
    for video, segs in truth.items():
        dets = by_video.get(video, [])
        for s, e, lab in segs:
            overlap = [(min(e, d.end) - max(s, d.start), d.label) for d in dets]
            best = max(overlap, default=(0.0, ""))
            count(lab, best[1] if best[0] > 0 else "missed")
        for d in dets:
            if not any(min(e, d.end) - max(s, d.start) > 0 for s, e, _ in segs):
                count("normal", d.label)
    return {r: dict(sorted(c.items())) for r, c in sorted(out.items())}


def bootstrap_intervals(groups: list, statistic: Callable[[list], dict[str, float]], n: int = 1000, seed: int = 0,
                        level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of every figure `statistic(groups)` returns, resampling
    whole groups (videos) with replacement: frames of one video are not independent, videos are.
    Resamples where a figure is NaN (no positives drawn) are left out of its interval."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(n):
        for key, v in statistic([groups[i] for i in rng.integers(0, len(groups), len(groups))]).items():
            if v is not None and not np.isnan(v):
                draws.setdefault(key, []).append(v)
    out = {}
    for key, values in draws.items():
        lo, hi = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
        out[key] = (float(lo), float(hi))
    return out


def best_f2_threshold(labels: np.ndarray, scores: np.ndarray, beta: float = 2.0) -> float:
    """The score threshold with the best F-beta of `scores >= threshold` against `labels` (the
    midpoint between that score and the next lower one, so it generalises either way); 0.5 when
    either class is missing."""
    labels, scores = np.asarray(labels, bool), np.asarray(scores, float)
    if labels.all() or not labels.any():
        return 0.5
    cuts = np.unique(scores)
    best = max(cuts, key=lambda c: f_beta(labels, scores >= c, beta))
    lower = cuts[cuts < best]
    return float((best + lower.max()) / 2) if len(lower) else float(best)
