"""Object relations in the Visual Genome 150 label space (VG150: 150 objects, 50 predicates), as
Hawkeye's relation graph uses them.

- `GeometricRelations`: the default extractor. It is **geometric**: it reads people's boxes,
  tracks and poses and emits subject–predicate–object triples with scores from rules, not from a
  learned model. The predicates are `near`; `in front of` (feet lower in the image are nearer the
  camera; the reverse pair is implied, so it is not repeated as `behind`); `behind` for a person
  following another (same heading, one behind the other: VG150 has no `following`, and this is
  its nearest label); and `walking on` / `standing on` / `laying on` a ground object `street`,
  which stands for the floor. Named objects (stream/scene/named_objects.py: bags, bicycles,
  vehicles... by their VG150 class) are `carried` by the person whose hands reach them, `ridden`
  (a bike under someone's feet), or `on` the street, and a person within `near` body heights of
  one is `near` it. Left objects (stream/scene/objects.py), the fallback for things no class
  covers, are `bag` `on` the street, scored by how long they have been there, with the people
  `near` them: a bag nobody is near is an unattended one.
- `decode_reltr`: an adapter for a RelTR ONNX export (51 predicate, 151 subject and 151 object
  class logits and boxes per query), for sites that run RelTR itself.

Either way the model gets `(K, 353)` rows: 51 predicate + 151 subject + 151 object probabilities,
Hawkeye's rel_feat layout (`relation_rows`).
"""
from __future__ import annotations

import numpy as np

from stream.scene.kinematics import feet, heights_away, ramp, torso_angles
from stream.scene.objects import overlap_smaller
from stream.types import Triple

OBJECTS = ("__background__", "airplane", "animal", "arm", "bag", "banana", "basket", "beach", "bear", "bed", "bench",
           "bike", "bird", "board", "boat", "book", "boot", "bottle", "bowl", "box", "boy", "branch", "building",
           "bus", "cabinet", "cap", "car", "cat", "chair", "child", "clock", "coat", "counter", "cow", "cup",
           "curtain", "desk", "dog", "door", "drawer", "ear", "elephant", "engine", "eye", "face", "fence", "finger",
           "flag", "flower", "food", "fork", "fruit", "giraffe", "girl", "glass", "glove", "guy", "hair", "hand",
           "handle", "hat", "head", "helmet", "hill", "horse", "house", "jacket", "jean", "kid", "kite", "lady",
           "lamp", "laptop", "leaf", "leg", "letter", "light", "logo", "man", "men", "motorcycle", "mountain",
           "mouth", "neck", "nose", "number", "orange", "pant", "paper", "paw", "people", "person", "phone", "pillow",
           "pizza", "plane", "plant", "plate", "player", "pole", "post", "pot", "racket", "railing", "rock", "roof",
           "room", "screen", "seat", "sheep", "shelf", "shirt", "shoe", "short", "sidewalk", "sign", "sink",
           "skateboard", "ski", "skier", "sneaker", "snow", "sock", "stand", "street", "surfboard", "table", "tail",
           "tie", "tile", "tire", "toilet", "towel", "tower", "track", "train", "tree", "truck", "trunk", "umbrella",
           "vase", "vegetable", "vehicle", "wave", "wheel", "window", "windshield", "wing", "wire", "woman", "zebra")
PREDICATES = ("__no_relation__", "above", "across", "against", "along", "and", "at", "attached to", "behind",
              "belonging to", "between", "carrying", "covered in", "covering", "eating", "flying in", "for", "from",
              "growing on", "hanging from", "has", "holding", "in", "in front of", "laying on", "looking at",
              "lying on", "made of", "mounted on", "near", "of", "on", "on back of", "over", "painted on",
              "parked on", "part of", "playing", "riding", "says", "sitting on", "standing on", "to", "under",
              "using", "walking in", "walking on", "watching", "wearing", "wears", "with")
assert len(OBJECTS) == 151 and len(PREDICATES) == 51
OBJ = {name: i for i, name in enumerate(OBJECTS)}
PRED = {name: i for i, name in enumerate(PREDICATES)}
ROW = len(PREDICATES) + 2 * len(OBJECTS)     # 353
GROUND = -1                                  # the object id of the ground ("street")
OBJECT_BASE = 1_000_000                      # a left object's entity id: OBJECT_BASE + its id
NAMED_BASE = 2_000_000                       # a named object's entity id: NAMED_BASE + its place in the frame
CARRIED = frozenset({OBJ["bag"], OBJ["umbrella"], OBJ["laptop"]})
RIDDEN = frozenset({OBJ["bike"], OBJ["motorcycle"], OBJ["skateboard"]})


