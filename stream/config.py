"""The configuration schema: one strict tree, validated and resolved once at load.

Unknown keys are rejected, every field is described and bounded, relative paths are resolved
against the config file's folder, and an error is one line naming the field path
(`cameras.lobby.replay: ...`), which names the camera too.
"""
from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (AfterValidator, AliasChoices, BaseModel, ConfigDict, Field, StringConstraints, ValidationError, ValidationInfo,
                      field_validator, model_validator)

from stream.net import is_loopback
from stream.redact import known_secret, secret_name, url_secrets

SCHEMA_VERSION = 1
CameraId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
URL_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "udp://", "srt://", "rtmp://", "file://")


class ConfigError(ValueError):
    """A configuration problem, as one line that names the file and the field path."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _any_path(v: Path, info: ValidationInfo) -> Path:
    """A config path made absolute: relative paths are relative to the config file's folder."""
    base = (info.context or {}).get("base_dir")
    return (v if v.is_absolute() or base is None else Path(base) / v).resolve()


def _resolve_path(value: Path, info: ValidationInfo, what: str) -> Path:
    path = _any_path(value, info)
    if (info.context or {}).get("check_files", True) and not path.is_file():
        raise ValueError(f"{what} {path} does not exist")
    return path


ModelFile = Annotated[Path, AfterValidator(
    lambda v, info: _resolve_path(v, info, "model file (bundled models: `make models`)"))]


class IngestConfig(_Strict):
    """How a live source is opened, watched and reopened. Set defaults under the top-level `ingest`
    and override any field per camera (`cameras.<id>.ingest`)."""
    rtsp_transport: Literal["tcp", "udp"] = Field(
        "tcp", description="RTSP only: interleaved over the TCP connection, or RTP over UDP.")
    open_timeout_s: float = Field(10.0, gt=0.0, le=600.0, description="Seconds to connect and read the stream header.")
    probe_s: float = Field(1.0, gt=0.0, le=30.0,
                           description="Seconds of a live stream FFmpeg reads to learn its format (latency at connect).")
    watchdog_s: float = Field(5.0, gt=0.0, le=3600.0,
                              description="No decoded frame for this long: the source is stalled and reconnects.")
    backoff_initial_s: float = Field(0.5, gt=0.0, le=600.0, description="First wait before reconnecting.")
    backoff_max_s: float = Field(10.0, gt=0.0, le=3600.0, description="The wait doubles per failed attempt up to this cap.")
    backoff_jitter: float = Field(0.2, ge=0.0, le=1.0,
                                  description="Each wait is scaled by a random factor in [1 - jitter, 1 + jitter].")
    max_reconnects: int | None = Field(
        None, ge=0, le=10_000_000,
        description="Failed attempts in a row before the camera is given up (null: never give up).")
    gap_s: float = Field(1.0, gt=0.0, le=3600.0,
                         description="Stream time missing between two frames beyond this (or 2.5 frame intervals, "
                                     "whichever is larger) is reported as a gap.")
    options: dict[str, str] = Field(default_factory=dict,
                                    description="Extra FFmpeg options for av.open, e.g. {fflags: nobuffer}.")

    @model_validator(mode="after")
    def _backoff_order(self) -> IngestConfig:
        if self.backoff_initial_s > self.backoff_max_s:
            raise ValueError(f"backoff_initial_s ({self.backoff_initial_s}) must not exceed "
                             f"backoff_max_s ({self.backoff_max_s})")
        return self


class EventsConfig(_Strict):
    open_threshold: float = Field(0.6, gt=0.0, le=1.0, description="Per-second score that opens an event.")
    close_threshold: float = Field(0.4, ge=0.0, lt=1.0, description="Score under which an open event ends.")
    min_duration_s: float = Field(1.0, ge=0.0, le=600.0, description="Seconds above open_threshold to open.")
    close_after_s: float = Field(2.0, ge=0.0, le=600.0, description="Seconds under close_threshold to close.")
    cooldown_s: float = Field(5.0, ge=0.0, le=3600.0, description="Seconds after a close before another opens.")
    quiet_after_s: float = Field(6.0, gt=0.0, le=3600.0, description=(
        "Seconds with no second at or above open_threshold of the event's own category after which an open event "
        "closes: the evidence stopped growing (scores hovering between the thresholds never hold it open)."))
    max_event_s: float = Field(120.0, gt=0.0, le=86400.0, description=(
        "The longest an event lasts: it then closes, and a new one may open if the scores stay high."))

    @model_validator(mode="after")
    def _hysteresis(self) -> EventsConfig:
        if self.close_threshold >= self.open_threshold:
            raise ValueError("close_threshold must be below open_threshold")
        return self


class NormalConfig(_Strict):
    enabled: bool = Field(False, description=(
        "Learn what is normal for each camera from its own footage, its quiet seconds and operators' \"False "
        "alarm\" reviews; once learnt, a second like that normal cannot open an event (docs/configuration.md: Each camera's "
        "normal). Needs the hawkeye detector (its scene embeddings)."))
    warmup_minutes: float = Field(10.0, ge=0.0, le=10_080.0, description=(
        "Minutes of footage with people in it to learn before the normal is used; the model alone decides "
        "until then. `python -m stream.detection.normal learn` learns from a recording instead."))
    radius: float = Field(0.07, gt=0.0, le=2.0, description=(
        "Cosine distance within which a second's embedding counts as one of the normal (smaller: only near "
        "repeats are familiar). 0.07 was chosen for the shipped model on the real-clip set's train and val "
        "splits (`python -m training.normal_eval`); another model's embeddings may need another."))
    capacity: int = Field(4096, ge=16, le=1_000_000, description=(
        "Most embeddings kept per camera (0.5 KiB each): the least recently matched go first; reviewed "
        "false alarms are never evicted."))
    store: Path = Field(Path("var/normal"), description="Folder of the cameras' normal stores, one file each "
                                                        "(relative to the config file).")

    _store = field_validator("store")(_any_path)


class WindowConfig(_Strict):
    length_s: float = Field(4.0, gt=0.0, le=120.0, description="Window length in stream seconds.")
    stride_s: float = Field(2.0, gt=0.0, le=120.0, description="Seconds between window starts (<= length).")
    sample_fps: float = Field(2.0, gt=0.0, le=60.0, description="Frames per second sampled into a window.")

    @model_validator(mode="after")
    def _stride_within_length(self) -> WindowConfig:
        if self.stride_s > self.length_s:
            raise ValueError(f"stride_s ({self.stride_s}) must not exceed length_s ({self.length_s}): "
                             "windows must cover the whole stream")
        return self


class ZoneConfig(_Strict):
    kind: Literal["include", "exclude"] = Field(
        "include", description="include: events may open only in include zones (anywhere, when there is none); "
                               "exclude: events never open here.")
    points: list[tuple[Annotated[float, Field(ge=0.0, le=1.0)], Annotated[float, Field(ge=0.0, le=1.0)]]] = Field(
        min_length=3, max_length=64, description="The polygon's corners, x and y relative to the picture (0..1, "
                                                 "from the top left): draw it on the console's camera page.")

    @model_validator(mode="after")
    def _area(self) -> ZoneConfig:
        xy = self.points
        area = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(xy, xy[1:] + xy[:1])) / 2
        if abs(area) < 1e-4:
            raise ValueError("the polygon encloses no area (its points lie on a line, or repeat)")
        return self


