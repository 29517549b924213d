"""Metrics against scikit-learn (an independent implementation) and cases computed by hand."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, confusion_matrix, fbeta_score, roc_auc_score

from training.metrics import (Detection, average_precision, best_f2_threshold, bootstrap_intervals, category_confusion,
                              confusion, f_beta, fnr, interpolated_ap, labels_without_truth, mean_ap, rank, roc_auc,
                              segment_ap, tiou)


@pytest.mark.parametrize("seed", range(6))
def test_frame_metrics_match_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 2000))
    truth = rng.random(n) < rng.uniform(0.05, 0.6)
    score = np.round(rng.random(n) * 0.6 + 0.4 * truth, int(rng.integers(1, 4)))   # rounding makes ties
    pred = score > 0.5
    tn, fp, fn, tp = confusion_matrix(truth, pred, labels=[False, True]).ravel()
    assert confusion(truth, pred) == (tp, fp, fn, tn)
    assert fnr(truth, pred) == pytest.approx(fn / (fn + tp))
    assert f_beta(truth, pred, 2.0) == pytest.approx(fbeta_score(truth, pred, beta=2.0, zero_division=0.0))
    assert roc_auc(truth, score) == pytest.approx(roc_auc_score(truth, score))
    assert average_precision(truth, score) == pytest.approx(average_precision_score(truth, score))


def test_frame_metrics_by_hand_and_degenerate_cases():
    t = np.array([1, 1, 1, 0, 0], bool)
    p = np.array([1, 0, 0, 1, 0], bool)
    assert fnr(t, p) == pytest.approx(2 / 3)
    # precision 1/2, recall 1/3: F2 = 5 PR / (4P + R) = (5/6) / (2 + 1/3)
    assert f_beta(t, p) == pytest.approx((5 / 6) / (7 / 3))
    assert np.isnan(fnr(np.zeros(4, bool), p[:4])) and np.isnan(roc_auc(np.zeros(3, bool), np.ones(3)))
    assert roc_auc(np.array([0, 1], bool), np.array([0.5, 0.5])) == 0.5      # a tie counts half
    assert f_beta(np.zeros(3, bool), np.zeros(3, bool)) == 0.0


def test_tiou_and_the_activitynet_ap_by_hand():
    assert tiou((0, 10), (5, 15)) == pytest.approx(5 / 15)
    assert tiou((0, 1), (2, 3)) == 0.0
    # precision [1, 0.5, 2/3], recall [1/2, 1/2, 1]: envelope [1, 2/3, 2/3] -> 1*0.5 + (2/3)*0.5
    assert interpolated_ap(np.array([1, 0.5, 2 / 3]), np.array([0.5, 0.5, 1.0])) == pytest.approx(0.5 + 1 / 3)


def test_segment_ap_matches_each_truth_once_best_score_first():
    truth = {"a": [(0.0, 10.0)], "b": [(5.0, 9.0)]}
    dets = [Detection("a", 0, 9, "x", 0.9),      # tIoU 0.9 -> TP
            Detection("a", 1, 10, "x", 0.8),     # same truth again -> FP
            Detection("b", 5, 8, "x", 0.7),      # tIoU 0.75 -> TP
            Detection("b", 20, 25, "x", 0.95)]   # nothing there -> FP (ranked first)
    # ranked: FP, TP, FP, TP -> precision [0, 1/2, 1/3, 1/2], recall [0, 1/2, 1/2, 1]
    # envelope: [1/2, 1/2, 1/2, 1/2] -> AP = 0.5*0.5 + 0.5*0.5
    assert segment_ap(truth, dets, 0.5) == pytest.approx(0.5)
    assert segment_ap(truth, dets, 0.8) == pytest.approx(interpolated_ap(np.array([0, 0.5, 1 / 3, 1 / 3]),
                                                                          np.array([0, 0.5, 0.5, 0.5])))
    assert segment_ap(truth, [], 0.5) == 0.0 and np.isnan(segment_ap({"a": []}, dets, 0.5))


def test_mean_ap_averages_the_classes_that_have_truth():
    truth = {"a": [(0.0, 4.0, "fall"), (10.0, 14.0, "chase")]}
    dets = [Detection("a", 0, 4, "fall", 0.9), Detection("a", 10, 14, "fall", 0.8)]   # the chase called a fall
    m = mean_ap(truth, dets, (0.5,))
    assert m[0.5] == pytest.approx((1.0 + 0.0) / 2)


def test_tied_scores_are_ranked_as_activitynet_ranks_them():
    """ActivityNet sorts with argsort()[::-1]: among equal scores the later detection goes first.
    Here that puts the false positive first: precision [0, 1/2], recall [0, 1] -> AP 1/2 (the other
    order would give 1)."""
    truth = {"a": [(0.0, 4.0)]}
    dets = [Detection("a", 0, 4, "x", 0.7), Detection("a", 20, 24, "x", 0.7)]
    assert [d.start for d in rank(dets)] == [20, 0]
    assert segment_ap(truth, dets, 0.5) == pytest.approx(0.5)
    assert segment_ap(truth, dets[::-1], 0.5) == pytest.approx(1.0)       # the list order decides ties
    assert [d.score for d in rank([Detection("a", 0, 1, "x", s) for s in (0.2, 0.9, 0.5)])] == [0.9, 0.5, 0.2]


def test_alert_labels_without_truth_are_reported_and_categories_confused_are_counted():
    truth = {"a": [(0.0, 4.0, "fall"), (10.0, 14.0, "chase")], "b": [(0.0, 5.0, "scuffle")]}
    dets = [Detection("a", 0, 4, "fall", 0.9), Detection("a", 9, 11, "running", 0.8),
            Detection("a", 11, 14, "abandoned", 0.6), Detection("a", 30, 33, "loitering", 0.5),
            Detection("b", 40, 41, "fall", 0.4)]
    assert labels_without_truth(truth, dets) == {"abandoned": 1, "loitering": 1, "running": 1}
    assert category_confusion(truth, dets) == {
        "chase": {"abandoned": 1},              # 3 s of overlap beat running's 1 s
        "fall": {"fall": 1},
        "normal": {"fall": 1, "loitering": 1},  # alerts that overlap no event
        "scuffle": {"missed": 1}}


def test_bootstrap_intervals_resample_whole_groups():
    groups = [[1.0] * 10, [0.0] * 10, [1.0] * 10, [0.0] * 10]
    ci = bootstrap_intervals(groups, lambda gs: {"mean": float(np.mean(np.concatenate(gs))),
                                                 "nan": float("nan")}, n=400)
    lo, hi = ci["mean"]
    assert 0.0 <= lo < 0.5 < hi <= 1.0 and "nan" not in ci
    assert bootstrap_intervals([[0.3]] * 5, lambda gs: {"m": float(np.mean(gs))}, n=50)["m"] == pytest.approx((0.3, 0.3))


def test_the_best_f2_threshold_is_the_one_scikit_learn_scores_best_and_the_detector_calls_it_half():
    from stream.llm.detector import calibrated
    rng = np.random.default_rng(4)
    labels = rng.random(400) < 0.15
    scores = np.where(labels, rng.uniform(0.02, 0.2, 400), rng.uniform(0.0, 0.12, 400))    # low but ranked
    t = best_f2_threshold(labels, scores)
    best = max(fbeta_score(labels, scores >= c, beta=2) for c in np.unique(scores))
    assert fbeta_score(labels, scores >= t, beta=2) == pytest.approx(best) and t < 0.2
    assert best_f2_threshold(np.zeros(5, bool), np.ones(5)) == 0.5          # one class: nothing to calibrate
    mapped = [calibrated(p, t) for p in np.sort(scores)]
    assert calibrated(t, t) == pytest.approx(0.5) and calibrated(0.0, t) == 0.0 and calibrated(1.0, t) == pytest.approx(1.0)
    assert calibrated(0.2, 0.02) == pytest.approx(0.2 * 0.98 / (0.2 * 0.98 + 0.02 * 0.8))     # odds against the threshold's
    assert np.all(np.diff(mapped) >= 0)                                       # the order (AUC, AP) is kept
    assert calibrated(0.3, 0.5) == pytest.approx(0.3)                                        # an uncalibrated model is unchanged