def box_gap(feet_xy: np.ndarray, heights: np.ndarray, box) -> np.ndarray:
    """(P,) distance from each person's feet to the nearest point of `box` (x0, y0, x1, y1), in
    that person's body heights; 0 inside it."""
    dx = np.maximum(np.maximum(box[0] - feet_xy[:, 0], feet_xy[:, 0] - box[2]), 0.0)
    dy = np.maximum(np.maximum(box[1] - feet_xy[:, 1], feet_xy[:, 1] - box[3]), 0.0)
    return np.hypot(dx, dy) / heights


class GeometricRelations:
    """Triples between the people of one frame (and each person and the ground), from boxes, the
    tracks' speeds and the poses. Distances are in body heights, so they hold at any scale."""

    def __init__(self, near: float = 1.0, walk_speed: float = 0.3, lay_angle_deg: float = 60.0, softness: float = 0.15,
                 left_s: float = 4.0):
        self.near, self.walk_speed, self.lay_angle, self.softness = near, walk_speed, lay_angle_deg, softness
        self.left_s = left_s

    def _ramp(self, value, threshold) -> float:
        return float(ramp(value, threshold, self.softness))

    def frame(self, ids: np.ndarray, boxes: np.ndarray, velocity: np.ndarray, keypoints: np.ndarray | None = None,
              person_class: str = "person", objects: np.ndarray | None = None,
              named: np.ndarray | None = None) -> list[Triple]:
        """ids (P,), boxes (P, 4), velocity (P, 2) of the box's bottom centre in pixels per second,
        keypoints (P, 17, 3) or None, left objects (M, 6) (x0, y0, x1, y1, seconds there, id) or None,
        named objects (K, 6) (x0, y0, x1, y1, score, VG150 class) or None."""
        person = OBJ[person_class]
        out: list[Triple] = []
        heights = np.maximum(boxes[:, 3] - boxes[:, 1], 1.0)
        foot = feet(boxes)
        speed = np.linalg.norm(velocity, axis=1) / heights
        angles = torso_angles(keypoints, 0.3) if keypoints is not None else np.full(len(ids), np.nan)
        for i in range(len(ids)):
            lying = self._ramp(angles[i], self.lay_angle) if not np.isnan(angles[i]) else 0.0
            moving = self._ramp(speed[i], self.walk_speed)
            for pred, score in (("laying on", lying), ("walking on", (1 - lying) * moving),
                                ("standing on", (1 - lying) * (1 - moving))):
                if score >= 0.5:
                    out.append(Triple(int(ids[i]), person, PRED[pred], GROUND, OBJ["street"], score))
            for j in range(len(ids)):
                if i == j:
                    continue
                scale = (heights[i] + heights[j]) / 2
                gap = np.linalg.norm(foot[i] - foot[j]) / scale
                near = 1.0 - self._ramp(gap, self.near)
                if near >= 0.5:
                    out.append(Triple(int(ids[i]), person, PRED["near"], int(ids[j]), person, near))
                    depth = (foot[i, 1] - foot[j, 1]) / scale          # > 0: i stands nearer the camera
                    if depth > 0.1:
                        out.append(Triple(int(ids[i]), person, PRED["in front of"], int(ids[j]), person,
                                          near * min(1.0, depth / 0.3)))
                follow = self._following(foot[i], foot[j], velocity[i], velocity[j], scale)
                if follow >= 0.5:                                   # i follows j
                    out.append(Triple(int(ids[i]), person, PRED["behind"], int(ids[j]), person, follow))
        named = np.zeros((0, 6), np.float32) if named is None else named
        for k, (x0, y0, x1, y1, score, cls) in enumerate(named):
            out += self._named(NAMED_BASE + k, int(cls), float(score), (x0, y0, x1, y1), ids, boxes, foot, heights,
                               person)
        for x0, y0, x1, y1, there, oid in (() if objects is None else objects):
            if len(named) and overlap_smaller(np.array([[x0, y0, x1, y1]], np.float32), named[:, :4]).max() > 0.5:
                continue                                      # the named detector knows what it is
            entity = OBJECT_BASE + int(oid)
            out.append(Triple(entity, OBJ["bag"], PRED["on"], GROUND, OBJ["street"], self._ramp(there, self.left_s)))
            for i, gap in enumerate(heights_away(boxes, ((x0 + x1) / 2, y1))):
                near = 1.0 - self._ramp(gap, self.near)
                if near >= 0.5:
                    out.append(Triple(int(ids[i]), person, PRED["near"], entity, OBJ["bag"], near))
        return out

    def _named(self, entity: int, cls: int, score: float, box, ids: np.ndarray, boxes: np.ndarray, foot: np.ndarray,
               heights: np.ndarray, person: int) -> list[Triple]:
        """A named object's triples: carried by (or ridden by) the person it belongs with, else on
        the street; and the people near it."""
        out: list[Triple] = []
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        holder = None
        if cls in CARRIED or cls in RIDDEN:
            centres = np.column_stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2])
            for i in np.argsort(np.hypot(centres[:, 0] - cx, centres[:, 1] - cy) / heights):   # nearest first
                x0, y0, x1, y1 = boxes[i]
                reach = 0.25 * heights[i]
                if cls in CARRIED:   # in the hands' reach: beside the body, between shoulders and knees
                    held = x0 - reach <= cx <= x1 + reach and y0 + 0.2 * heights[i] <= cy <= y1 - 0.1 * heights[i]
                else:                # under the feet: their feet within its height, their middle above it
                    held = box[0] <= (x0 + x1) / 2 <= box[2] and box[1] <= y1 <= box[3] + 0.1 * heights[i]
                if held and (box[3] - box[1]) < heights[i]:
                    holder = i
                    break
        if holder is not None:
            pred = "carrying" if cls in CARRIED else "riding"
            out.append(Triple(int(ids[holder]), person, PRED[pred], entity, cls, score))
        else:
            out.append(Triple(entity, cls, PRED["on"], GROUND, OBJ["street"], score))
        for i, gap in enumerate(box_gap(foot, heights, box)):
            near = 1.0 - self._ramp(gap, self.near)
            if near >= 0.5 and i != holder:
                out.append(Triple(int(ids[i]), person, PRED["near"], entity, cls, near * score))
        return out

    def _following(self, fi, fj, vi, vj, scale) -> float:
        """i follows j: both move the same way at walking speed, and j is ahead of i along it, within
        three body heights."""
        si, sj = np.linalg.norm(vi), np.linalg.norm(vj)
        if si / scale < self.walk_speed or sj / scale < self.walk_speed:
            return 0.0
        same_way = float(vi @ vj / (si * sj))
        heading = vi / si
        ahead = float((fj - fi) @ heading) / scale
        if same_way < 0.8 or not 0.2 < ahead < 3.0:
            return 0.0
        return same_way * (1.0 - ahead / 6.0)


