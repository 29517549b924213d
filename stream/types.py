"""The data that crosses stage boundaries: frozen dataclasses, never tuples or bare dicts."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class SensorMetadata:
    """What a drone's MISB ST 0601 UAS Datalink Local Set said at one instant (stream/ingest/klv.py).
    Angles in degrees, positions in WGS-84 degrees, heights in metres above the ellipsoid (MSL in
    the standard's words), lengths in metres; None where the packet did not carry the item."""
    time_us: int | None = None                 # tag 2: precision time stamp, microseconds since the epoch
    mission_id: str | None = None              # tag 3
    platform_heading: float | None = None      # tag 5: 0..360, clockwise from true north
    platform_pitch: float | None = None        # tag 6: -20..20, nose up positive
    platform_roll: float | None = None         # tag 7: -50..50, right wing down positive
    sensor_lat: float | None = None            # tag 13
    sensor_lon: float | None = None            # tag 14
    sensor_alt: float | None = None            # tag 15: sensor true altitude
    hfov: float | None = None                  # tag 16: sensor horizontal field of view
    vfov: float | None = None                  # tag 17
    sensor_rel_az: float | None = None         # tag 18: 0..360, clockwise from the platform's nose
    sensor_rel_el: float | None = None         # tag 19: -180..180, up positive (looking down is negative)
    sensor_rel_roll: float | None = None       # tag 20: 0..360
    slant_range: float | None = None           # tag 21
    target_width: float | None = None          # tag 22
    frame_center_lat: float | None = None      # tag 23
    frame_center_lon: float | None = None      # tag 24
    frame_center_elev: float | None = None     # tag 25
    corners: tuple[tuple[float, float], ...] | None = None   # tags 82-89 (or 26-33 offsets + the centre):
                                               # (lat, lon) of the image's corners 1-4: upper left,
                                               # upper right, lower right, lower left
    version: int | None = None                 # tag 65: UAS Datalink LS version
    unknown: tuple[tuple[int, bytes], ...] = ()   # items this decoder does not name, as they came


@dataclass(frozen=True, eq=False)
class Frame:
    camera: str
    seq: int              # per camera, from 0, counts every decoded frame (sampled or not)
    ts: float             # stream time in seconds, monotonic per camera, 0 at the first frame
    wall: float           # wall-clock capture (emission) time, seconds since the epoch
    pixels: np.ndarray | Callable[[], np.ndarray] = field(repr=False)
    sensor: SensorMetadata | None = None   # a drone feed's latest KLV metadata at or before `ts` (None: none)

    @property
    def image(self) -> np.ndarray:
        """(H, W, 3) uint8 BGR. Ingest hands over the decoded picture and the first reader converts
        it, on its own thread, so the decoding thread never waits for pixel work."""
        if callable(self.pixels):
            object.__setattr__(self, "pixels", self.pixels())
        return self.pixels

    def __getstate__(self) -> dict:   # crossing a process boundary carries the pixels, not a decoder frame
        return {**self.__dict__, "pixels": self.image}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)


@dataclass(frozen=True)
class Window:
    camera: str
    window_id: int        # per camera, from 0; window k starts at k * stride
    start: float          # stream seconds, inclusive
    end: float            # stream seconds, exclusive; the last window ends where the stream ends
    frames: tuple[Frame, ...]   # the sampled frames in [start, end), in time order
    dropped_frames: int = 0     # frames of this span that ingest lost (never sampled)
    final: bool = False         # the last window of a finite stream
    gaps: tuple[tuple[float, float], ...] = ()   # parts of [start, end) the camera sent nothing for
    wall_start: float = 0.0     # wall-clock time of `start` and `end` (from the nearest frame's capture time)
    wall_end: float = 0.0


@dataclass(frozen=True)
class PersonTrack:
    track_id: int               # stable per camera across windows
    present: np.ndarray         # (T,) bool: seen in the window's sampled frame t
    boxes: np.ndarray           # (T, 4) x0, y0, x1, y1 in pixels; NaN where absent
    box_scores: np.ndarray      # (T,) detector score; 0 where absent
    keypoints: np.ndarray       # (T, 17, 3) COCO-17 x, y (pixels) and score; score 0 where unknown
    dwell: np.ndarray | None = None   # (T,) seconds the person has stayed where they stand (tracking.py); None: unknown
    kinematics: np.ndarray | None = None   # (T, KIN) how they move and stand (scene/kinematics.py); 0 where absent
    appearance: np.ndarray | None = field(default=None, repr=False)   # (T, 1280) float16 pretrained features of
                                                                      # their crop (scene/appearance.py); 0 where absent


@dataclass(frozen=True)
class MotionSummary:
    """Per window: what moved between consecutive sampled frames, how fast and which way."""
    energy: np.ndarray          # (T-1,) mean speed over the frame, frame heights per second
    moving: np.ndarray          # (T-1,) fraction of the frame that moves
    directions: np.ndarray      # (8,) share of moving pixels per direction (sums to 1, or all 0)
    speeds: np.ndarray          # (len(SPEED_BINS) + 1,) share of moving pixels per speed band
    masks: np.ndarray           # (T-1, h, w) bool, at the reduced size

    def __getstate__(self) -> dict:   # crossing a process boundary (Ray): the masks packed 8 to a byte
        return {**self.__dict__, "masks": _pack(self.masks)}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, masks=_unpack(state["masks"]))

    def vector(self) -> np.ndarray:
        """A fixed-length feature vector for the model: energy and moving share (mean, max), then the
        direction and speed histograms."""
        stats = [self.energy.mean(), self.energy.max(), self.moving.mean(), self.moving.max()] if len(self.energy) \
            else [0.0] * 4
        return np.concatenate([np.asarray(stats, np.float32), self.directions, self.speeds]).astype(np.float32)