_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def substitute(data, base_dir: Path | None = None, where: tuple = ()):
    """The raw config with its references replaced, in every string value:

    - `${NAME}`: the environment variable NAME (a variable that is not set is an error naming it);
    - `${NAME:-default}`: NAME, or `default` where NAME is unset or empty;
    - `${file:PATH}`: the contents of a file, without its final newline (a Docker or systemd
      secret: `${file:/run/secrets/gate_password}`; relative to the config file);
    - `$${` is a literal `${`.

    A value from a file, from a variable whose name means a secret (PASSWORD, TOKEN, KEY...), for
    a key that does, or in a URL's credentials is masked wherever it appears (stream/redact.py).
    Raises ValueError naming the key."""
    if isinstance(data, dict):
        return {k: substitute(v, base_dir, (*where, k)) for k, v in data.items()}
    if isinstance(data, list):
        return [substitute(v, base_dir, (*where, i)) for i, v in enumerate(data)]
    if not isinstance(data, str) or "${" not in data:
        return data
    key = ".".join(str(w) for w in where) or "(top level)"

    def value(match: re.Match) -> str:
        if match.group(0) == "$${":
            return "${"
        ref = match.group(1)
        if ref.startswith("file:"):
            path = Path(ref[5:])
            path = path if path.is_absolute() or base_dir is None else base_dir / path
            try:
                text = path.read_text().removesuffix("\n").removesuffix("\r")
            except (OSError, UnicodeDecodeError) as e:
                raise ValueError(f"{key}: the file {path} (in ${{{ref}}}) cannot be read: "
                                 f"{getattr(e, 'strerror', None) or e}") from None
            known_secret(text)
            return text
        name, sep, default = ref.partition(":-")
        if not _ENV_NAME.fullmatch(name):
            raise ValueError(f"{key}: ${{{ref}}} is neither ${{NAME}}, ${{NAME:-default}} nor ${{file:PATH}} "
                             f"(write $${{ for a literal ${{)")
        text = os.environ.get(name)
        if sep and not text:
            return default
        if text is None:
            raise ValueError(f"{key}: the environment variable {name} (in ${{{ref}}}) is not set")
        if secret_name(name) or secret_name(str(where[-1]) if where else "") or \
                _in_credentials(data, match.start(), match.end()):
            known_secret(text)
        return text
    return _REFERENCE.sub(value, data)


def _in_credentials(url: str, start: int, end: int) -> bool:
    """Whether url[start:end] is in a URL's userinfo (`rtsp://user:HERE@host`) or in the value of
    a query parameter whose name means a secret (`?token=HERE`)."""
    scheme = url.find("://")
    if scheme < 0 or start < scheme:
        return False
    if "@" in url[end:] and "/" not in url[scheme + 3:start]:
        return True
    param = re.search(r"[?&;]([^=&;#]*)=[^&;#]*$", url[:start])
    return bool(param and secret_name(param.group(1)))


def source_kind(target: str, *, is_file: bool = False, is_device: bool = False) -> str:
    """file | device | rtsp | udp | srt | http | rtmp: what a source's target is, from its scheme."""
    if is_file:
        return "file"
    if is_device:
        return "device"
    scheme = target.partition("://")[0].lower()
    return {"rtsps": "rtsp", "https": "http"}.get(scheme, scheme)


class GeolocationConfig(_Strict):
    """How a drone camera's events are placed on the ground (docs/drones.md): the ground's height,
    and the 1-sigma errors its metadata is assumed to have (the error each place is given)."""
    ground_elevation_m: float | None = Field(None, ge=-500.0, le=9000.0, description=(
        "The ground's height above the WGS-84 ellipsoid, metres, where the drone looks. Default: the feed's frame "
        "centre elevation (ST 0601 tag 25); a feed without it places nothing until this is set."))
    heading_deg: float = Field(0.5, ge=0.0, le=30.0, description="Platform heading error (magnetometers drift most).")
    attitude_deg: float = Field(0.2, ge=0.0, le=30.0, description="Platform pitch and roll error, each.")
    gimbal_deg: float = Field(0.3, ge=0.0, le=30.0, description="Sensor relative azimuth, elevation and roll error, each.")
    horizontal_m: float = Field(3.0, ge=0.0, le=1000.0, description="Sensor position error, east and north each.")
    altitude_m: float = Field(5.0, ge=0.0, le=1000.0, description="Sensor altitude error.")
    ground_m: float = Field(5.0, ge=0.0, le=1000.0, description="The ground's real height against the flat earth "
                                                               "assumed (terrain); also the events' `le`.")
    corner_m: float = Field(10.0, ge=0.0, le=10000.0, description="Each reported corner's error (used only when the "
                                                                  "metadata has corners but not the angles).")


