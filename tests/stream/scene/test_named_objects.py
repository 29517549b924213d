"""Objects with names: the bundled COCO detector (NanoDet, converted from TensorFlow.js) finds
vtest.avi's parked vehicles with their VG150 classes; the relation graph says who carries a bag,
who rides a bike, what stands on the street and who is near it; left objects it names are not
repeated; the scene stage runs it batched and at most as often as configured."""
from __future__ import annotations

import numpy as np
import pytest

from engines import create_engine
from stream.scene.graph import SceneBuilder
from stream.scene.named_objects import COCO80, VG150_OF, NamedObjectDetector
from stream.scene.people import PersonDetector
from stream.scene.pose import PoseEstimator, TopDown
from stream.scene.relations import NAMED_BASE, OBJ, OBJECTS, PREDICATES, GeometricRelations
from stream.types import Frame, Window
from tests.stream.scene.test_batching import Counting


@pytest.fixture(scope="module")
def nanodet(models_dir):
    return create_engine("onnxruntime", models_dir / "nanodet.onnx", threads=2)


def test_the_detector_names_the_vehicles_parked_in_vtest(nanodet, vtest_frames):
    found = NamedObjectDetector(nanodet, score_threshold=0.35).detect(vtest_frames[:4])
    assert len(found) == 4
    for objects in found:
        assert objects.shape[1] == 6 and np.all(objects[:, 4] >= 0.35)
        names = {OBJECTS[int(c)] for c in objects[:, 5]}
        assert names & {"car", "truck"}                           # the van and the car by the building
        vehicles = objects[np.isin(objects[:, 5], [OBJ["car"], OBJ["truck"]])]
        assert np.all(vehicles[:, 1] < 120) and np.all(vehicles[:, 0] > 600)   # top right of the frame
        assert np.all(vehicles[:, 2] <= 768) and np.all(vehicles[:, 3] <= 576)
        assert OBJ["person"] not in objects[:, 5]                 # people are the person detector's
    only_cars = NamedObjectDetector(nanodet, score_threshold=0.35, classes={"car": "car"}).detect(vtest_frames[:1])[0]
    assert set(only_cars[:, 5]) <= {OBJ["car"]}


def test_every_mapped_class_is_a_coco_class_with_a_vg150_name():
    assert set(VG150_OF) <= set(COCO80) and set(VG150_OF.values()) <= set(OBJECTS)
    with pytest.raises(ValueError, match="not COCO-80 classes: crate"):
        NamedObjectDetector(type("E", (), {"input_names": ["image"]})(), classes={"crate": "box"})


def triples(named, objects=None):
    people = np.array([[100, 100, 140, 200], [400, 100, 440, 200]], np.float32)   # two people 100 px tall
    out = GeometricRelations().frame(np.array([1, 2]), people, np.zeros((2, 2), np.float32),
                                     objects=objects, named=np.array(named, np.float32).reshape(-1, 6))
    return {(t.subject, OBJECTS[t.subject_class], PREDICATES[t.predicate], t.object, OBJECTS[t.object_class])
            for t in out}


def test_relations_say_who_carries_rides_and_stands_near_named_objects():
    got = triples([[135, 150, 155, 175, 0.8, OBJ["bag"]],            # at person 1's hand
                   [300, 150, 330, 200, 0.7, OBJ["bag"]],            # on the ground, 0.7 heights from person 2
                   [395, 170, 445, 215, 0.9, OBJ["bike"]],           # under person 2's feet
                   [600, 100, 760, 200, 0.6, OBJ["car"]]])
    assert (1, "person", "carrying", NAMED_BASE, "bag") in got
    assert (NAMED_BASE + 1, "bag", "on", -1, "street") in got
    assert (2, "person", "near", NAMED_BASE + 1, "bag") in got
    assert (2, "person", "riding", NAMED_BASE + 2, "bike") in got
    assert (NAMED_BASE + 3, "car", "on", -1, "street") in got
    assert not any(s == 1 and o == NAMED_BASE + 3 for s, _, _, o, _ in got)   # person 1 is far from the car
    assert (NAMED_BASE, "bag", "on", -1, "street") not in got              # a carried bag is not on the street


