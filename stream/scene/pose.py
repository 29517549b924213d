"""Human pose from the bundled BlazePose or from the ONNX model a user brings, as `People` per frame:
boxes, scores and COCO-17 keypoints (x, y, score) in frame pixels.

- Top-down (`blazepose`, `simcc`): the person detector's boxes, each widened to the model's aspect
  ratio, scaled by `crop_scale` and warped to the input size (distant people, vtest.avi's are
  25-180 px tall, are upscaled), all crops of all frames in batched engine calls.
- Bottom-up (`yolo_pose`, `heatmaps_tags`): whole frames, letterboxed to the input size; the model
  finds the people itself and no person detector runs.

The crop affine maps crop corners exactly onto 0 and the input size, as MediaPipe does: half a
pixel off costs most of the agreement with MediaPipe (docs/scene.md, "Scene graphs").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from engines import Engine
from stream.scene.decoders import People, decode_associative_embedding, decode_simcc, decode_yolo_pose
from stream.scene.people import PersonDetector

# BlazePose's 33 landmarks -> COCO-17 (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles)
BLAZEPOSE_TO_COCO17 = np.array([0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28])
COCO17_NAMES = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
                "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
                "left_knee", "right_knee", "left_ankle", "right_ankle")
COCO17_EDGES = ((0, 1), (0, 2), (1, 3), (2, 4), (5, 6), (5, 7), (7, 9), (6, 8), (8, 10), (5, 11), (6, 12),
                (11, 12), (11, 13), (13, 15), (12, 14), (14, 16))

TOP_DOWN = ("blazepose", "simcc")
BOTTOM_UP = ("yolo_pose", "heatmaps_tags")
_IMAGENET_MEAN, _IMAGENET_STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class InputSpec:
    """How frames become the model's input tensor."""
    size: tuple[int, int]                       # (width, height)
    layout: str = "nchw"                        # or "nhwc"
    rgb: bool = True
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)     # in 0..255 pixel units, channel order as fed
    std: tuple[float, float, float] = (255.0, 255.0, 255.0)

    def tensor(self, images_bgr: list[np.ndarray]) -> np.ndarray:
        """(N, H, W, 3) uint8 BGR images at the input size -> the model's float32 batch (one copy,
        then normalised in place)."""
        x = np.stack([cv2.cvtColor(im, cv2.COLOR_BGR2RGB) for im in images_bgr] if self.rgb else images_bgr)
        shape = (1, 3, 1, 1) if self.layout == "nchw" else (1, 1, 1, 3)
        if self.layout == "nchw":
            x = x.transpose(0, 3, 1, 2)
        out = np.empty(x.shape, np.float32)
        out[...] = x
        if any(self.mean):
            out -= np.float32(self.mean).reshape(shape)
        out *= (1.0 / np.float32(self.std)).reshape(shape)
        return out


# What each decoder's models usually expect; the ONNX file's static input shape and the config override.
PRESETS: dict[str, InputSpec] = {
    "blazepose": InputSpec((256, 256), "nhwc"),
    "simcc": InputSpec((192, 256), "nchw", mean=_IMAGENET_MEAN, std=_IMAGENET_STD),   # RTMPose (MMPose)
    "yolo_pose": InputSpec((640, 640), "nchw"),                                       # Ultralytics
    "heatmaps_tags": InputSpec((512, 512), "nchw", mean=_IMAGENET_MEAN, std=_IMAGENET_STD),  # HigherHRNet
}


def resolve_input(decoder: str, model_shape: list[int | None] | None, *, size: tuple[int, int] | None = None,
                  layout: str | None = None, channels: str | None = None, mean=None, std=None,
                  model_name: str = "pose model") -> InputSpec:
    """The input spec from the config's values, else the model's static input shape, else the
    decoder's preset; a config value the model contradicts is an error naming both."""
    preset = PRESETS[decoder]
    shape_layout, shape_size = None, None
    if model_shape is not None:
        if len(model_shape) != 4:
            raise ValueError(f"{model_name}: input must be an image batch (4 dimensions), the model's is {model_shape}")
        if model_shape[1] == 3 and model_shape[3] != 3:
            shape_layout, h, w = "nchw", model_shape[2], model_shape[3]
        elif model_shape[3] == 3:
            shape_layout, h, w = "nhwc", model_shape[1], model_shape[2]
        else:
            raise ValueError(f"{model_name}: cannot tell the channel axis of input shape {model_shape}; "
                             "a 3-channel image batch is NCHW [N,3,H,W] or NHWC [N,H,W,3]")
        if h and w:
            shape_size = (w, h)
    if layout is not None and shape_layout is not None and layout != shape_layout:
        raise ValueError(f"{model_name}: config says layout {layout} but the model's input {model_shape} is {shape_layout}")
    if size is not None and shape_size is not None and tuple(size) != shape_size:
        raise ValueError(f"{model_name}: config says input_size {list(size)} (width, height) but the model's input "
                         f"{model_shape} is {shape_size[0]}x{shape_size[1]}")
    return InputSpec(size=tuple(size or shape_size or preset.size), layout=layout or shape_layout or preset.layout,
                     rgb=(channels or ("rgb" if preset.rgb else "bgr")) == "rgb",
                     mean=tuple(mean or preset.mean), std=tuple(std or preset.std))