class CameraConfig(_Strict):
    path: Path | None = Field(None, description="Video file to replay (relative to the config file).")
    url: str | None = Field(None, description="Stream URL opened with PyAV: " + ", ".join(URL_SCHEMES) +
                                                ". A password is best kept out of the file: `${NAME}` (an environment "
                                                "variable) or `${file:PATH}` (docs/configuration.md).")
    device: str | None = Field(None, description="A local camera device, e.g. /dev/video0 (Video4Linux2).")
    ingest: IngestConfig = Field(default_factory=IngestConfig,
                                 description="Live sources: transport, timeouts, watchdog, backoff (merged over "
                                             "the top-level `ingest`).")
    replay: Literal["realtime", "fast"] = Field(
        "realtime", description="Files only: pace by the file's timestamps, or as fast as the pipeline takes "
                                "frames (lossless). Defaults to the top-level `replay`.")
    loop: bool = Field(False, description="Files only: replay forever, stream time continuing across loops.")
    duration_s: float | None = Field(None, gt=0.0, description=(
        "Stop the camera after this many seconds of its stream time; a live camera also stops this long after "
        "it started, connected or not (the command line's --duration sets it on every camera). None: run until "
        "the input ends or a signal."))
    enabled: bool = Field(True, description="A disabled camera is kept in the file but not opened.")
    events: EventsConfig | None = Field(None, description="This camera's event thresholds (default: the top-level events).")
    normal: NormalConfig | None = Field(None, description=(
        "This camera's own normal: `true` / `false` switches the top-level `normal` on or off for it; a mapping "
        "overrides it field by field."))
    windows: WindowConfig | None = Field(None, description="This camera's windows (length, stride, sampling), "
                                                            "field by field over the top-level windows.")
    person_score_threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="This camera's minimum person score (default: models.person_detector's, "
                                          "or models.pose's for a bottom-up model): lower for a far or dim view, "
                                          "higher for a cluttered one.")
    record: bool | None = Field(None, description="Record this camera (default: recordings.enabled).")
    geolocation: GeolocationConfig = Field(default_factory=GeolocationConfig, description=(
        "A drone camera (MISB ST 0601 metadata in its feed): the ground's height and the metadata's assumed errors, "
        "for placing its events on the ground."))
    pose_every_frames: int | None = Field(
        None, ge=1, le=100, description="How often this camera's tracked people get a new pose, in sampled frames "
                                        "(default: models.pose.every_frames): 1 where posture matters most.")
    zones: dict[str, ZoneConfig] = Field(default_factory=dict,
                                         description="Where on the picture events may open (include) or never "
                                                     "open (exclude), by name (docs/operator-guide.md: Zones).")
    labels: dict[str, str] = Field(default_factory=dict,
                                   description="runtime ray: Ray node labels this camera's actor prefers (e.g. "
                                               "building: north, to run near its feed); any node when none has them.")

    @field_validator("path")
    @classmethod
    def _path_exists(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        return None if v is None else _resolve_path(v, info, "video file")

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(URL_SCHEMES):
            raise ValueError(f"URL must start with one of {', '.join(URL_SCHEMES)}")
        for secret in url_secrets(v) if v is not None else ():
            known_secret(secret)               # masked wherever it appears, whatever it holds
        if v is not None:
            from urllib.parse import urlsplit
            try:
                parts = urlsplit(v)
                parts.port                                  # noqa: B018 - raises on a port out of range
            except ValueError as e:
                raise ValueError(f"not a valid URL: {e}") from None
            if not parts.hostname and parts.scheme not in ("udp", "srt"):       # udp://@:5000 listens
                raise ValueError("the URL names no host")
        return v

    @field_validator("device")
    @classmethod
    def _device_path(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("/dev/"):
            raise ValueError("device must be a path under /dev/, e.g. /dev/video0")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> CameraConfig:
        if sum(x is not None for x in (self.path, self.url, self.device)) != 1:
            raise ValueError("give exactly one of `path` (a file), `url` (a stream) or `device` (a local camera)")
        return self

    @property
    def target(self) -> str:
        return str(self.path) if self.path is not None else (self.url or self.device)

    @property
    def kind(self) -> str:
        """file | device | rtsp | udp | srt | http | rtmp."""
        return source_kind(self.target, is_file=self.path is not None, is_device=self.device is not None)

    @property
    def live(self) -> bool:
        """Everything but a file: its frames come whether or not the pipeline keeps up."""
        return self.path is None


class PersonDetectorConfig(_Strict):
    path: ModelFile = Field(description="ONNX detector with boxes (N, A, 4) and scores (N, A) outputs (a person "
                                        "detector, e.g. models/ssdlite_person.onnx) or scores (N, A, C) (a "
                                        "multi-class one, e.g. the COCO models/nanodet.onnx, with `class_index`).")
    class_index: int | None = Field(None, ge=0, description="For a multi-class detector: the person class "
                                                            "(0 for COCO-80).")
    score_threshold: float = Field(0.3, ge=0.0, le=1.0, description="Minimum person score.")
    nms_iou: float = Field(0.6, gt=0.0, le=1.0, description="IoU above which overlapping boxes are merged.")
    max_people: int = Field(64, ge=1, le=1000, description="Most people kept per frame (highest scores).")
    tiles: int = Field(1, ge=1, le=4, description=(
        "1: one pass over the whole frame. n > 1: also an n x n grid of overlapping crops, for people too small "
        "for the detector's input size (2 costs about 5 passes; bench/bench_people.py measures it)."))


class PoseConfig(_Strict):
    path: ModelFile = Field(description="ONNX pose model, e.g. the bundled models/pose_landmark_full.onnx (BlazePose).")
    decoder: Literal["blazepose", "simcc", "yolo_pose", "heatmaps_tags"] = Field(
        "blazepose", description="How the model's outputs become COCO-17 keypoints. Top-down, on person crops: "
                                 "`blazepose` (the bundled model), `simcc` (RTMPose). Bottom-up, on whole frames: "
                                 "`yolo_pose` (Ultralytics YOLOv8/11-pose), `heatmaps_tags` (HigherHRNet).")
    input_size: tuple[Annotated[int, Field(ge=8, le=8192)], Annotated[int, Field(ge=8, le=8192)]] | None = Field(
        None, description="Model input (width, height); default: the model's static input shape, else the decoder's usual.")
    layout: Literal["nchw", "nhwc"] | None = Field(None, description="Input layout; default: read from the model.")
    channels: Literal["rgb", "bgr"] | None = Field(None, description="Channel order the model was trained on (default rgb).")
    mean: tuple[float, float, float] | None = Field(
        None, description="Subtracted per channel, in 0..255 units, in the model's channel order "
                          "(default: 0 for blazepose/yolo_pose, ImageNet's for simcc/heatmaps_tags).")
    std: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]] | None = Field(
        None, description="Divided per channel after the mean, in 0..255 units (default 255, or ImageNet's).")
    presence_threshold: float = Field(0.5, ge=0.0, le=1.0, description="blazepose: minimum pose-present probability.")
    crop_scale: float = Field(1.25, ge=1.0, le=3.0, description="Top-down: crop size as a multiple of the person box.")
    min_box_height: float = Field(16.0, ge=0.0, le=10000.0, description="Top-down: people shorter than this (px) get no pose.")
    every_frames: int = Field(3, ge=1, le=100, description=(
        "Top-down: a tracked person gets a new pose at most every this many sampled frames, and sooner when their "
        "box changes shape (falling, bending); between, their last pose follows their box. 1: every frame "
        "(a third more CPU a stream; the same figures on the real-clip set: docs/benchmarks.md)."))
    simcc_split_ratio: float = Field(2.0, gt=0.0, le=16.0, description="simcc: classification bins per input pixel.")
    score_threshold: float = Field(0.25, ge=0.0, le=1.0, description="Bottom-up: minimum person score (yolo_pose).")
    nms_iou: float = Field(0.7, gt=0.0, le=1.0, description="yolo_pose: IoU above which overlapping people are merged.")
    peak_threshold: float = Field(0.1, ge=0.0, le=1.0, description="heatmaps_tags: minimum heatmap peak.")
    tag_threshold: float = Field(1.0, gt=0.0, le=100.0, description="heatmaps_tags: largest tag distance within one person.")

    @property
    def top_down(self) -> bool:
        return self.decoder in ("blazepose", "simcc")


class AppearanceConfig(_Strict):
    path: ModelFile = Field(description="ONNX image encoder with an `image` input (N, 3, 224, 224) RGB 0..1 and a "
                                        "`features` output (N, 1280): the bundled models/efficientnet_lite0.onnx.")
    crops: bool = Field(True, description="Also encode each person's crop (what they look like: lying, carrying, "
                                          "struggling), not only the whole frame.")


