"""How far off is a geolocated drone pixel? Both methods of stream/scene/geolocate.py on synthetic
flights (bench/drone_flight.py) whose truth is known, with the metadata a real drone would send.

    python bench/bench_geolocation.py [--frames 30] [--seed 0] [--save DIR]

Each frame's exact metadata is spoiled the way a drone spoils it: every angle, the position, the
altitude and the ground's height get Gaussian errors of the sizes MetadataErrors assumes (so the
estimate's coverage can be checked); the drone computes its frame centre and corners from that
spoiled state, as its own computer would; then every item is quantised to its ST 0601 encoding
(lat/lon int32, heading uint16, pitch and roll int16, fields of view uint16, gimbal angles 4 bytes,
heights uint16 over -900..19000 m). The walkers' true pixels are located by (a) the camera model
over flat ground and (b) the corner homography, and compared with where they really are.

Columns: median and 90th percentile horizontal error (m); how often the truth lies within the
estimate's 1-sigma and 2-sigma circles (a calibrated circular Gaussian: 39 % and 86 %); the median
1-sigma itself. The "terrain +20 m" rows put the real ground 20 m above what the drone assumes.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.drone_flight import Flight, SyntheticFlight  # noqa: E402
from stream.scene.geolocate import (  # noqa: E402
    MetadataErrors, enu_to_geodetic, geodetic_to_enu, geolocate, with_ground_truth,
)
from stream.types import SensorMetadata  # noqa: E402

# ST 0601 item -> (lowest, highest, number of steps across): the encodings' resolutions
ST0601_STEPS = {
    "platform_heading": (0.0, 360.0, 2 ** 16 - 1), "platform_pitch": (-20.0, 20.0, 2 ** 16 - 2),
    "platform_roll": (-50.0, 50.0, 2 ** 16 - 2), "sensor_lat": (-90.0, 90.0, 2 ** 32 - 2),
    "sensor_lon": (-180.0, 180.0, 2 ** 32 - 2), "sensor_alt": (-900.0, 19000.0, 2 ** 16 - 1),
    "hfov": (0.0, 180.0, 2 ** 16 - 1), "vfov": (0.0, 180.0, 2 ** 16 - 1),
    "sensor_rel_az": (0.0, 360.0, 2 ** 32 - 1), "sensor_rel_el": (-180.0, 180.0, 2 ** 32 - 2),
    "sensor_rel_roll": (0.0, 360.0, 2 ** 32 - 1), "frame_center_lat": (-90.0, 90.0, 2 ** 32 - 2),
    "frame_center_lon": (-180.0, 180.0, 2 ** 32 - 2), "frame_center_elev": (-900.0, 19000.0, 2 ** 16 - 1),
}


def _q(value: float, lo: float, hi: float, steps: int) -> float:
    step = (hi - lo) / steps
    return lo + round((min(max(value, lo), hi) - lo) / step) * step


def quantise(meta: SensorMetadata) -> SensorMetadata:
    """`meta` as it comes out of an ST 0601 encoder and decoder: each value on its encoding's grid
    (the corners as tags 82-89, full int32 latitudes and longitudes)."""
    values = {name: _q(getattr(meta, name), *grid) for name, grid in ST0601_STEPS.items()
              if getattr(meta, name) is not None}
    if meta.corners is not None:
        values["corners"] = tuple((_q(a, *ST0601_STEPS["sensor_lat"]), _q(b, *ST0601_STEPS["sensor_lon"]))
                                  for a, b in meta.corners)
    return replace(meta, **values)


def spoil(meta: SensorMetadata, rng: np.random.Generator, errors: MetadataErrors, ground_elev: float,
          image_size: tuple[int, int]) -> SensorMetadata:
    """What the drone reports: its state with `errors`-sized noise, the frame centre and corners it
    computes from that state over flat ground at its noisy belief of `ground_elev`, quantised."""
    angle = rng.normal(0, 1, 6) * [errors.heading_deg, errors.attitude_deg, errors.attitude_deg,
                                   errors.gimbal_deg, errors.gimbal_deg, errors.gimbal_deg]
    sensor = (meta.sensor_lat, meta.sensor_lon, meta.sensor_alt)
    moved = enu_to_geodetic(rng.normal(0, 1, (1, 3)) * [errors.horizontal_m, errors.horizontal_m, errors.altitude_m],
                            sensor)[0]
    noisy = replace(meta, platform_heading=(meta.platform_heading + angle[0]) % 360,
                    platform_pitch=meta.platform_pitch + angle[1], platform_roll=meta.platform_roll + angle[2],
                    sensor_rel_az=(meta.sensor_rel_az + angle[3]) % 360, sensor_rel_el=meta.sensor_rel_el + angle[4],
                    sensor_rel_roll=(meta.sensor_rel_roll + angle[5]) % 360,
                    sensor_lat=float(moved[0]), sensor_lon=float(moved[1]), sensor_alt=float(moved[2]),
                    frame_center_lat=None, frame_center_lon=None, corners=None)
    return quantise(with_ground_truth(noisy, image_size, ground_elev + rng.normal(0, errors.ground_m)))


@dataclass(frozen=True)
class Result:
    errors_m: np.ndarray     # (M,) horizontal error of every located walker
    sigma_m: np.ndarray      # (M,) the 1-sigma the method gave it


def run(flight: Flight, terrain_m: float, errors: MetadataErrors, save: Path | None) -> dict[str, Result]:
    """Every walker in view of every frame, located both ways from spoiled metadata."""
    rng = np.random.default_rng(flight.seed + 1)
    synthetic = SyntheticFlight(flight)
    found: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"ray": [], "corners": []}
    for k in range(len(synthetic)):
        frame = synthetic.frame(k, image=save is not None and k == 0)
        if frame.image is not None:
            name = f"{flight.path}_{flight.altitude_m:.0f}m_{flight.off_nadir_deg:.0f}deg_{terrain_m:.0f}.png"
            cv2.imwrite(str(save / name), frame.image)
        reported = spoil(frame.meta, rng, errors, flight.target[2] - terrain_m, flight.image_size)
        pixels, truth = frame.people_xy[frame.in_view], frame.people_llh[frame.in_view]
        if not len(pixels):
            continue
        truth_enu = geodetic_to_enu(truth, flight.target)[:, :2]
        for method in found:
            geo = geolocate(reported, pixels, flight.image_size, method=method, errors=errors)
            points = np.column_stack([geo.points[:, :2], truth[:, 2]])
            miss = np.linalg.norm(geodetic_to_enu(points, flight.target)[:, :2] - truth_enu, axis=1)
            found[method].append((miss, geo.sigma_m))
    return {m: Result(np.concatenate([e for e, _ in v]), np.concatenate([s for _, s in v])) for m, v in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", type=Path, help="write each flight's first picture here")
    args = parser.parse_args()
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
    errors = MetadataErrors()
    print(f"assumed and applied 1-sigma errors: {errors}")
    cases = [(a, o, 0.0) for a in (100.0, 300.0, 1000.0) for o in (0.0, 30.0, 60.0)]
    cases += [(300.0, 30.0, 20.0), (300.0, 60.0, 20.0)]
    head = f"{'flight':<36}" + "".join(f"| {m:<7} median    p90  <=1s  <=2s  sigma " for m in ("ray", "corners"))
    print(head)
    print("-" * len(head))
    for altitude, off_nadir, terrain in cases:
        flight = Flight(path="circle", altitude_m=altitude, off_nadir_deg=off_nadir, frames=args.frames,
                        people=8, seed=args.seed)
        results = run(flight, terrain, errors, args.save)
        name = f"circle {altitude:>4.0f} m {off_nadir:>2.0f} deg" + (f" terrain +{terrain:.0f} m" if terrain else "")
        row = f"{name:<36}"
        for res in results.values():
            e, s = res.errors_m, res.sigma_m
            row += (f"| n={len(e):<5} {np.median(e):6.1f} {np.percentile(e, 90):6.1f} {np.mean(e <= s):5.0%}"
                    f" {np.mean(e <= 2 * s):5.0%} {np.median(s):6.1f} ")
        print(row)


if __name__ == "__main__":
    main()
