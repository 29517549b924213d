"""Metrics against scikit-learn (an independent implementation) and cases computed by hand."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, confusion_matrix, fbeta_score, roc_auc_score

from training.metrics import (Detection, average_precision, confusion, f_beta, fnr, interpolated_ap, mean_ap, roc_auc,
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