class TensorRTConfig(_Strict):
    precision: Literal["fp32", "fp16", "int8"] = Field("fp16", description="Plan precision.")
    opt_batch: int = Field(8, ge=1, le=1024, description="The batch size TensorRT tunes the plan for.")
    workspace_mb: int = Field(2048, ge=64, le=1_000_000, description="Builder workspace (scratch GPU memory).")
    cache_dir: Path | None = Field(None, description="Where built plans are kept (default "
                                                     "~/.cache/hawkwatch/tensorrt, or $HAWKWATCH_TRT_CACHE).")
    calibration_cache: Path | None = Field(None, description="int8 only: a TensorRT calibration cache file.")

    @field_validator("cache_dir")
    @classmethod
    def _cache_dir(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        base = (info.context or {}).get("base_dir")
        return None if v is None else (v if v.is_absolute() or base is None else Path(base) / v).resolve()

    @field_validator("calibration_cache")
    @classmethod
    def _calibration_exists(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        return None if v is None else _resolve_path(v, info, "calibration cache")

    @model_validator(mode="after")
    def _int8_needs_calibration(self) -> TensorRTConfig:
        if self.precision == "int8" and self.calibration_cache is None:
            raise ValueError("precision int8 needs calibration_cache")
        return self


class ModelsConfig(_Strict):
    backend: str = Field("onnxruntime", description="Engine backend by name (see engines.backend_names()).")
    fallback: list[str] = Field(default_factory=list,
                                description="Backends to try, in order, when `backend` cannot run on this machine "
                                            "(e.g. [onnxruntime] behind tensorrt). Empty: a clear error instead.")
    tensorrt: TensorRTConfig = Field(default_factory=TensorRTConfig, description="Settings of the tensorrt backend.")
    threads: int = Field(2, ge=1, le=256, description="CPU threads per engine.")
    max_batch: int = Field(16, ge=1, le=1024, description="Most images (frames or crops) in one engine call; the "
                                                           "scene stage gathers windows of all cameras up to this "
                                                           "many new frames.")
    max_wait_ms: float = Field(20.0, ge=0.0, le=10_000.0,
                               description="Longest the scene stage waits for more windows to fill a batch.")
    person_detector: PersonDetectorConfig | None = Field(
        None, description="Person boxes for a top-down pose model (not used by bottom-up ones).")
    pose: PoseConfig = Field(description="The pose model (top-down BlazePose on the person boxes, or a bottom-up multi-person model).")
    appearance: AppearanceConfig | None = Field(
        None, description="Pretrained appearance features of every sampled frame and person (EfficientNet-Lite0, "
                          "frozen: stream/scene/appearance.py), for a Hawkeye model trained with them "
                          "(its hawkeye.json has appearance_dim 1280). Absent: none computed.")

    @model_validator(mode="after")
    def _top_down_needs_detector(self) -> ModelsConfig:
        if self.pose.top_down and self.person_detector is None:
            raise ValueError(f"pose decoder {self.pose.decoder} is top-down and needs person_detector "
                             "(e.g. path: models/ssdlite_person.onnx)")
        return self

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, v: str) -> str:
        from engines import backend_names
        if v not in backend_names():
            raise ValueError(f"unknown backend {v!r}; choose one of {', '.join(backend_names())}")
        return v

    @field_validator("fallback")
    @classmethod
    def _known_fallbacks(cls, v: list[str]) -> list[str]:
        from engines import backend_names
        for name in v:
            if name not in backend_names():
                raise ValueError(f"unknown backend {name!r}; choose from {', '.join(backend_names())}")
        return v

    def engine_options(self) -> dict[str, dict]:
        """Per-backend options for engines.create_engine."""
        t = self.tensorrt
        trt = {"precision": t.precision, "opt_batch": min(t.opt_batch, self.max_batch), "max_batch": self.max_batch,
               "workspace_mb": t.workspace_mb, "calibration_cache": t.calibration_cache}
        if t.cache_dir is not None:
            trt["cache_dir"] = t.cache_dir
        return {"tensorrt": trt}


class TrackingConfig(_Strict):
    iou_threshold: float = Field(0.3, gt=0.0, le=1.0, description="Least IoU to continue a track.")
    max_age_s: float = Field(2.0, gt=0.0, le=60.0, description="A track unseen this long is ended.")
    max_jump: float = Field(0.6, ge=0.0, le=10.0,
                            description="With no overlap, a track continues to a detection this many body "
                                        "heights from where it was predicted (0, and max_speed 0: overlap only).")
    max_speed: float = Field(3.5, ge=0.0, le=20.0,
                             description="...or as far as this many body heights a second carry a person since the "
                                         "track was last seen (a sprinter: 3-4; at 2 sampled frames a second a "
                                         "runner moves over a body height between frames).")
    high_score: float = Field(0.5, ge=0.0, le=1.0,
                              description="Detections at least this confident start tracks and match first; weaker "
                                          "ones (down to person_detector.score_threshold) only continue tracks "
                                          "(ByteTrack's second round).")


class MotionConfig(_Strict):
    enabled: bool = Field(True, description="Compute Farneback optical flow between sampled frames (Hawk's motion).")
    width: int = Field(160, ge=32, le=4096, description="Flow is computed on frames scaled to this width (px).")
    min_speed: float = Field(0.02, gt=0.0, le=10.0,
                             description="Pixels moving faster than this (frame heights per second) count as moving.")
    people_on_motion: bool = Field(True, description=(
        "Search for people (detector and pose) only on sampled frames where something moved since the camera's "
        "previous one; a still frame keeps the last people found. A quiet camera then costs a fraction of a busy one "
        "(docs/benchmarks.md, Streams per machine). false: every sampled frame is searched."))
    still_below: float = Field(0.0005, ge=0.0, le=1.0, description=(
        "A frame is still when less than this share of it moves (0.0005: about 10 pixels of the 160-wide flow)."))
    search_every_s: float = Field(4.0, gt=0.0, le=3600.0, description=(
        "People are searched for at least this often however still the frames are (someone who came in too slowly "
        "to show as motion)."))


class NamedObjectsConfig(_Strict):
    path: ModelFile = Field(description="ONNX COCO-80 detector with boxes (N, A, 4) and scores (N, A, 80) outputs, "
                                        "e.g. the bundled models/nanodet.onnx.")
    score_threshold: float = Field(0.4, ge=0.0, le=1.0, description="Minimum class score.")
    nms_iou: float = Field(0.5, gt=0.0, le=1.0, description="IoU above which boxes of one class are merged.")
    every_s: float = Field(0.0, ge=0.0, le=60.0,
                           description="Run the detector on a camera's sampled frames at most once this often "
                                       "(seconds; frames between reuse its last result). 0: every sampled frame.")


class ObjectsConfig(_Strict):
    enabled: bool = Field(True, description="Find left objects: things that stay put where the background was, "
                                            "away from people (stream/scene/objects.py).")
    width: int = Field(320, ge=64, le=4096, description="Frames are compared at this width (px).")
    history_s: float = Field(60.0, ge=5.0, le=3600.0,
                             description="The background is the median of one frame a second over this long.")
    still_s: float = Field(2.0, gt=0.0, le=60.0, description="An object must not change for this long to count.")
    threshold: int = Field(28, ge=1, le=255, description="Grey-level difference that counts as a change.")
    max_unseen_s: float = Field(3.0, ge=0.0, le=60.0,
                                description="An object not found (hidden by a passer-by) is kept this long.")
    named: NamedObjectsConfig | None = Field(
        None, description="Objects with names from a COCO detector (bags, bicycles, vehicles...: "
                          "stream/scene/named_objects.py), in the relation graph by their VG150 class; left "
                          "objects stay the fallback for what no class covers. Absent: left objects only.")



class BaselineConfig(_Strict):
    run_speed: float = Field(1.6, gt=0.0, le=20.0,
                             description="Speed (body heights per second) at which `running` scores 0.5.")
    fall_angle_deg: float = Field(55.0, gt=0.0, le=90.0,
                                  description="Torso angle from vertical at which `fall` scores 0.5.")
    scuffle_distance: float = Field(0.6, gt=0.0, le=5.0,
                                    description="Distance (body heights) under which two people count as in contact.")
    scuffle_limb_speed: float = Field(2.5, gt=0.0, le=50.0,
                                      description="Wrist speed relative to the body (heights/s) at which contact "
                                                  "becomes a `scuffle` at 0.5.")
    loiter_s: float = Field(10.0, gt=0.0, le=3600.0,
                            description="Seconds a person stays in place (their dwell) at which `loitering` scores 0.5.")
    abandoned_s: float = Field(6.0, gt=0.0, le=3600.0,
                               description="Seconds a left object has been there, with nobody within "
                                           "`abandoned_distance`, at which `abandoned` scores 0.5.")
    abandoned_distance: float = Field(1.0, gt=0.0, le=20.0,
                                      description="A person within this many body heights of an object attends it.")
    softness: float = Field(0.15, gt=0.0, le=1.0,
                            description="Width of each logistic ramp, as a fraction of its threshold.")


class HawkeyeDetectorConfig(_Strict):
    model: Path = Field(description="A Hawkeye model directory (written by training: lm/, tokenizer/, "
                                    "hawkeye.json, encoder.pt, and lora/ unless merged).")
    lm: Path | None = Field(None, description="Another local Hugging Face checkpoint directory for the LM (e.g. a "
                                             "Vicuna) instead of the model directory's own lm/. Nothing is downloaded.")
    threads: int = Field(2, ge=1, le=256, description="CPU threads for the model.")
    device: Literal["cpu", "cuda", "auto"] = Field(
        "cpu", description="Where the model runs; auto: the GPU when torch sees one (CUDA torch build needed).")
    max_batch: int = Field(16, ge=1, le=1024, description="Most windows, of any cameras, in one model call.")
    max_wait_ms: float = Field(50.0, ge=0.0, le=10_000.0,
                               description="Longest a window waits for others to fill a batch.")
    explain: bool = Field(True, description="Generate an explanation when an event opens (sent as an alert update).")

    @field_validator("model", "lm")
    @classmethod
    def _directory(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        if v is None:
            return None
        v = _any_path(v, info)
        if (info.context or {}).get("check_files", True) and not v.is_dir():
            raise ValueError(f"{v}: no such model directory")
        return v


class DetectorConfig(_Strict):
    name: str = Field("baseline", description="Which detector turns scene graphs into verdicts: `baseline` or "
                                              "`hawkeye` (stream/detection/registry.py; checked when it is built).")
    baseline: BaselineConfig = Field(default_factory=BaselineConfig,
                                     description="The kinematic baseline detector's rules (name: baseline).")
    hawkeye: HawkeyeDetectorConfig | None = Field(None, description="The Hawkeye model (name: hawkeye).")

    @model_validator(mode="after")
    def _hawkeye_needs_a_model(self) -> DetectorConfig:
        if self.name == "hawkeye" and self.hawkeye is None:
            raise ValueError("detector hawkeye needs detector.hawkeye.model (a model directory)")
        return self


class OutboxConfig(_Strict):
    path: Path = Field(Path("var/outbox.sqlite"),
                       description="The SQLite file every alert is written to before it is sent (created).")
    synchronous: Literal["full", "normal"] = Field(
        "full", description="full: each alert is on disk before it is sent (survives a power cut); "
                            "normal: survives the process being killed, not the machine.")
    max_age_days: float | None = Field(30.0, gt=0.0, description="Alerts older than this are removed (None: kept).")
    max_mb: float | None = Field(512.0, gt=0.0, description="The oldest alerts are removed beyond this much data.")

    _path = field_validator("path")(_any_path)


class EvidenceConfig(_Strict):
    enabled: bool = Field(True, description="Save a keyframe and a clip for every opened event.")
    folder: Path = Field(Path("var/evidence"), description="Where evidence goes, as <camera>/<date>/<alert id>.jpg|.mp4.")
    fps: float = Field(5.0, gt=0.0, le=30.0, description="Frames per second kept for clips (plus the frames the models see).")
    pre_s: float = Field(3.0, ge=0.0, le=60.0, description="Seconds of clip before the event's span.")
    post_s: float = Field(3.0, ge=0.0, le=60.0, description="Seconds of clip after the span (as known when it opened).")
    buffer_s: float = Field(30.0, gt=0.0, le=600.0, description="Seconds of stream each camera keeps in memory for clips.")
    wait_s: float = Field(10.0, ge=0.0, le=120.0, description="Longest wall time to wait for the clip's last seconds to arrive.")
    jpeg_quality: int = Field(85, ge=10, le=100, description="JPEG quality of the keyframes.")
    max_age_days: float | None = Field(30.0, gt=0.0, description="Files older than this are removed (None: kept).")
    max_mb: float | None = Field(2048.0, gt=0.0, description="The oldest files are removed beyond this much data.")

    _folder = field_validator("folder")(_any_path)

    @model_validator(mode="after")
    def _buffer_holds_a_clip(self) -> EvidenceConfig:
        if self.buffer_s < self.pre_s + self.post_s:
            raise ValueError(f"buffer_s ({self.buffer_s}) must hold pre_s + post_s ({self.pre_s + self.post_s})")
        return self


class CurveConfig(_Strict):
    secret_key: Path = Field(description="The pipeline's key pair (NAME.key_secret; python -m stream.alerts.security).")
    allowed_clients: Path = Field(description="Folder of the public keys (*.key) of subscribers allowed in.")

    @field_validator("secret_key", "allowed_clients")
    @classmethod
    def _exists(cls, v: Path, info: ValidationInfo) -> Path:
        v = _any_path(v, info)
        if (info.context or {}).get("check_files", True) and not v.exists():
            raise ValueError(f"{v} does not exist (make keys with `python -m stream.alerts.security`)")
        return v


class MqttTlsConfig(_Strict):
    ca_file: Path | None = Field(None, description="The CA certificate(s) the broker's certificate is checked "
                                                   "against (PEM); default: the system's.")
    certfile: Path | None = Field(None, description="A client certificate (PEM), for brokers that ask for one.")
    keyfile: Path | None = Field(None, description="Its private key (PEM).")

    @field_validator("ca_file", "certfile", "keyfile")
    @classmethod
    def _exists(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        return None if v is None else _resolve_path(v, info, info.field_name)

    @model_validator(mode="after")
    def _pair(self) -> MqttTlsConfig:
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("certfile and keyfile go together")
        return self


class MqttConfig(_Strict):
    host: str = Field(description="The MQTT broker (e.g. Mosquitto, Home Assistant's).")
    port: int = Field(1883, ge=1, le=65535, description="The broker's port (8883 is the usual one for TLS).")
    topic_prefix: str = Field("hawkwatch", description="Messages go to <prefix>/alert/<camera>, <prefix>/health/<camera>.")
    qos: Literal[0, 1, 2] = Field(1, description="MQTT quality of service of the published alerts.")
    username: str | None = Field(None, description="The broker account, if it asks for one.")
    password_env: str | None = Field(None, description="The environment variable holding the password.")
    client_id: str = Field("hawkwatch", description="The MQTT client id (unique per broker).")
    topics: list[Literal["alert", "health", "verdict"]] = Field(["alert", "health"], description="What is bridged.")
    tls: MqttTlsConfig | None = Field(None, description="Connect over TLS (the broker's port is then usually 8883).")
    availability: bool = Field(True, description="Keep <prefix>/status at 'online' while connected (retained), "
                                                 "'offline' once stopped or gone (the broker's last will).")
    discovery_prefix: str | None = Field(
        "homeassistant", description="Announce each camera to Home Assistant (MQTT discovery) under this prefix: an "
                                     "'anomaly' binary sensor and a 'state' sensor per camera; None: no discovery.")


class CotTlsConfig(MqttTlsConfig):
    certfile: Path | None = Field(None, description="The client certificate (PEM) the TAK server enrols (from a "
                                                    "TAK .p12: `openssl pkcs12 -in user.p12 -clcerts -nokeys`).")
    keyfile: Path | None = Field(None, description="Its private key (PEM; `openssl pkcs12 -in user.p12 -nocerts`).")
    password_env: str | None = Field(None, description="The environment variable holding the key's passphrase, "
                                                       "when the key is encrypted.")
    check_hostname: bool = Field(True, description="Check that the server's certificate names the endpoint's host; "
                                                   "false checks the chain only (certificates made by TAK Server's "
                                                   "scripts often name the server in the CN alone).")


COT_SCHEMES = ("udp", "tcp", "tls")


class CotConfig(_Strict):
    endpoint: str = Field(description="Where the events go: udp://HOST:PORT (one datagram each; 239.2.3.1:6969 is "
                                      "TAK's situational-awareness multicast group), tcp://HOST:PORT (a TAK Server's "
                                      "plain input, usually 8087) or tls://HOST:PORT (its TLS input, usually 8089).")
    event_type: str = Field("a-u-G", pattern=r"^[a-z](-[A-Za-z0-9.]+)*$",
                            description="The CoT type of an event's marker. a-u-G: an unknown ground point (a "
                                        "yellow marker the operator can re-type as hostile); a-h-G once they "
                                        "trust the detector's judgement.")
    how: str = Field("m-g", pattern=r"^[hm](-[a-zA-Z]+)*$",
                     description="The CoT `how`: m-g, machine-made from the platform's GPS and the camera's geometry.")
    stale_s: float = Field(300.0, gt=0.0, le=86400.0,
                           description="A marker goes stale this long after its latest message, if no update or "
                                       "close comes first (the pipeline stopped, a datagram was lost).")
    uid_prefix: str = Field("hawkwatch", pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                            description="Event uids are <prefix>.<alert_id>, so an event's updates move its marker.")
    callsign: str = Field("Hawkwatch", min_length=1, max_length=64,
                          description="The sender's callsign, shown in each marker's label and as its creator.")
    console_url: str | None = Field(None, pattern=r"^https?://[^\s]+$",
                                    description="The web console's base URL as TAK users reach it (e.g. "
                                                "https://hawkwatch.example:8080): each marker links to its event page.")
    ttl: int = Field(1, ge=1, le=255, description="Multicast hops of udp:// datagrams to a multicast group "
                                                  "(1: the local network only).")
    queue_size: int = Field(1000, ge=1, le=1_000_000,
                            description="tcp/tls: events held while the server is away; past it the oldest is "
                                        "dropped (and counted).")
    tls: CotTlsConfig | None = Field(None, description="The certificates of a tls:// endpoint.")

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        cot_address(v)
        return v

    @model_validator(mode="after")
    def _tls_with_tls(self) -> CotConfig:
        scheme = self.endpoint.partition("://")[0]
        if scheme == "tls" and self.tls is None:
            raise ValueError("a tls:// endpoint needs `tls` (ca_file, certfile and keyfile: TAK servers ask for a "
                             "client certificate)")
        if scheme != "tls" and self.tls is not None:
            raise ValueError(f"`tls` is set but the endpoint is {scheme}://: use tls://HOST:PORT")
        return self


def cot_address(endpoint: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a CoT endpoint, or a ValueError that says what is wrong with it."""
    from urllib.parse import urlsplit

    form = "udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT"
    scheme, sep, _ = endpoint.partition("://")
    if not sep or scheme not in COT_SCHEMES:
        raise ValueError(f"{endpoint!r} must be {form}")
    parts = urlsplit(endpoint)
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{endpoint!r}: the port must be a number from 1 to 65535") from None
    if not parts.hostname:
        raise ValueError(f"{endpoint!r} has no host: {form}")
    if port is None or port == 0:
        raise ValueError(f"{endpoint!r} has no port: {form}")
    if parts.path or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{endpoint!r}: only {form}, nothing after the port")
    return scheme, parts.hostname, port


class AlertsConfig(_Strict):
    endpoint: str = Field("tcp://127.0.0.1:5556", description="ZeroMQ PUB endpoint to bind.")
    query_endpoint: str | None = Field(
        "auto", description="ZeroMQ ROUTER endpoint where subscribers fetch missed alerts by number. `auto`: "
                            "`endpoint`'s host and port + 1, where subscribers look for it (None: no catch-up).")
    chat_endpoint: str | None = Field(
        "auto", description="ZeroMQ ROUTER endpoint where users ask the model about a camera's recent windows "
                            "(python -m stream.alerts.chat). `auto`: `endpoint`'s host and port + 2 (None: no chat).")
    health_interval_s: float = Field(5.0, gt=0.0, le=3600.0, description="Seconds between health messages.")
    publish_verdicts: bool = Field(True, description="Also publish every window's verdict on verdict/<camera>.")
    wait_for_subscriber_s: float = Field(
        0.0, ge=0.0, le=600.0,
        description="Before starting, wait up to this long for a first subscriber (0: do not wait).")
    send_hwm: int = Field(10000, ge=1, le=10_000_000, description="Messages queued per subscriber before drops.")
    outbox: OutboxConfig = Field(default_factory=OutboxConfig,
                                 description="The SQLite store every alert is written to before it is sent.")
    evidence: EvidenceConfig = Field(default_factory=EvidenceConfig,
                                     description="Each alert's keyframe and clip, written beside the outbox.")
    curve: CurveConfig | None = Field(None, description="CURVE encryption and client authentication for both endpoints.")
    allow_plaintext: bool = Field(False, description="Allow endpoints reachable from other machines without CURVE.")
    mqtt: MqttConfig | None = Field(None, description="Also bridge messages to an MQTT broker.")
    cot: CotConfig | None = Field(None, description="Also send alerts that carry a position (drone feeds) to TAK "
                                                    "(ATAK, WinTAK, TAK Server) as Cursor on Target events.")

    @field_validator("endpoint", "query_endpoint", "chat_endpoint")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if v is not None and v != "auto" and not v.startswith(("tcp://", "ipc://", "inproc://")):
            raise ValueError("endpoint must be tcp://HOST:PORT, ipc://PATH or inproc://NAME")
        return v

    @model_validator(mode="before")
    @classmethod
    def _beside_endpoint(cls, data):
        """`auto` endpoints: beside `endpoint` (tcp: its port + 1 for catch-up, + 2 for chat)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        main = data.get("endpoint", cls.model_fields["endpoint"].default)
        for key, offset in (("query_endpoint", 1), ("chat_endpoint", 2)):
            if data.get(key, "auto") == "auto" and isinstance(main, str) and main.startswith(("tcp://", "ipc://",
                                                                                              "inproc://")):
                data[key] = beside(main, offset)
                if data[key] is None:
                    raise ValueError(f"{key}: auto needs `endpoint` as tcp://HOST:PORT with a port below "
                                     f"{65536 - offset}, ipc://PATH or inproc://NAME (it is {main}): give {key}")
        return data

    @model_validator(mode="after")
    def _plaintext_only_on_loopback(self) -> AlertsConfig:
        endpoints = {"endpoint": self.endpoint, "query_endpoint": self.query_endpoint,
                     "chat_endpoint": self.chat_endpoint}
        for name, ep in endpoints.items():
            if ep is not None and self.curve is None and not self.allow_plaintext and not is_loopback(ep):
                raise ValueError(f"{name} {ep} is reachable from other machines: set alerts.curve (encryption and "
                                 "authentication) or, on a network you trust, alerts.allow_plaintext: true")
        named = [(name, ep, _bind_keys(ep)) for name, ep in endpoints.items() if ep is not None]
        for i, (name, ep, keys) in enumerate(named):
            for other, other_ep, other_keys in named[:i]:
                if any(_overlap(k, o) for k in keys for o in other_keys):
                    raise ValueError(f"{name} {ep} is the same address as {other} {other_ep}: endpoint, "
                                     "query_endpoint and chat_endpoint must differ")
        return self


def beside(endpoint: str, offset: int) -> str | None:
    """The endpoint `offset` places after a pipeline's alerts.endpoint, laid out as `auto` does:
    tcp://HOST:PORT+offset, or the ipc path or inproc name with `.query` (1) or `.chat` (2)
    added; None where there is none (no port, or past 65535)."""
    scheme, _, rest = endpoint.partition("://")
    if scheme in ("ipc", "inproc"):
        return f"{endpoint}.{ {1: 'query', 2: 'chat'}[offset] }"
    head, _, port = endpoint.rpartition(":")
    if scheme != "tcp" or not port.isdigit() or int(port) + offset > 65535:
        return None
    return f"{head}:{int(port) + offset}"


def _bind_keys(endpoint: str) -> set[tuple]:
    """What a bind of `endpoint` takes: ("tcp", address, port) for each address its host resolves
    to (`*` and 0.0.0.0 are "*", every address), or (scheme, path) for ipc and inproc."""
    scheme, _, rest = endpoint.partition("://")
    if scheme != "tcp":
        return {(scheme, str(Path(rest).resolve()) if scheme == "ipc" else rest, None)}
    host, _, port = rest.rpartition(":")
    host = host.strip("[]")
    if host in ("*", "0.0.0.0", "::"):
        return {("tcp", "*", port)}
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return {("tcp", host, port)}          # an interface name (tcp://eth0:5556): compared as written
    return {("tcp", info[4][0], port) for info in infos}


def _overlap(a: tuple, b: tuple) -> bool:
    """Whether two bind keys take the same address (a tcp wildcard takes every address of its port)."""
    if a[0] != b[0] or a[2] != b[2]:
        return False
    return a[1] == b[1] or (a[0] == "tcp" and "*" in (a[1], b[1]))


class QueuesConfig(_Strict):
    windows: int = Field(8, ge=1, le=10_000, description="Windows waiting for the scene stage, per scene worker.")
    windows_policy: Literal["auto", "block", "drop_oldest"] = Field(
        "auto", description="When the windows queue is full: `block` the source (lossless), `drop_oldest` "
                            "(latency never grows; drops are counted), or `auto`: block for files, drop for live.")
    scenes: int = Field(8, ge=1, le=10_000, description="Scene graphs waiting for the detector.")
    publish: int = Field(10_000, ge=1, le=1_000_000, validation_alias=AliasChoices("publish", "outbox"),
                         description="Verdicts and alerts waiting for the publisher (in memory; the outbox is "
                                     "where alerts are stored). Also read under its former name, `outbox`.")


class HttpConfig(_Strict):
    endpoint: str = Field("127.0.0.1:8080", description="HOST:PORT the HTTP API (and /metrics) listens on.")
    token_env: str | None = Field(None, description="The environment variable holding the bearer token clients "
                                                    "must send (Authorization: Bearer ...); without one, the API "
                                                    "listens on loopback only.")
    token_file: Path | None = Field(None, description="Or a file holding it (a Docker or systemd secret, e.g. "
                                                      "/run/secrets/hawkwatch_token).")
    certfile: Path | None = Field(None, description="A PEM certificate: serve HTTPS (with keyfile).")
    keyfile: Path | None = Field(None, description="The certificate's PEM private key.")
    reviews: Path | None = Field(None, description="Where the console's event reviews are kept (SQLite); default: "
                                                   "reviews.sqlite beside the outbox.")
    zones_file: Path | None = Field(None, description="Where zones drawn on the console are kept across restarts "
                                                      "(they replace the camera's zones in this config); default: "
                                                      "zones.yaml beside the outbox.")
    allowed_hosts: list[str] | None = Field(
        None, description="Host names the server answers to (the Host header, any port); others get 400, which "
                          "stops DNS rebinding. Default: on loopback, localhost and the loopback addresses; "
                          "elsewhere any (the token guards it).")
    max_body_kb: int = Field(1024, ge=1, le=1_048_576, description="Requests with a larger body get 413.")
    header_timeout_s: float = Field(10.0, gt=0.0, le=600.0,
                                    description="A connection whose request has not arrived within this is closed.")
    max_connections: int = Field(500, ge=1, le=100_000, description="Connections and requests at once; more get 503.")
    session_hours: float = Field(12.0, gt=0.0, le=24 * 365, description="How long a console sign-in lasts.")

    _files = field_validator("certfile", "keyfile", "reviews", "token_file", "zones_file")(lambda v, info: None if v is None else _any_path(v, info))

    @model_validator(mode="after")
    def _safe(self) -> HttpConfig:
        host, _, port = self.endpoint.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"endpoint {self.endpoint!r} must be HOST:PORT")
        if self.token_env is not None and self.token_file is not None:
            raise ValueError("token_env and token_file are two ways to give one token: set one")
        if self.token_env is None and self.token_file is None and not is_loopback(f"tcp://{self.endpoint}"):
            raise ValueError(f"endpoint {self.endpoint} is reachable from other machines: set token_env or "
                             "token_file (a bearer token clients must send), or listen on 127.0.0.1")
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("certfile and keyfile go together")
        return self


class ActorResources(_Strict):
    num_cpus: float = Field(1.0, ge=0.0, le=1024.0, description="CPUs Ray reserves for each actor.")
    num_gpus: float = Field(0.0, ge=0.0, le=64.0, description="GPUs Ray reserves for each actor (fractions share one).")
    labels: dict[str, str] = Field(default_factory=dict,
                                   description="Ray node labels the actors prefer (e.g. hawkwatch/gpu: 'true'); "
                                               "any node when none has them.")


class ModelPoolConfig(ActorResources):
    actors: int = Field(1, ge=1, le=1024, description="Model actors; windows of every camera are batched across them.")


class RuntimeConfig(_Strict):
    engine: Literal["local", "ray"] = Field(
        "local", description="local: threads in this process; ray: actors on a Ray cluster (docs/deploying.md: Running on a Ray cluster).")
    address: str = Field("auto", description="ray: the cluster to join: auto (the one `ray start` runs here), "
                                             "HOST:PORT of its head, ray://HOST:PORT (Ray Client), or local (a "
                                             "private one-machine cluster started for this run).")
    cameras: ActorResources = Field(default_factory=ActorResources,
                                    description="ray: each camera's actor (ingest and scene stage).")
    models: ModelPoolConfig = Field(default_factory=ModelPoolConfig,
                                    description="ray: the pool of model actors.")
    scene_workers: int = Field(
        1, ge=1, le=64, description="local: threads that build scene graphs, each camera on one of them, each "
                                    "with its own copy of the scene models. ONNX Runtime and OpenCV release the "
                                    "GIL, so more workers use more cores; keep scene_workers x models.threads near "
                                    "the machine's cores.")
    in_flight: int = Field(4, ge=1, le=1000,
                           description="ray: most windows of one camera between its actor and the model pool; a live "
                                       "camera then drops its oldest (counted), a file waits.")
    max_restarts: int = Field(-1, ge=-1, le=1_000_000,
                              description="ray: how often a dead actor is restarted (-1: always).")
    start_timeout_s: float = Field(300.0, gt=0.0, le=86_400.0,
                                   description="ray: longest wait for a worker to be placed on a node and load its "
                                               "models; then its camera fails (a model worker: the run does not start).")


class RecordingsConfig(_Strict):
    enabled: bool = Field(False, description="Record every camera continuously (a camera's `record` overrides it).")
    folder: Path = Field(Path("var/recordings"), description="Where segments go, as <camera>/<date>/<start>-<end>.mp4.")
    segment_s: float = Field(10.0, ge=1.0, le=600.0, description="Segment length: a new one at the first keyframe "
                                                                  "after this long.")
    keep_days: float = Field(7.0, gt=0.0, le=3650.0, description="Plain footage older than this is deleted.")
    keep_event_days: float = Field(30.0, gt=0.0, le=3650.0,
                                   description="Segments overlapping an event (in the outbox) are kept this long.")
    max_gb: float | None = Field(None, gt=0.0, description="Beyond this much footage, the oldest goes first (plain "
                                                           "footage before events'); None: only the days limit.")
    min_free_gb: float = Field(1.0, ge=0.0, description="Below this much free disk, the oldest footage goes too, and "
                                                        "health reports the disk as full.")

    _folder = field_validator("folder")(_any_path)


class HawkwatchConfig(_Strict):
    version: Literal[1] = Field(1, description="Config schema version.")
    replay: Literal["realtime", "fast"] = Field("realtime", description="Default replay mode for file cameras.")
    cameras: dict[CameraId, CameraConfig] = Field(min_length=1, description="Cameras by id (used in topics).")
    ingest: IngestConfig = Field(default_factory=IngestConfig, description="Defaults for every live camera.")
    windows: WindowConfig = Field(default_factory=WindowConfig, description="How streams are cut into "
                                  "sliding windows (length, stride, frames sampled a second).")
    models: ModelsConfig = Field(description="The vision models of the scene stage and the engine that runs them.")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="The person tracker.")
    motion: MotionConfig = Field(default_factory=MotionConfig, description="Optical flow (the motion cue).")
    objects: ObjectsConfig = Field(default_factory=ObjectsConfig,
                                   description="Objects left behind, and named objects (bags, bikes, cars).")
    detector: DetectorConfig = Field(default_factory=DetectorConfig,
                                     description="What scores each second: the Hawkeye model or the kinematic baseline.")
    events: EventsConfig = Field(default_factory=EventsConfig,
                                 description="How per-second scores become events (hysteresis, durations).")
    normal: NormalConfig = Field(default_factory=NormalConfig, description="Each camera's own normal (off unless "
                                                                          "enabled, here or per camera).")
    alerts: AlertsConfig = Field(default_factory=AlertsConfig, description="Where alerts go: ZeroMQ "
                                 "endpoints, the outbox, evidence, MQTT.")
    queues: QueuesConfig = Field(default_factory=QueuesConfig,
                                 description="Bounded queues between the stages.")
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig, description="What runs the stages (local or ray).")
    http: HttpConfig | None = Field(None, description="The web console, the HTTP API and Prometheus /metrics "
                                                      "(None: off).")
    recordings: RecordingsConfig = Field(default_factory=RecordingsConfig,
                                         description="Continuous recording by remux, with retention (off unless enabled).")

    @model_validator(mode="before")
    @classmethod
    def _camera_defaults(cls, data):
        """Merge the top-level defaults (`replay`, `ingest`) into each camera, so runtime code sees
        resolved cameras."""
        if isinstance(data, dict) and isinstance(data.get("cameras"), dict):
            replay = data.get("replay", "realtime")
            ingest = data.get("ingest") or {}
            try:                  # a mistake in the defaults is reported once, at ingest.<key>, not per camera
                IngestConfig.model_validate(ingest)
            except ValidationError:
                ingest = {}

            windows = data.get("windows") or {}
            normal = data.get("normal") if isinstance(data.get("normal"), dict) else {}

            def merged(cam):
                if not isinstance(cam, dict):
                    return cam
                own = cam.get("ingest") or {}
                both = {**ingest, **own} if isinstance(ingest, dict) and isinstance(own, dict) else own
                out = {"replay": replay, **cam, **({"ingest": both} if both else {})}
                if isinstance(cam.get("windows"), dict) and isinstance(windows, dict):
                    out["windows"] = {**windows, **cam["windows"]}   # the camera's own, field by field
                own_normal = cam.get("normal")
                if isinstance(own_normal, bool):                      # a switch over the top-level normal
                    out["normal"] = {**normal, "enabled": own_normal}
                elif isinstance(own_normal, dict):
                    out["normal"] = {**normal, **own_normal}
                return out
            data = {**data, "cameras": {k: merged(v) for k, v in data["cameras"].items()}}
        return data

    @model_validator(mode="after")
    def _some_camera_enabled(self) -> HawkwatchConfig:
        if not any(c.enabled for c in self.cameras.values()):
            raise ValueError("no camera is enabled")
        return self

    @model_validator(mode="after")
    def _normal_needs_embeddings(self) -> HawkwatchConfig:
        learning = [c for c in self.cameras if self.normal_of(c).enabled and self.cameras[c].enabled]
        if learning and self.detector.name != "hawkeye":
            raise ValueError(f"normal: camera {learning[0]} learns its own normal, which needs the scene embeddings "
                             f"of detector hawkeye (detector.name is {self.detector.name}); switch normal off or use "
                             "hawkeye")
        return self

    def normal_of(self, camera: str) -> NormalConfig:
        """What `camera` learns of its own normal: the top-level `normal`, switched or replaced by its own."""
        own = self.cameras[camera].normal if camera in self.cameras else None
        return own if own is not None else self.normal

    def records(self, camera: str) -> bool:
        """Whether `camera` is recorded: its own `record`, else recordings.enabled."""
        own = self.cameras[camera].record if camera in self.cameras else None
        return self.recordings.enabled if own is None else own

    def windows_of(self, camera: str) -> WindowConfig:
        """The windows `camera` is cut into: its own, or the top-level ones."""
        cam = self.cameras.get(camera)
        return cam.windows if cam is not None and cam.windows is not None else self.windows

    def windows_policy_of(self, camera: CameraConfig) -> str:
        """What a full windows queue does to a camera's windows: `queues.windows_policy`, where
        `auto` drops the oldest window of a live camera (real time matters more than every window)
        and blocks a file (nothing is lost)."""
        configured = self.queues.windows_policy
        if configured != "auto":
            return configured
        return "drop_oldest" if camera.live else "block"

    def events_of(self, camera: str) -> EventsConfig:
        """The event thresholds `camera` runs with: its own, or the top-level ones."""
        cam = self.cameras.get(camera)
        return cam.events if cam is not None and cam.events is not None else self.events


RELOADED = ("cameras", "ingest", "replay")     # what a running pipeline takes from a re-read config


def reloaded(running: HawkwatchConfig, new: HawkwatchConfig) -> tuple[HawkwatchConfig, list[str]]:
    """What a running pipeline runs after re-reading its config (its cameras and their defaults
    from `new`, the rest as it started), and the top-level keys whose changes wait for a restart."""
    ignored = [k for k in HawkwatchConfig.model_fields if k not in RELOADED and getattr(new, k) != getattr(running, k)]
    return running.model_copy(update={k: getattr(new, k) for k in RELOADED}), ignored


def with_overrides(cfg: HawkwatchConfig, *, replay: str | None = None, loop: bool | None = None,
                   duration_s: float | None = None) -> HawkwatchConfig:
    """The config with the command line's overrides applied to every camera (`--replay`, `--loop`,
    `--duration`); None leaves each camera's own setting."""
    update = {k: v for k, v in (("replay", replay), ("loop", loop), ("duration_s", duration_s)) if v is not None}
    if not update:
        return cfg
    return cfg.model_copy(update={"cameras": {cam: c.model_copy(update=update) for cam, c in cfg.cameras.items()}})


def summary(cfg: HawkwatchConfig, source: str) -> str:
    """One line that says what a config runs: the file, the cameras, the detector, the runtime and
    where alerts go (camera targets with their credentials taken out)."""
    from stream.redact import redact
    enabled = {cam: c for cam, c in cfg.cameras.items() if c.enabled}
    cams = ", ".join(f"{cam} ({c.kind} "
                     f"{redact(c.target)})" for cam, c in enabled.items())
    det = cfg.detector
    model = f"hawkeye {det.hawkeye.model} on {det.hawkeye.device}" if det.name == "hawkeye" else "baseline"
    rt = cfg.runtime
    runtime = "local" if rt.engine == "local" else f"ray at {rt.address}"
    a = cfg.alerts
    alerts = f"alerts on {a.endpoint}" + (f", catch-up {a.query_endpoint}" if a.query_endpoint else "") + \
        (f", chat {a.chat_endpoint}" if a.chat_endpoint else "") + (f", MQTT {a.mqtt.host}:{a.mqtt.port}" if a.mqtt else "") + \
        (f", CoT {a.cot.endpoint}" if a.cot else "")
    where = f"outbox {a.outbox.path}" + (f", evidence {a.evidence.folder}" if a.evidence.enabled else "")
    console = f"; console {'https' if cfg.http.certfile else 'http'}://{cfg.http.endpoint}/" if cfg.http else ""
    return (f"config {source}: {len(enabled)} camera(s): {cams}; detector {model}; "
            f"runtime {runtime}; {alerts}{' (CURVE)' if a.curve else ''}; {where}{console}")


def _keys_at(loc: tuple) -> list[str]:
    """The keys the schema accepts beside the last element of `loc` (for a "did you mean")."""
    import typing

    node: object = HawkwatchConfig
    steps = list(loc[:-1])
    while steps:
        if isinstance(node, type) and issubclass(node, BaseModel):
            field = node.model_fields.get(str(steps.pop(0)))
            if field is None:
                return []
            node = field.annotation
        elif typing.get_origin(node) is dict:
            steps.pop(0)                                 # a camera id, a zone name...
            node = typing.get_args(node)[1]
        else:                                            # X | None: the model in it
            node = next((a for a in typing.get_args(node) if isinstance(a, type) and issubclass(a, BaseModel)
                         or typing.get_origin(a) is dict), None)
            if node is None:
                return []
    while not (isinstance(node, type) and issubclass(node, BaseModel)):
        node = next((a for a in typing.get_args(node) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if node is None:
            return []
    return list(node.model_fields)


def _format(err: ValidationError, source: str) -> str:
    """The first error, as one line: an unknown key (a typo, with the key it may have meant) comes
    before what it leaves missing."""
    import difflib

    errors = err.errors()
    e = next((x for x in errors if x["type"] == "extra_forbidden"), errors[0])
    where = ".".join(str(p) for p in e["loc"]) or "(top level)"
    msg = e["msg"].removeprefix("Value error, ")
    if e["type"] == "extra_forbidden":
        close = difflib.get_close_matches(str(e["loc"][-1]), _keys_at(e["loc"]), n=1)
        msg = "unknown key" + (f" (did you mean {close[0]}?)" if close else "")
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{source}: {where}: {msg}{more}"


def parse_config(data: dict, base_dir: Path | None = None, source: str = "config",
                 check_files: bool = True) -> HawkwatchConfig:
    try:
        data = substitute(data, base_dir)
    except ValueError as e:
        raise ConfigError(f"{source}: {e}") from None
    try:
        return HawkwatchConfig.model_validate(data, context={"base_dir": base_dir, "check_files": check_files})
    except ValidationError as e:
        raise ConfigError(_format(e, source)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (where the last would silently win)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {seen[key] + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def load_config(path: str | Path) -> HawkwatchConfig:
    path = Path(path)
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config must be a mapping of keys to values")
    return parse_config(data, path.parent, str(path))