@dataclass(frozen=True)
class Triple:
    """A subject-predicate-object relation in the VG150 label space (stream/scene/relations.py)."""
    subject: int            # track id (or RelTR query index)
    subject_class: int      # index into OBJECTS
    predicate: int          # index into PREDICATES
    object: int             # track id, or GROUND
    object_class: int
    score: float


@dataclass(frozen=True)
class SceneGraph:
    camera: str
    window_id: int
    start: float
    end: float
    timestamps: np.ndarray      # (T,) stream seconds of the sampled frames
    walls: np.ndarray           # (T,) wall-clock capture times of the same frames
    frame_size: tuple[int, int]  # (width, height)
    tracks: tuple[PersonTrack, ...]
    latency_ms: dict[str, float] = field(default_factory=dict)
    final: bool = False
    gaps: tuple[tuple[float, float], ...] = ()   # stream time inside [start, end) with no frames
    wall_start: float = 0.0
    wall_end: float = 0.0
    motion: MotionSummary | None = None   # flow between the sampled frames (stream/scene/motion.py), if computed
    relations: tuple[tuple[Triple, ...], ...] = ()   # per sampled frame: its relation triples
    objects: tuple[np.ndarray, ...] = ()  # per sampled frame: (M, 6) left objects x0, y0, x1, y1, seconds there, id
    named: tuple[np.ndarray, ...] = ()    # per sampled frame: (K, 6) named objects x0, y0, x1, y1, score, VG150 class
    thumbs: np.ndarray | None = field(default=None, repr=False)         # (T, h, w, 3) uint8 BGR: the model's
    motion_thumbs: np.ndarray | None = field(default=None, repr=False)  # appearance and (Hawk) motion frames
    appearance: np.ndarray | None = field(default=None, repr=False)     # (T, 1280) float16 pretrained features of
                                                                        # each frame (scene/appearance.py), if computed
    sensors: tuple[SensorMetadata | None, ...] = ()   # per sampled frame: a drone feed's metadata (ingest/klv.py)

    def __getstate__(self) -> dict:
        """Crossing a process boundary (Ray), a motion thumbnail travels as the mask of where it is
        not blacked out (the thumbnail itself travels anyway): 1 bit a pixel instead of 24, exactly."""
        state = dict(self.__dict__)
        thumbs, moving = self.thumbs, self.motion_thumbs
        if thumbs is not None and moving is not None and moving.shape == thumbs.shape:
            mask = moving.any(axis=-1)
            if np.array_equal(thumbs * mask[..., None], moving):
                state["motion_thumbs"] = ("masked", _pack(mask))
        return state

    def __setstate__(self, state: dict) -> None:
        moving = state["motion_thumbs"]
        if isinstance(moving, tuple) and moving[0] == "masked":
            state = {**state, "motion_thumbs": state["thumbs"] * _unpack(moving[1])[..., None]}
        self.__dict__.update(state)


@dataclass(frozen=True)
class SecondScore:
    start: float
    end: float
    score: float
    category: str


@dataclass(frozen=True)
class Verdict:
    camera: str
    window_id: int
    start: float
    end: float
    wall_start: float
    wall_end: float
    score: float                       # anomaly probability of the window
    seconds: tuple[SecondScore, ...]   # per-second scores covering [start, end)
    categories: dict[str, float]       # category -> score
    explanation: str
    detector: str
    people: int
    latency_ms: dict[str, float] = field(default_factory=dict)
    final: bool = False
    gaps: tuple[tuple[float, float], ...] = ()   # stream time inside [start, end) with no frames
    # the model's embedding of each second's scene (S, D) float32, and the space it lives in (the model
    # that made it); None for a detector without one. For each camera's normal (stream/detection/normal.py).
    embeddings: np.ndarray | None = field(default=None, compare=False, repr=False)
    embedding_space: str = ""


@dataclass(frozen=True)
class Evidence:
    kind: str                  # "keyframe" (JPEG with the scene overlay) | "clip" (MP4 around the span)
    path: str
    sha256: str
    bytes: int


@dataclass(frozen=True)
class Alert:
    alert_id: str
    camera: str
    state: str                 # "open" | "update" | "close"
    category: str
    score: float               # peak score so far
    start: float               # grounded span, stream seconds
    end: float
    wall_start: float          # the same span, wall clock
    wall_end: float
    explanation: str
    window_id: int             # the window that caused this state change
    latency_ms: dict[str, float] = field(default_factory=dict)
    evidence: tuple[Evidence, ...] = ()
    reason: str = ""           # why it closed, when not by its scores
    geometry: dict | None = None   # a drone's event on the ground: GeoJSON FeatureCollection (scene/geolocate.py `place`)


@dataclass(frozen=True)
class EndOfStream:
    """Sent down the queues after a camera's last window: every later stage flushes that camera."""
    camera: str
    reason: str                # "finished" | "duration" | "stopped" | "failed: ..."


def _pack(mask: np.ndarray) -> tuple:
    """A boolean array as (shape, bits packed 8 to a byte)."""
    return mask.shape, np.packbits(mask, axis=None)


def _unpack(packed: tuple) -> np.ndarray:
    shape, bits = packed
    return np.unpackbits(bits, count=int(np.prod(shape))).reshape(shape).astype(bool)
