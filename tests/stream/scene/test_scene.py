"""People, pose and tracking on real vtest.avi frames."""
import cv2
import numpy as np
import pytest

from engines import create_engine
from stream.ingest.windows import WindowAssembler
from stream.scene.graph import SceneBuilder
from stream.scene.motion import MotionExtractor
from stream.scene.relations import PREDICATES, GeometricRelations
from stream.scene.people import PersonDetector
from stream.scene.pose import PoseEstimator, TopDown
from stream.scene.tracking import PersonTracker, iou_matrix


class CountingMotion(MotionExtractor):
    pairs = greys = 0

    def pair_grey(self, ga, gb, dt, frame_size):
        self.pairs += 1
        return super().pair_grey(ga, gb, dt, frame_size)

    def grey(self, image):
        self.greys += 1
        return super().grey(image)


@pytest.fixture(scope="module")
def detector(models_dir):
    return PersonDetector(create_engine("onnxruntime", models_dir / "ssdlite_person.onnx", threads=2))


@pytest.fixture(scope="module")
def pose(models_dir):
    return PoseEstimator(create_engine("onnxruntime", models_dir / "pose_landmark_full.onnx", threads=2))


def test_detector_finds_the_walkers_in_vtest(detector, vtest_frames):
    dets = detector.detect(vtest_frames)
    counts = [len(d.scores) for d in dets]
    assert min(counts) >= 2 and np.mean(counts) >= 3, counts
    for d in dets:
        heights = d.boxes[:, 3] - d.boxes[:, 1]
        widths = d.boxes[:, 2] - d.boxes[:, 0]
        assert np.all((heights > 20) & (heights < 300))       # people, not the whole frame
        assert np.median(heights / widths) > 1.5              # upright


def test_tiles_cover_the_image_and_overlap():
    from stream.scene.people import tile_boxes
    boxes = tile_boxes(720, 576, 2)
    assert boxes[0] == (0, 0, 720, 576) and len(boxes) == 5
    (a, b, c, d) = boxes[1:]
    assert a[:2] == (0, 0) and d[2:] == (720, 576)
    assert a[2] > b[0] and a[3] > c[1]                    # neighbours overlap
    assert tile_boxes(720, 576, 1) == [(0, 0, 720, 576)]


def test_a_tiled_pass_finds_the_small_people_a_whole_pass_misses_and_no_one_twice(detector, vtest_frames, models_dir):
    tiled = PersonDetector(detector.engine, tiles=2)
    small = [cv2.resize(f, None, fx=0.5, fy=0.5) for f in vtest_frames]    # people half as tall
    whole, more = detector.detect(small), tiled.detect(small)
    assert sum(len(d.scores) for d in more) > sum(len(d.scores) for d in whole)
    for d in more:
        if len(d.boxes) > 1:
            m = iou_matrix(d.boxes, d.boxes)
            np.fill_diagonal(m, 0.0)
            assert m.max() < 0.6                          # one box a person after the merge


def test_batched_detection_equals_one_by_one(detector, vtest_frames):
    batched = detector.detect(vtest_frames[:4])
    for frame, b in zip(vtest_frames[:4], batched):
        single = detector.detect([frame])[0]
        np.testing.assert_allclose(b.boxes, single.boxes, atol=1e-2)


def test_poses_are_anatomically_plausible_on_real_people(detector, pose, vtest_frames):
    dets = detector.detect(vtest_frames)
    poses = pose.estimate(vtest_frames, [d.boxes for d in dets])
    checked = good = 0
    for d, kps in zip(dets, poses):
        for box, kp in zip(d.boxes, kps):
            if box[3] - box[1] < 60 or kp[:, 2].mean() < 0.5:
                continue
            checked += 1
            shoulder_y, hip_y, ankle_y = kp[[5, 6], 1].mean(), kp[[11, 12], 1].mean(), kp[[15, 16], 1].mean()
            inside = ((kp[:, 0] > box[0] - 0.3 * (box[2] - box[0])) & (kp[:, 0] < box[2] + 0.3 * (box[2] - box[0]))).mean()
            good += shoulder_y < hip_y < ankle_y and inside > 0.8
    assert checked >= 8 and good / checked >= 0.8, (good, checked)


@pytest.mark.parametrize("box", [[100.0, 50.0, 140.0, 150.0], [700.0, 500.0, 760.0, 570.0], [5.0, 5.0, 25.0, 45.0]])
def test_crop_and_its_inverse_map_points_exactly(pose, box):
    box = np.array(box, np.float32)
    image = np.zeros((576, 768, 3), np.uint8)
    x, y = int(box[0] + 0.3 * (box[2] - box[0])), int(box[1] + 0.7 * (box[3] - box[1]))
    image[y, x] = 255
    crop = pose.crop(image, box).astype(np.float32).sum(axis=2)   # the dot, spread by upscaling
    vs, us = np.mgrid[0:256, 0:256]
    centroid = np.array([(us * crop).sum(), (vs * crop).sum()]) / crop.sum() + 0.5   # pixel centres at i + 0.5
    back = pose.to_image(box, centroid)
    # coordinates are continuous: pixel (x, y) covers [x, x+1), its centre is x + 0.5
    assert np.allclose(back, [x + 0.5, y + 0.5], atol=0.05), back