def test_a_left_object_the_detector_names_is_not_repeated_and_the_rest_stay():
    left = np.array([[302, 152, 328, 199, 5.0, 3], [900, 300, 920, 320, 5.0, 4]], np.float32)
    got = triples([[300, 150, 330, 200, 0.7, OBJ["bag"]]], objects=left)
    assert (1_000_003, "bag", "on", -1, "street") not in got              # the named bag covers it
    assert (1_000_004, "bag", "on", -1, "street") in got                  # a thing no class covers: the fallback
    assert (NAMED_BASE, "bag", "on", -1, "street") in got


def test_the_scene_stage_runs_the_detector_batched_and_at_most_as_often_as_asked(models_dir, nanodet, vtest_frames):
    people = TopDown(PersonDetector(create_engine("onnxruntime", models_dir / "ssdlite_person.onnx", threads=2)),
                     PoseEstimator(create_engine("onnxruntime", models_dir / "pose_landmark_full.onnx", threads=2)))
    counting = Counting(nanodet)
    builder = SceneBuilder(people, relations=GeometricRelations(),
                           named=NamedObjectDetector(counting, score_threshold=0.35), named_every_s=1.0)
    wins = []
    for cam in ("a", "b"):
        frames = [Frame(cam, i, i * 0.5, 1000.0 + i * 0.5, im) for i, im in enumerate(vtest_frames[:4])]
        wins.append(Window(cam, 0, 0.0, 2.0, tuple(frames)))
    graphs = builder.build_many(wins)
    assert counting.calls == [4]                  # both cameras in one call; frames at 0 s and 1 s of each
    for g in graphs:
        assert len(g.named) == 4 and all(len(n) for n in g.named)
        np.testing.assert_array_equal(g.named[0], g.named[1])          # 0.5 s reuses the result of 0 s
        on_street = [r for triples in g.relations for r in triples
                     if r.subject >= NAMED_BASE and PREDICATES[r.predicate] == "on"]
        assert {OBJECTS[r.subject_class] for r in on_street} & {"car", "truck"}


def test_the_coco_detector_can_be_the_person_detector(nanodet, models_dir, vtest_frames):
    """models.person_detector with class_index 0: NanoDet's person class finds at least the people
    the bundled SSDLite finds in vtest (and a multi-class model without a class index is refused)."""
    coco = PersonDetector(nanodet, size=416, class_index=0, score_threshold=0.5).detect(vtest_frames[:4])
    ssd = PersonDetector(create_engine("onnxruntime", models_dir / "ssdlite_person.onnx", threads=2),
                         score_threshold=0.5).detect(vtest_frames[:4])
    for a, b in zip(coco, ssd):
        assert len(a.boxes) >= len(b.boxes) >= 1
        heights = a.boxes[:, 3] - a.boxes[:, 1]
        assert np.all(heights > a.boxes[:, 2] - a.boxes[:, 0])          # people stand taller than wide
    with pytest.raises(ValueError, match="class_index; 0 for COCO"):
        PersonDetector(nanodet, size=416).detect(vtest_frames[:1])


def test_the_nanodet_config_builds_a_scene_stage_with_coco_people_and_named_objects(models_dir, vtest):
    from stream.config import load_config
    from stream.scene.graph import scene_from_config
    from tests.conftest import ROOT

    cfg = load_config(ROOT / "configs" / "nanodet.yaml")
    assert cfg.models.person_detector.class_index == 0 and cfg.objects.named.every_s == 1.0
    builder = scene_from_config(cfg)
    assert builder.people.detector.size == 416 and builder.people.detector.class_index == 0
    assert builder.named is not None and builder.named_every_s == 1.0
