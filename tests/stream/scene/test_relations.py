"""Relations in the VG150 label space: the geometric extractor on scripted scenes, the (K, 353)
rows, and the RelTR adapter on outputs built from known triples."""
import numpy as np
import pytest

from stream.scene.relations import (OBJ, OBJECTS, PRED, PREDICATES, GeometricRelations, decode_reltr,
                                    relation_rows)


def standing_pose(box, lying=False):
    x0, y0, x1, y1 = box
    kp = np.zeros((17, 3), np.float32)
    cx, h = (x0 + x1) / 2, y1 - y0
    if lying:                                   # torso horizontal
        kp[[5, 6]] = [[x0, y1 - 5, 0.9], [x0, y1 - 5, 0.9]]
        kp[[11, 12]] = [[x1, y1 - 5, 0.9], [x1, y1 - 5, 0.9]]
    else:
        kp[[5, 6]] = [[cx - 5, y0 + 0.2 * h, 0.9], [cx + 5, y0 + 0.2 * h, 0.9]]
        kp[[11, 12]] = [[cx - 5, y0 + 0.55 * h, 0.9], [cx + 5, y0 + 0.55 * h, 0.9]]
    return kp


def triples_by_name(triples):
    name = {-1: "street"}
    return {(t.subject, PREDICATES[t.predicate], name.get(t.object, t.object)) for t in triples}


def test_geometric_relations_of_a_scripted_scene():
    boxes = np.array([[100, 100, 140, 200],     # 1: walks right
                      [180, 125, 220, 225],     # 2: walks right ahead of 1 (1 follows 2), nearer the camera
                      [600, 300, 700, 340]],    # 3: lies on the floor, far from the others
                     np.float32)
    velocity = np.array([[80, 0], [80, 0], [0, 0]], np.float32)      # px/s; people are ~100 px tall
    kps = np.stack([standing_pose(boxes[0]), standing_pose(boxes[1]), standing_pose(boxes[2], lying=True)])
    got = triples_by_name(GeometricRelations().frame(np.array([1, 2, 3]), boxes, velocity, kps))
    assert (1, "walking on", "street") in got and (2, "walking on", "street") in got
    assert (3, "laying on", "street") in got and (3, "standing on", "street") not in got
    assert (1, "near", 2) in got and (2, "near", 1) in got and not any(3 in (s, o) for s, p, o in got if p == "near")
    assert (2, "in front of", 1) in got and (1, "in front of", 2) not in got   # 2's feet are lower: nearer
    assert (1, "behind", 2) in got and (2, "behind", 1) not in got              # 1 follows 2
    still = triples_by_name(GeometricRelations().frame(np.array([1]), boxes[:1], np.zeros((1, 2)), kps[:1]))
    assert still == {(1, "standing on", "street")}


def test_relation_rows_are_three_probability_distributions_in_hawkeyes_layout():
    triples = GeometricRelations().frame(np.array([1, 2]), np.array([[0, 0, 40, 100], [50, 0, 90, 100]], np.float32),
                                         np.zeros((2, 2)), None)
    rows = relation_rows(triples)
    assert rows.shape == (len(triples), 353)
    for r, t in zip(rows, triples):
        pred, sub, obj = r[:51], r[51:202], r[202:]
        assert np.allclose([pred.sum(), sub.sum(), obj.sum()], 1.0)
        assert pred[t.predicate] == pytest.approx(t.score) and sub[OBJ["person"]] == pytest.approx(t.score)


def test_reltr_adapter_keeps_confident_queries_and_returns_boxes_in_pixels():
    Q = 100
    rng = np.random.default_rng(0)
    rel, sub, obj = rng.normal(0, 1, (Q, 51)), rng.normal(0, 1, (Q, 151)), rng.normal(0, 1, (Q, 151))
    boxes = rng.uniform(0.2, 0.4, (Q, 4))
    # query 7: "man holding umbrella", query 42: "woman sitting on bench"; everything else is noise
    for q, (s, p, o) in {7: ("man", "holding", "umbrella"), 42: ("woman", "sitting on", "bench")}.items():
        rel[q, PRED[p]] = sub[q, OBJ[s]] = obj[q, OBJ[o]] = 12.0
    boxes[7] = [0.5, 0.5, 0.2, 0.4]
    triples, rows, sub_px, obj_px = decode_reltr(rel, sub, obj, boxes, boxes, image_size=(800, 600))
    got = {(OBJECTS[t.subject_class], PREDICATES[t.predicate], OBJECTS[t.object_class]) for t in triples}
    assert got == {("man", "holding", "umbrella"), ("woman", "sitting on", "bench")}
    assert rows.shape == (2, 353) and np.allclose(rows[:, :51].sum(1), 1.0)
    k = [t.subject for t in triples].index(7)
    assert np.allclose(sub_px[k], [320, 180, 480, 420])
    with pytest.raises(ValueError, match="RelTR outputs must be"):
        decode_reltr(rel[:, :50], sub, obj, boxes, boxes, image_size=(800, 600))