def test_tracker_keeps_ids_for_walkers_and_separates_crossing_people():
    tr = PersonTracker(iou_threshold=0.3, max_age_s=1.0, max_jump=0.6)
    ids = []
    for k in range(10):   # two people walking towards each other, 0.5 s apart, 25 px per step
        a = [100 + 25 * k, 100, 140 + 25 * k, 200]
        b = [500 - 25 * k, 110, 540 - 25 * k, 210]
        ids.append(tr.update(np.array([a, b], np.float32), k * 0.5).tolist())
    assert all(i == ids[0] for i in ids) and ids[0][0] != ids[0][1]
    later = tr.update(np.array([[900, 100, 940, 200]], np.float32), 20.0)   # after max_age: a new person
    assert later[0] not in ids[0]


def test_tracker_follows_a_runner_at_two_frames_a_second():
    """A runner (3 body heights a second) moves 1.5 heights between frames sampled at 2 fps: past
    any overlap and past max_jump, but within max_speed; a walker passing near keeps their own id."""
    def run(max_speed):
        tr = PersonTracker(iou_threshold=0.3, max_age_s=1.0, max_jump=0.6, max_speed=max_speed)
        out = []
        for k in range(6):
            runner = [100 + 150 * k, 300, 140 + 150 * k, 400]             # 100 px tall, 150 px a frame
            walker = [900 - 35 * k, 120, 940 - 35 * k, 220]
            out.append(tr.update(np.array([runner, walker], np.float32), k * 0.5).tolist())
        return out
    ids = run(3.5)
    assert all(i == ids[0] for i in ids) and ids[0][0] != ids[0][1]
    assert len({i[0] for i in run(0.0)}) == 6                            # without it: a new person every frame


def test_scene_graph_tracks_people_through_a_window_of_real_frames(detector, pose, clip12):
    from stream.ingest.source import VideoSource
    asm = WindowAssembler("lobby", 4.0, 2.0, 2.0)
    motion = CountingMotion()
    builder = SceneBuilder(TopDown(detector, pose), motion=motion, relations=GeometricRelations())
    graphs = []
    for f in VideoSource("lobby", str(clip12), is_file=True, replay="fast").frames():
        for w in asm.push(f.seq, f.ts, f.wall, f.pixels):
            graphs.append(builder.build(w))
    graphs += [builder.build(w) for w in asm.finish()]
    assert [g.window_id for g in graphs] == list(range(6))
    g = graphs[1]
    assert len(g.timestamps) == 8 and g.frame_size == (768, 576)
    long_tracks = [t for t in g.tracks if t.present.sum() >= 6]
    assert len(long_tracks) >= 2                          # people followed through most of the window
    for t in g.tracks:
        assert t.keypoints.shape == (8, 17, 3) and t.boxes.shape == (8, 4)
        assert np.all(np.isnan(t.boxes[~t.present]))
    # ids are stable across overlapping windows: the shared frames carry the same ids
    shared = set(graphs[0].timestamps) & set(graphs[1].timestamps)
    ids_at = lambda gr, ts: {t.track_id for t in gr.tracks if t.present[list(gr.timestamps).index(ts)]}  # noqa: E731
    assert all(ids_at(graphs[0], ts) == ids_at(graphs[1], ts) for ts in shared)
    # motion: one flow per pair of consecutive sampled frames, shared by overlapping windows
    assert len(g.motion.energy) == 7 and g.motion.masks.shape[0] == 7 and 0 < g.motion.moving.max() < 0.5
    assert motion.pairs == 23                             # 24 sampled frames in 12 s: 23 pairs, each computed once
    assert motion.greys == 24                             # and each frame made small and grey once
    # relations: every tracked person stands or walks on the ground in every frame they are seen
    assert len(g.relations) == 8
    for t, triples in enumerate(g.relations):
        grounded = {r.subject for r in triples if PREDICATES[r.predicate] in ("walking on", "standing on", "laying on")}
        assert grounded <= {tr.track_id for tr in g.tracks if tr.present[t]}
        assert len(grounded) >= 0.8 * sum(tr.present[t] for tr in g.tracks)
    walking = sum(PREDICATES[r.predicate] == "walking on" for triples in g.relations for r in triples)
    assert walking > 0                                    # vtest's people walk


def test_a_weakly_detected_person_keeps_their_id_and_weak_strays_start_no_track():
    tr = PersonTracker(iou_threshold=0.3, max_age_s=1.0, max_jump=0.6, high_score=0.5)
    box = np.array([100, 100, 140, 200], np.float32)
    got = []
    for k, score in enumerate([0.9, 0.9, 0.35, 0.3, 0.9]):     # half hidden behind a pillar in frames 2-3
        step = box + np.array([10, 0, 10, 0]) * k
        stray = np.array([500, 300, 520, 340], np.float32)     # a weak false detection
        got.append(tr.update(np.stack([step, stray]), k * 0.5, np.array([score, 0.32])))
    assert [int(g[0]) for g in got] == [1, 1, 1, 1, 1]          # one id throughout
    assert all(int(g[1]) == 0 for g in got)                      # the stray never becomes a person