def relation_rows(triples: list[Triple]) -> np.ndarray:
    """(K, 353) = predicate (51) + subject class (151) + object class (151) probabilities per triple:
    the triple's score on its label, the rest on the background label."""
    rows = np.zeros((len(triples), ROW), np.float32)
    for k, t in enumerate(triples):
        for offset, label in ((0, t.predicate), (len(PREDICATES), t.subject_class),
                              (len(PREDICATES) + len(OBJECTS), t.object_class)):
            rows[k, offset + label] = t.score
            rows[k, offset] += 1.0 - t.score
    return rows


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def decode_reltr(rel_logits: np.ndarray, sub_logits: np.ndarray, obj_logits: np.ndarray, sub_boxes: np.ndarray,
                 obj_boxes: np.ndarray, *, image_size: tuple[int, int], threshold: float = 0.3,
                 top_k: int = 20) -> tuple[list[Triple], np.ndarray, np.ndarray, np.ndarray]:
    """One image of a RelTR export: logits (Q, 51), (Q, 151), (Q, 151) and boxes (Q, 4) as normalised
    cx, cy, w, h. Keeps queries whose predicate, subject and object are all confident (the product of
    their best non-background probabilities >= threshold), best `top_k`. Returns the triples, their
    (K, 353) probability rows, and subject and object boxes in pixels (x0, y0, x1, y1)."""
    shapes = [np.shape(a) for a in (rel_logits, sub_logits, obj_logits, sub_boxes, obj_boxes)]
    q = shapes[0][0] if shapes[0] else 0
    if shapes != [(q, len(PREDICATES)), (q, len(OBJECTS)), (q, len(OBJECTS)), (q, 4), (q, 4)]:
        raise ValueError(f"RelTR outputs must be (Q, 51), (Q, 151), (Q, 151), (Q, 4), (Q, 4); got {shapes}")
    rel, sub, obj = _softmax(rel_logits), _softmax(sub_logits), _softmax(obj_logits)
    best = [p[:, 1:].argmax(1) + 1 for p in (rel, sub, obj)]
    conf = np.prod([p[np.arange(q), b] for p, b in zip((rel, sub, obj), best)], axis=0)
    keep = [i for i in np.argsort(-conf)[:top_k] if conf[i] >= threshold]
    triples = [Triple(int(i), int(best[1][i]), int(best[0][i]), int(i), int(best[2][i]), float(conf[i])) for i in keep]
    rows = np.concatenate([rel[keep], sub[keep], obj[keep]], axis=1).astype(np.float32).reshape(-1, ROW)
    w, h = image_size

    def pixels(b):
        b = np.asarray(b, np.float32)[keep].reshape(-1, 4)
        return np.stack([(b[:, 0] - b[:, 2] / 2) * w, (b[:, 1] - b[:, 3] / 2) * h,
                         (b[:, 0] + b[:, 2] / 2) * w, (b[:, 1] + b[:, 3] / 2) * h], axis=1)
    return triples, rows, pixels(sub_boxes), pixels(obj_boxes)