def crop_rect(box: np.ndarray, scale: float, aspect: float) -> tuple[float, float, float, float]:
    """(centre x, centre y, width, height) of the upright crop around an x0, y0, x1, y1 box, widened
    to width/height = `aspect` and scaled by `scale`."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    if w > h * aspect:
        h = w / aspect
    else:
        w = h * aspect
    return (x0 + x1) / 2, (y0 + y1) / 2, w * scale, h * scale


class PoseEstimator:
    """A top-down pose model: one crop per person box, decoded by `decoder` (blazepose or simcc)."""

    def __init__(self, engine: Engine, *, decoder: str = "blazepose", spec: InputSpec | None = None,
                 presence_threshold: float = 0.5, crop_scale: float = 1.25, min_box_height: float = 16.0,
                 max_batch: int = 16, simcc_split_ratio: float = 2.0):
        if decoder not in TOP_DOWN:
            raise ValueError(f"{decoder!r} is not a top-down decoder ({', '.join(TOP_DOWN)})")
        self.engine, self.decoder, self.spec = engine, decoder, spec or PRESETS[decoder]
        self.input = engine.input_names[0]
        self.presence_threshold, self.crop_scale = presence_threshold, crop_scale
        self.min_box_height, self.max_batch, self.split_ratio = min_box_height, max_batch, simcc_split_ratio

    @property
    def aspect(self) -> float:
        return self.spec.size[0] / self.spec.size[1]

    def crop(self, image_bgr: np.ndarray, box: np.ndarray) -> np.ndarray:
        """The box's crop at the input size, BGR."""
        cx, cy, w, h = crop_rect(box, self.crop_scale, self.aspect)
        s = self.spec.size[0] / w
        # Boxes and keypoints are continuous coordinates (a pixel's centre at i + 0.5), and so are the
        # model's crop coordinates (corners at 0 and the size); warpAffine indexes pixel centres at i.
        off = 0.5 * (s - 1.0)
        m = np.array([[s, 0, off - (cx - w / 2) * s], [0, s, off - (cy - h / 2) * s]], np.float32)
        return cv2.warpAffine(image_bgr, m, self.spec.size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def to_image(self, box: np.ndarray, xy: np.ndarray) -> np.ndarray:
        """Map (..., 2) crop coordinates back to the image (the inverse of `crop`)."""
        cx, cy, w, h = crop_rect(box, self.crop_scale, self.aspect)
        return np.array([cx - w / 2, cy - h / 2], np.float32) + xy * (w / self.spec.size[0])

    def _decode(self, out: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Engine outputs -> ((N, 17, 3) keypoints in crop pixels, (N,) pose-present probability)."""
        if self.decoder == "blazepose":
            landmarks = out[0].reshape(len(out[0]), -1, 5)[:, BLAZEPOSE_TO_COCO17]   # x, y, z, visibility, presence
            kp = np.concatenate([landmarks[..., :2], 0.5 + 0.5 * np.tanh(0.5 * landmarks[..., 3:4])], axis=-1)   # sigmoid
            return kp, out[1].reshape(-1)                                              # already a probability
        if len(out) < 2:
            raise ValueError("a simcc pose model must have two outputs (simcc_x, simcc_y)")
        kp = decode_simcc(out[0], out[1], split_ratio=self.split_ratio)
        return kp, np.ones(len(kp), np.float32)

    def estimate(self, images: list[np.ndarray], boxes: list[np.ndarray]) -> list[np.ndarray]:
        """For each image, (P, 17, 3) COCO-17 keypoints (x, y, score) for its P boxes, in one or more
        batched engine calls across all images. Poses not found have score 0."""
        jobs = [(i, j) for i, b in enumerate(boxes) for j in range(len(b))
                if b[j, 3] - b[j, 1] >= self.min_box_height]
        result = [np.zeros((len(b), 17, 3), np.float32) for b in boxes]
        for k in range(0, len(jobs), self.max_batch):
            chunk = jobs[k:k + self.max_batch]
            res = self.engine.run({self.input: self.spec.tensor([self.crop(images[i], boxes[i][j]) for i, j in chunk])})
            kps, present = self._decode([res[n] for n in self.engine.output_names])
            for (i, j), kp, p in zip(chunk, kps, present):
                if p >= self.presence_threshold:
                    result[i][j, :, :2] = self.to_image(boxes[i][j], kp[:, :2])
                    result[i][j, :, 2] = kp[:, 2]
        return result


class PeopleFinder(Protocol):
    def find(self, images: list[np.ndarray]) -> list[People]: ...


class TopDown:
    """Person detector, then a top-down pose model on each person's crop."""

    def __init__(self, detector: PersonDetector, pose: PoseEstimator):
        self.detector, self.pose = detector, pose

    def find(self, images: list[np.ndarray], *, poses: bool = True) -> list[People]:
        """People per image; with `poses=False` their keypoints are left at 0 (a PoseRefresh gives
        them, once the people are tracked)."""
        dets = self.detector.detect(images)
        kps = self.pose.estimate(images, [d.boxes for d in dets]) if poses else \
            [np.zeros((len(d.boxes), 17, 3), np.float32) for d in dets]
        return [People(d.boxes, d.scores, kp) for d, kp in zip(dets, kps)]


class PoseRefresh:
    """Which tracked people need a new pose, and the keypoints of those who do not.

    The pose model is most of a frame's cost (a crop each person), and at 2 sampled frames a
    second a person's posture rarely changes between two of them. So a tracked person gets a new
    pose at most every `every` sampled frames, or sooner when their box changes shape (its
    height or its width/height by more than `max_change`: someone falling, bending, struggling),
    and between the two their last keypoints follow their box (scaled and moved with it).
    An untracked detection (track id 0) and a new track always get one. Per camera, each with
    its own `every` where `cameras` gives one.

    Used in two steps over a batch of frames in time order: `plan` for every frame (who needs a
    new pose), then, once the new poses are estimated together, `fill` for every frame in the
    same order."""

    def __init__(self, every: int = 1, max_change: float = 0.3):
        self.every, self.max_change = every, max_change
        self.cameras: dict[str, int] = {}      # cameras with their own `every`
        self._planned: dict[str, dict[int, list]] = {}     # track id -> [box posed, frames since, frames unseen]
        self._posed: dict[str, dict[int, list]] = {}       # track id -> [box posed, keypoints, frames unseen]

    def _changed(self, a: np.ndarray, b: np.ndarray) -> bool:
        ha, hb = max(a[3] - a[1], 1.0), max(b[3] - b[1], 1.0)
        ra, rb = max(a[2] - a[0], 1.0) / ha, max(b[2] - b[0], 1.0) / hb
        return abs(hb / ha - 1.0) > self.max_change or abs(rb / ra - 1.0) > self.max_change

    def _age(self, tracks: dict[int, list], here: np.ndarray, every: int) -> None:
        """A track missed for a frame keeps its pose for as long as it would have been followed."""
        seen = set(here.tolist())
        for tid, record in list(tracks.items()):
            record[-1] = 0 if tid in seen else record[-1] + 1
            if record[-1] >= every:
                del tracks[tid]

    def plan(self, camera: str, ids: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(P,) True where the person needs a new pose."""
        ids = np.asarray(ids).astype(int)
        every = self.cameras.get(camera, self.every)
        last = self._planned.setdefault(camera, {})
        due = np.ones(len(ids), bool)
        for p, tid in enumerate(ids):
            seen = last.get(tid) if tid else None
            if seen is not None and seen[1] + 1 < every and not self._changed(seen[0], boxes[p]):
                due[p] = False
                seen[1] += 1
            elif tid:
                last[tid] = [boxes[p].copy(), 0, 0]
        self._age(last, ids, every)
        return due

    def fill(self, camera: str, ids: np.ndarray, boxes: np.ndarray, due: np.ndarray, posed: np.ndarray) -> np.ndarray:
        """(P, 17, 3) keypoints: `posed`'s rows where `due`, the others' last pose moved with their box."""
        ids = np.asarray(ids).astype(int)
        last = self._posed.setdefault(camera, {})
        out = np.array(posed, np.float32, copy=True).reshape(len(ids), 17, 3)
        for p, tid in enumerate(ids):
            if due[p]:
                if tid:
                    last[tid] = [boxes[p].copy(), out[p].copy(), 0]
                continue
            box, kp, _ = last[tid]
            if not kp[:, 2].any():      # no pose was found: none follows
                continue
            b = boxes[p]
            scale = np.array([max(b[2] - b[0], 1.0) / max(box[2] - box[0], 1.0),
                              max(b[3] - b[1], 1.0) / max(box[3] - box[1], 1.0)], np.float32)
            out[p, :, :2] = (kp[:, :2] - box[:2]) * scale + b[:2]
            out[p, :, 2] = kp[:, 2]
        self._age(last, ids, self.cameras.get(camera, self.every))
        return out

    def forget(self, camera: str) -> None:
        self._planned.pop(camera, None)
        self._posed.pop(camera, None)


class BottomUp:
    """A bottom-up pose model on whole letterboxed frames: people, boxes and keypoints in one pass."""

    def __init__(self, engine: Engine, *, decoder: str, spec: InputSpec | None = None, score_threshold: float = 0.25,
                 nms_iou: float = 0.7, max_people: int = 64, max_batch: int = 16, peak_threshold: float = 0.1,
                 tag_threshold: float = 1.0):
        if decoder not in BOTTOM_UP:
            raise ValueError(f"{decoder!r} is not a bottom-up decoder ({', '.join(BOTTOM_UP)})")
        self.engine, self.decoder, self.spec = engine, decoder, spec or PRESETS[decoder]
        self.input = engine.input_names[0]
        self.score_threshold, self.nms_iou, self.max_people = score_threshold, nms_iou, max_people
        self.max_batch, self.peak_threshold, self.tag_threshold = max_batch, peak_threshold, tag_threshold

    def letterbox(self, image_bgr: np.ndarray) -> tuple[np.ndarray, float, float, float, float]:
        """The frame scaled to fit the input, centred on grey (Ultralytics' 114); with the x and y
        scales and offsets that map frame coordinates to input ones."""
        W, H = self.spec.size
        h, w = image_bgr.shape[:2]
        r = min(W / w, H / h)
        nw, nh = max(1, round(w * r)), max(1, round(h * r))
        px, py = (W - nw) // 2, (H - nh) // 2
        canvas = np.full((H, W, 3), 114, np.uint8)
        canvas[py:py + nh, px:px + nw] = cv2.resize(image_bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
        return canvas, nw / w, nh / h, px, py

    def _decode_one(self, outs: list[np.ndarray]) -> People:
        if self.decoder == "yolo_pose":
            return decode_yolo_pose(outs[0], score_threshold=self.score_threshold, nms_iou=self.nms_iou,
                                    max_people=self.max_people)
        heatmaps, tags = _split_heatmaps_tags(outs)
        return decode_associative_embedding(heatmaps, tags, input_size=self.spec.size, peak_threshold=self.peak_threshold,
                                            tag_threshold=self.tag_threshold, max_people=self.max_people)

    def find(self, images: list[np.ndarray]) -> list[People]:
        found: list[People] = []
        for k in range(0, len(images), self.max_batch):
            boxed = [self.letterbox(im) for im in images[k:k + self.max_batch]]
            res = self.engine.run({self.input: self.spec.tensor([b[0] for b in boxed])})
            outs = [res[n] for n in self.engine.output_names]
            for i, (_, rx, ry, px, py) in enumerate(boxed):
                p = self._decode_one([o[i] for o in outs])
                scale, offset = np.float32([rx, ry]), np.float32([px, py])
                kp = p.keypoints.copy()
                kp[..., :2] = np.where(kp[..., 2:] > 0, (kp[..., :2] - offset) / scale, 0.0)
                boxes = ((p.boxes.reshape(-1, 2, 2) - offset) / scale).reshape(-1, 4)
                found.append(People(boxes.astype(np.float32), p.scores, kp.astype(np.float32)))
        return found


def _split_heatmaps_tags(outs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """One image's outputs -> (17, H, W) heatmaps and (17, H, W[, L]) tags, from the layouts
    HigherHRNet exports come in: one (34, H, W) output (heatmaps then tags); two outputs, heatmaps
    (17, H, W) and tags of the same grid; or HigherHRNet's own pair, (34, h, w) at 1/4 and (17, H, W)
    heatmaps at 1/2 resolution, averaged at the finer grid as its inference does."""
    a = outs[0]
    if len(outs) == 1:
        if a.shape[0] != 34:
            raise ValueError(f"a one-output heatmaps_tags model must give (N, 34, H, W), got {a.shape}")
        return a[:17], a[17:]
    b = outs[1]
    if a.shape[0] == 17 and b.shape[:3] == a.shape:
        return a, b
    if a.shape[0] == 34 and b.shape[0] == 17:
        size = (b.shape[2], b.shape[1])
        up = np.stack([cv2.resize(c, size, interpolation=cv2.INTER_LINEAR) for c in a])
        return (up[:17] + b) / 2, up[17:]
    raise ValueError(f"heatmaps_tags outputs must be (N, 34, H, W), or (N, 17, H, W) heatmaps and tags, or "
                     f"HigherHRNet's (N, 34, h, w) and (N, 17, H, W); got {a.shape} and {b.shape} (batch dropped)")
