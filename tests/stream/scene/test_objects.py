"""Left objects and dwell on real footage: a bag set down in vtest.avi among its real walkers, and
people who stand still or walk on."""
import av
import numpy as np
import pytest

from engines import create_engine
from stream.scene.objects import LeftObjects
from stream.scene.people import PersonDetector
from stream.scene.relations import OBJECT_BASE, PRED, GeometricRelations
from stream.scene.tracking import PersonTracker
from training.synth import draw_bag

BAG = {"x": 520.0, "y": 330.0, "h": 100.0, "colour": (40, 25, 90), "shape": (0.36, 0.2)}   # on the road, 36×20 px
BAG_BOX = (520 - 18, 330 - 20, 520 + 18, 330)


@pytest.fixture(scope="module")
def lawn(vtest, models_dir):
    """24 s of vtest at 2 fps with a bag set down at 8 s and picked up at 18 s, and the real
    person detector's boxes for each frame -> [(ts, frame, boxes)]."""
    detector = PersonDetector(create_engine("onnxruntime", models_dir / "ssdlite_person.onnx", threads=2))
    frames = []
    with av.open(str(vtest)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i % 5:
                continue
            ts = i / 10.0
            if ts >= 24.0:
                break
            img = f.to_ndarray(format="bgr24")
            if 8.0 <= ts < 18.0:
                draw_bag(img, BAG)
            frames.append((ts, img))
    found = detector.detect([img for _, img in frames])
    return [(ts, img, d.boxes) for (ts, img), d in zip(frames, found)]


def run(frames, finder):
    return [(ts, finder.update(img, ts, boxes)) for ts, img, boxes in frames]


def overlaps(box, ref=BAG_BOX) -> bool:
    x0, y0, x1, y1 = box[:4]
    return x0 < ref[2] and ref[0] < x1 and y0 < ref[3] and ref[1] < y1


def test_a_bag_set_down_among_real_walkers_is_found_keeps_its_id_and_goes_when_taken(lawn):
    out = run(lawn, LeftObjects())
    on_bag = {ts: [o for o in objs if overlaps(o)] for ts, objs in out}
    elsewhere = [(ts, o) for ts, objs in out for o in objs if not overlaps(o)]
    assert not elsewhere, f"objects where nothing was left: {elsewhere}"       # walkers and their ghosts are not objects
    assert not any(on_bag[ts] for ts in on_bag if ts < 8.0)
    found = [ts for ts in on_bag if on_bag[ts]]
    assert found and 9.5 <= found[0] <= 11.0                                   # still for 2 s, then reported
    during = [on_bag[ts] for ts in on_bag if found[0] <= ts < 18.0]
    assert all(len(o) == 1 for o in during)                                    # every frame while it lies there
    assert len({int(o[0][5]) for o in during}) == 1                            # one id throughout
    there = [float(o[0][4]) for o in during]
    assert there == sorted(there) and there[-1] >= 8.0                         # its time there grows
    x0, y0, x1, y1 = during[-1][0][:4]
    assert abs((x0 + x1) / 2 - BAG["x"]) < 10 and abs(y1 - BAG["y"]) < 10      # where it was put, in pixels
    assert not any(on_bag[ts] for ts in on_bag if ts >= 18.0 + 3.0 + 0.5)      # gone once taken (max_unseen_s)


def test_the_bag_is_unattended_only_with_nobody_near_it():
    rel = GeometricRelations()
    bag = np.array([[300, 440, 360, 470, 8.0, 3]], np.float32)
    near = np.array([[360, 320, 400, 470]], np.float32)          # feet 50 px from the bag, 150 px tall
    far = np.array([[700, 320, 740, 470]], np.float32)

    def triples(boxes):
        return rel.frame(np.array([4]), boxes, np.zeros((1, 2)), objects=bag)
    on = [t for t in triples(far) if t.subject == OBJECT_BASE + 3]
    assert len(on) == 1 and on[0].predicate == PRED["on"] and on[0].score > 0.9
    assert not [t for t in triples(far) if t.object == OBJECT_BASE + 3]
    assert [(t.subject, t.predicate) for t in triples(near) if t.object == OBJECT_BASE + 3] == [(4, PRED["near"])]


def test_dwell_grows_while_someone_stands_there_and_is_zero_for_walkers():
    tr = PersonTracker()
    stand, walk = [], []
    for k in range(40):                                   # 20 s at 2 fps
        ts = k * 0.5
        x = 200 + 4 * np.sin(k) if ts < 10 else 200 + (ts - 10) * 80    # stands (swaying) 10 s, then walks off
        boxes = [[x, 100, x + 40, 200], [600 - 60 * ts, 300, 640 - 60 * ts, 400]]  # and a walker throughout
        if k in (6, 7, 13):                               # the detector misses the one standing now and then
            boxes = boxes[1:]
        ids = tr.update(np.array(boxes, np.float32), ts)
        d = tr.dwell()
        stand.append(float(d[0]) if len(boxes) == 2 else None)
        walk.append(float(d[-1]))
    assert stand[0] == 0.0 and stand[19] == pytest.approx(9.5)    # stood from 0 to 9.5 s, missed frames and all
    assert max(stand[22:]) <= 0.5                                  # walking on: 0.8 body heights a second,
    assert max(walk) <= 0.5                                        # each step of 0.5 s inside the radius at most
    assert len(tr.dwell()) == len(ids)
