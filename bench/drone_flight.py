"""Synthetic drone flights with known truth: pictures, exact ST 0601 metadata and where every
walker really is, for measuring geolocation (bench/bench_geolocation.py) without real footage.

Why synthetic: a real drone's metadata is exactly what is in doubt, so real footage cannot say how
far off a geolocated pixel is. Here the camera is known by construction. The ground is a textured
plane (the east-north-up plane tangent to WGS-84 at the target, at the target's elevation), seen
through the same camera model the pipeline uses (stream/scene/geolocate.py): each picture is the
ground texture warped by the camera's ground homography, and each walker is a coloured disc drawn
where the model projects it. Everything follows from the flight and its seed.

    from bench.drone_flight import Flight, SyntheticFlight
    for frame in SyntheticFlight(Flight(path="circle", altitude_m=300, off_nadir_deg=30)):
        frame.image, frame.meta, frame.people_llh, frame.people_xy

As a STANAG 4609 test feed (H.264 and ST 0601 KLV in MPEG-TS), for the pipeline to read:

    python bench/drone_flight.py --out flight.ts [--altitude 300 --off-nadir 30 --seconds 20]
    python bench/drone_flight.py --out drone.ts --video clip.mp4 [--altitude 40 --off-nadir 45]

With --video, the clip's own frames are the pictures and the metadata is a drone hovering (swaying,
speed 0) at that altitude and obliquity over --target: real people for the models, a known camera
for the geolocation. Stream it to a camera with `ffmpeg -re -i drone.ts -c copy -f mpegts udp://...`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterator

import cv2
import numpy as np

from stream.scene.geolocate import (
    Camera, camera_from_metadata, enu_rotation, enu_to_geodetic, image_corners, sensor_angles, with_ground_truth,
)
from stream.types import SensorMetadata

GRAVITY = 9.81
TEXTURE_PX = 2048         # the ground texture's side: enough for a 640 px picture of any of these flights
PERSON_RADIUS_M = 0.4
PERSON_COLOURS = ((0, 0, 255), (255, 0, 255), (0, 255, 255), (255, 255, 0), (255, 0, 0), (0, 128, 255),
                  (255, 255, 255), (128, 0, 255))   # BGR, none of them the ground's colours
PATHS = ("circle", "line")


@dataclass(frozen=True)
class Flight:
    """One flight. "circle": round the target at the horizontal distance that gives the obliquity,
    the lens held on the target (at 0 degrees: hovering above it, turning). "line": straight past
    the target's east side heading north, the lens at the obliquity to the right, so the frame
    centre slides along the ground and walkers come and go."""
    path: str = "circle"
    altitude_m: float = 300.0           # above the ground
    off_nadir_deg: float = 30.0         # the lens axis's angle from straight down
    hfov_deg: float = 30.0
    image_size: tuple[int, int] = (640, 360)
    target: tuple[float, float, float] = (45.0, 7.0, 50.0)   # lat, lon, ground height above the ellipsoid
    speed_mps: float = 15.0
    hover_turn_dps: float = 6.0         # a nadir circle turns on the spot this fast
    fps: float = 2.0
    frames: int = 40
    people: int = 6
    seed: int = 0

    def __post_init__(self):
        if self.path not in PATHS:
            raise ValueError(f"unknown flight path {self.path!r}; choose one of {', '.join(PATHS)}")
        if not 0 <= self.off_nadir_deg < 80:
            raise ValueError(f"off_nadir_deg must be in [0, 80), got {self.off_nadir_deg}")


@dataclass(frozen=True, eq=False)
class FlightFrame:
    index: int
    t: float                  # seconds since the flight began
    meta: SensorMetadata      # exact: frame centre, slant range and corners from the model
    camera: Camera            # the camera `meta` describes, in the ground frame at the target
    image: np.ndarray | None  # (H, W, 3) uint8 BGR; None when rendering was not asked for
    people_llh: np.ndarray    # (P, 3) where each walker's feet are: lat, lon, height
    people_xy: np.ndarray     # (P, 2) where the picture shows them (pixels, continuous); NaN: behind the camera
    in_view: np.ndarray       # (P,) bool: inside the picture


class SyntheticFlight:
    """A flight's frames, the same on every run for the same Flight."""

    def __init__(self, flight: Flight):
        self.flight = flight
        rng = np.random.default_rng(flight.seed)
        self.times = np.arange(flight.frames) / flight.fps
        self._wobble = rng.uniform(0, 2 * np.pi, 4)        # phases of the airframe's pitch and roll sway
        self.cameras = [self._camera(t) for t in self.times]
        corners = np.concatenate([c.ground_enu(image_corners(flight.image_size)) for c in self.cameras])
        if not np.isfinite(corners).all():
            raise ValueError("the horizon is in view: lower off_nadir_deg or hfov_deg")
        self.half_extent = float(np.abs(corners[:, :2]).max() * 1.05 + 10)   # metres, the texture's half side
        self.texel_m = 2 * self.half_extent / TEXTURE_PX
        self.texture = _ground_texture(rng, self.texel_m)
        centres = np.stack([c.ground_enu(np.array([flight.image_size]) / 2)[0, :2] for c in self.cameras])
        reach = float(np.abs(corners[:, :2] - np.repeat(centres, 4, axis=0)).max()) * 0.35
        # walkers start near the frame centre of a random moment, and walk (1.4 m/s) or run (3 m/s)
        starts = centres[rng.integers(0, len(centres), flight.people)] + rng.uniform(-reach, reach, (flight.people, 2))
        heading = rng.uniform(0, 2 * np.pi, flight.people)
        speed = np.where(rng.random(flight.people) < 0.3, 3.0, 1.4)
        self._start, self._velocity = starts, speed[:, None] * np.column_stack([np.sin(heading), np.cos(heading)])
        self._start -= self._velocity * self.times.mean()        # so they are there mid-flight

    def __len__(self) -> int:
        return self.flight.frames

    def __iter__(self) -> Iterator[FlightFrame]:
        return (self.frame(k) for k in range(len(self)))

    def people_enu(self, t: float) -> np.ndarray:
        """(P, 3) the walkers' feet on the ground plane at time t."""
        xy = self._start + self._velocity * t
        return np.column_stack([xy, np.zeros(len(xy))])

    def frame(self, k: int, image: bool = True) -> FlightFrame:
        f, t, cam = self.flight, float(self.times[k]), self.cameras[k]
        people = self.people_enu(t)
        xy = cam.project(people)
        w, h = f.image_size
        in_view = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
        return FlightFrame(k, t, self._metadata(k), cam, self._render(cam, people) if image else None,
                           enu_to_geodetic(people, f.target), xy, in_view)

    # --- the flight ---

    def _pose(self, t: float) -> tuple[np.ndarray, float, float, float, np.ndarray]:
        """Sensor position (ENU at the target), platform heading, pitch, roll, and the point looked at."""
        f = self.flight
        reach = f.altitude_m * np.tan(np.radians(f.off_nadir_deg))
        sway_pitch = 1.5 * np.sin(0.7 * t + self._wobble[0]) + 0.5 * np.sin(2.3 * t + self._wobble[1])
        sway_roll = 2.0 * np.sin(0.9 * t + self._wobble[2]) + 0.7 * np.sin(3.1 * t + self._wobble[3])
        if f.path == "line":        # north along the meridian `reach` west of the target, past it mid-flight,
            north = f.speed_mps * (t - self.times[-1] / 2)     # looking right: the centre slides along its meridian
            return np.array([-reach, north, f.altitude_m]), 0.0, sway_pitch, sway_roll, np.array([0.0, north, 0.0])
        if reach < 1.0:             # hovering over the target, turning
            heading = (f.hover_turn_dps * t) % 360
            return np.array([0.0, 0.0, f.altitude_m]), heading, sway_pitch, sway_roll, np.zeros(3)
        bearing = f.speed_mps / reach * t                 # radians round the target, clockwise from north
        position = np.array([reach * np.sin(bearing), reach * np.cos(bearing), f.altitude_m])
        bank = np.degrees(np.arctan(f.speed_mps ** 2 / (GRAVITY * reach)))   # a coordinated right turn
        return position, np.degrees(bearing + np.pi / 2) % 360, sway_pitch, min(bank, 30.0) + sway_roll, np.zeros(3)

    def _sensor_metadata(self, t: float) -> SensorMetadata:
        """What an exact drone would report, before the frame centre and corners."""
        f = self.flight
        position, heading, pitch, roll, look = self._pose(t)
        sensor = enu_to_geodetic(position[None], f.target)[0]
        # the gimbal angles are measured against the sensor's own local level, not the target's
        to_local = enu_rotation(sensor[0], sensor[1]) @ enu_rotation(f.target[0], f.target[1]).T
        az, el = sensor_angles(heading, pitch, roll, to_local @ (look - position))
        w, h = f.image_size
        vfov = np.degrees(2 * np.arctan(np.tan(np.radians(f.hfov_deg) / 2) * h / w))
        return SensorMetadata(time_us=1_700_000_000_000_000 + int(round(t * 1e6)), mission_id="synthetic",
                              platform_heading=heading, platform_pitch=pitch, platform_roll=roll,
                              sensor_lat=float(sensor[0]), sensor_lon=float(sensor[1]), sensor_alt=float(sensor[2]),
                              hfov=f.hfov_deg, vfov=float(vfov), sensor_rel_az=az, sensor_rel_el=el,
                              sensor_rel_roll=0.0)

    def _metadata(self, k: int) -> SensorMetadata:
        return with_ground_truth(self._sensor_metadata(float(self.times[k])), self.flight.image_size,
                                 self.flight.target[2])

    def _camera(self, t: float) -> Camera:
        """The camera in the ground frame at the target, where the texture and the walkers are."""
        meta, f = self._sensor_metadata(t), self.flight
        return camera_from_metadata(replace(meta, frame_center_lat=f.target[0], frame_center_lon=f.target[1]),
                                    f.image_size, ground_elev=f.target[2])

    # --- the pictures ---

    def _render(self, cam: Camera, people: np.ndarray) -> np.ndarray:
        """The ground texture through the camera's ground homography, then the walkers as discs."""
        r, s = self.half_extent, self.texel_m
        texel_to_ground = np.array([[s, 0, -r + s / 2], [0, -s, r - s / 2], [0, 0, 1]])   # texel centres, north up
        to_cv = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])   # OpenCV puts pixel centres on integers
        w, h = cam.image_size
        img = cv2.warpPerspective(self.texture, to_cv @ cam.ground_homography() @ texel_to_ground, (w, h),
                                  flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(90, 90, 90))
        xy = cam.project(people)
        distance = np.linalg.norm(people - cam.position, axis=1)
        for (x, y), d, colour in zip(xy, distance, PERSON_COLOURS * (len(people) // len(PERSON_COLOURS) + 1)):
            if np.isfinite([x, y]).all() and -50 < x < w + 50 and -50 < y < h + 50:
                radius = max(2, int(round(cam.focal[0] * PERSON_RADIUS_M / d)))
                cv2.circle(img, (int(round(x - 0.5)), int(round(y - 0.5))), radius, colour, -1, cv2.LINE_AA)
        return img


def _ground_texture(rng: np.random.Generator, texel_m: float) -> np.ndarray:
    """(TEXTURE_PX, TEXTURE_PX, 3) uint8 BGR: fields of smooth noise, fine grain, a 10 m grid of
    paths (50 m when texels are coarse) and a few dark patches, so any view has texture to track."""
    n = TEXTURE_PX
    coarse = rng.random((16, 16, 3)).astype(np.float32)
    fields = cv2.resize(coarse, (n, n), interpolation=cv2.INTER_CUBIC)
    grain = cv2.resize(rng.random((n // 4, n // 4)).astype(np.float32), (n, n), interpolation=cv2.INTER_LINEAR)
    base = np.array([60, 120, 90], np.float32)          # BGR: grass-like
    img = base + 60 * (fields - 0.5) + 30 * (grain[..., None] - 0.5)
    spacing = 10.0 if texel_m < 0.5 else 50.0
    step = max(2, int(round(spacing / texel_m)))
    line = max(1, int(round(1.0 / texel_m)))
    for offset in range(0, n, step):
        img[:, offset:offset + line] = (170, 185, 190)
        img[offset:offset + line, :] = (170, 185, 190)
    for _ in range(12):
        x, y = rng.integers(0, n, 2)
        cv2.circle(img, (int(x), int(y)), int(rng.integers(n // 60, n // 20)), (40, 60, 70), -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def video_feed(video: str, out: str, flight: Flight, seconds: float | None = None) -> int:
    """`video`'s frames (its first `seconds`) with the metadata of `flight` hovering (its speed is
    ignored) at the video's size and rate, written to `out` as a STANAG 4609 feed; returns the KLV
    packets written."""
    import av

    from stream.ingest.stanag import write_stanag
    with av.open(video) as c:
        stream = c.streams.video[0]
        fps = float(stream.average_rate or 25)
        frames = []
        for f in c.decode(stream):
            if seconds is not None and len(frames) >= seconds * fps:
                break
            frames.append(f.to_ndarray(format="bgr24"))
    if not frames:
        raise ValueError(f"{video} has no frames")
    h, w = frames[0].shape[:2]
    hover = SyntheticFlight(replace(flight, image_size=(w - w % 2, h - h % 2), fps=fps, frames=len(frames),
                                    speed_mps=0.0, path="circle"))
    metas = [hover.frame(k, image=False).meta for k in range(len(frames))]
    return write_stanag(out, [f[:h - h % 2, :w - w % 2] for f in frames], metas, fps)


def main(argv: list[str] | None = None) -> int:
    import argparse
    p = argparse.ArgumentParser(description="Write a STANAG 4609 test feed: a synthetic flight, or a video seen "
                                            "from a hovering drone, with exact MISB ST 0601 metadata.")
    p.add_argument("--out", required=True, help="the MPEG-TS file (or a udp:// URL) to write")
    p.add_argument("--video", help="use this video's frames as the pictures (a drone hovering over its scene)")
    p.add_argument("--altitude", type=float, default=None, help="metres above the ground (default 300; 40 with --video)")
    p.add_argument("--off-nadir", type=float, default=None, help="the lens axis from straight down, degrees "
                                                                 "(default 30; 45 with --video)")
    p.add_argument("--hfov", type=float, default=None, help="horizontal field of view, degrees (default 30; 60 with --video)")
    p.add_argument("--target", type=float, nargs=3, default=(45.0, 7.0, 50.0), metavar=("LAT", "LON", "HEIGHT"),
                   help="where the lens looks: latitude, longitude, ground height above the ellipsoid (m)")
    p.add_argument("--path", choices=PATHS, default="circle", help="the synthetic flight's path")
    p.add_argument("--seconds", type=float, default=None, help="the feed's length (default: the video's; 20 s flown)")
    p.add_argument("--fps", type=float, default=10.0, help="the synthetic flight's frame rate")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    video = a.video is not None
    flight = Flight(path=a.path, altitude_m=a.altitude or (40.0 if video else 300.0),
                    off_nadir_deg=a.off_nadir if a.off_nadir is not None else (45.0 if video else 30.0),
                    hfov_deg=a.hfov or (60.0 if video else 30.0), target=tuple(a.target), fps=a.fps,
                    frames=max(1, round((a.seconds or 20.0) * a.fps)), seed=a.seed)
    if video:
        n = video_feed(a.video, a.out, flight, a.seconds)
    else:
        from stream.ingest.stanag import write_stanag
        frames = SyntheticFlight(flight)
        n = write_stanag(a.out, (f.image for f in frames), (f.meta for f in frames), flight.fps)
    print(f"wrote {a.out}: {n} frames with ST 0601 metadata")
    return 0


if __name__ == "__main__":
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main())
