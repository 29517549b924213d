"""Where on the ground a drone's pixel is: a picture position turned into latitude, longitude and
an error radius from the frame's MISB ST 0601 metadata (stream.types.SensorMetadata).

Why a camera model rather than the corners the drone sends: the corners (tags 26-33, 82-89) are
optional, many feeds omit them, and they carry no error model; the platform and gimbal angles let
us cast each pixel's own line of sight and say how far off it may be. The corners remain the
fallback when the angles are missing.

Conventions (ST 0601 item definitions, as KWIVER's vital metadata traits and jMISB quote them):

- Platform attitude is heading (tag 5, clockwise from true north), pitch (tag 6, nose up positive),
  roll (tag 7, right wing down positive), applied in that order to the local north-east-down frame
  at the sensor: body-to-NED = Rz(heading) Ry(pitch) Rx(roll), the usual aerospace 3-2-1 sequence.
- The sensor is then turned relative to the platform by its azimuth (tag 18, clockwise from the
  nose seen from above), elevation (tag 19, from the platform's longitudinal-transverse plane,
  negative down) and roll (tag 20, about the lens axis, clockwise seen from behind the camera), in
  that order: sensor-to-body = Rz(azimuth) Ry(elevation) Rx(roll).
- The sensor frame has x along the lens axis, y to the image's right and z to the image's bottom,
  so with every angle 0 the camera looks along the nose with the image upright, and a relative
  elevation of -90 looks straight down with the image's top towards the nose.
- The camera is a pinhole with its principal point at the image centre and focal lengths from the
  fields of view (tags 16, 17; a missing vertical one follows from the horizontal one and square
  pixels). Pixel positions are continuous: (0, 0) is the top-left corner of the picture, (W, H) its
  bottom-right corner, and the pixel in column i, row j has its centre at (i + 0.5, j + 0.5).
- Work happens in an east-north-up frame tangent to the WGS-84 ellipsoid at the frame centre (tags
  23-25; the point below the sensor when there is none). The ground is that tangent plane, lifted to
  the ground elevation: a flat earth. Over a footprint a few kilometres across the ellipsoid drops
  below the plane by d^2 / 2R (0.3 m at 2 km), which is far below the metadata's own errors.

The uncertainty of a point is the metadata's assumed errors (MetadataErrors) pushed through the
same geometry by central differences: each error source moves the ground point by a vector, the
vectors make a 2x2 covariance, and `sigma_m` is the circular 1-sigma error sqrt(trace / 2). For a
circular Gaussian the truth lies within 1 sigma 39 % of the time and within 2 sigma 86 %.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from stream.types import SceneGraph, SensorMetadata

WGS84_A = 6378137.0                     # semi-major axis, metres
WGS84_F = 1 / 298.257223563             # flattening
WGS84_E2 = WGS84_F * (2 - WGS84_F)      # first eccentricity squared

_NED_TO_ENU = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
_RAY_FIELDS = ("platform_heading", "platform_pitch", "platform_roll", "sensor_rel_az", "sensor_rel_el",
               "sensor_rel_roll", "sensor_lat", "sensor_lon", "sensor_alt", "hfov")
METHODS = ("auto", "ray", "corners")


# --- WGS-84 ---------------------------------------------------------------------------------------

def geodetic_to_ecef(lat: np.ndarray, lon: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Degrees and metres above the ellipsoid -> (..., 3) earth-centred earth-fixed metres."""
    lat, lon, h = np.radians(lat), np.radians(lon), np.asarray(h, float)
    n = WGS84_A / np.sqrt(1 - WGS84_E2 * np.sin(lat) ** 2)
    return np.stack([(n + h) * np.cos(lat) * np.cos(lon), (n + h) * np.cos(lat) * np.sin(lon),
                     (n * (1 - WGS84_E2) + h) * np.sin(lat)], axis=-1)


def ecef_to_geodetic(xyz: np.ndarray) -> np.ndarray:
    """(..., 3) ECEF metres -> (..., 3) latitude, longitude (degrees), height above the ellipsoid (m).
    Fixed-point iteration on the latitude; five rounds reach well under a millimetre for anything
    that flies."""
    x, y, z = np.moveaxis(np.asarray(xyz, float), -1, 0)
    p = np.hypot(x, y)
    lat = np.arctan2(z, p * (1 - WGS84_E2))
    for _ in range(5):
        n = WGS84_A / np.sqrt(1 - WGS84_E2 * np.sin(lat) ** 2)
        h = p * np.cos(lat) + z * np.sin(lat) - WGS84_A * np.sqrt(1 - WGS84_E2 * np.sin(lat) ** 2)
        lat = np.arctan2(z, p * (1 - WGS84_E2 * n / (n + h)))
    h = p * np.cos(lat) + z * np.sin(lat) - WGS84_A * np.sqrt(1 - WGS84_E2 * np.sin(lat) ** 2)
    return np.stack([np.degrees(lat), np.degrees(np.arctan2(y, x)), h], axis=-1)


def enu_rotation(lat: float, lon: float) -> np.ndarray:
    """(3, 3): rows are east, north and up at (lat, lon), in ECEF; ECEF -> ENU is this times a vector."""
    la, lo = np.radians(lat), np.radians(lon)
    return np.array([[-np.sin(lo), np.cos(lo), 0.0],
                     [-np.sin(la) * np.cos(lo), -np.sin(la) * np.sin(lo), np.cos(la)],
                     [np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)]])


def geodetic_to_enu(llh: np.ndarray, origin: Sequence[float]) -> np.ndarray:
    """(N, 3) lat, lon, h -> (N, 3) east, north, up metres from `origin` (lat, lon, h)."""
    llh = np.asarray(llh, float)
    d = geodetic_to_ecef(llh[..., 0], llh[..., 1], llh[..., 2]) - geodetic_to_ecef(*origin)
    return d @ enu_rotation(origin[0], origin[1]).T


def enu_to_geodetic(enu: np.ndarray, origin: Sequence[float]) -> np.ndarray:
    """(N, 3) east, north, up metres from `origin` -> (N, 3) lat, lon, h. NaN stays NaN."""
    xyz = np.asarray(enu, float) @ enu_rotation(origin[0], origin[1]) + geodetic_to_ecef(*origin)
    return ecef_to_geodetic(xyz)


# --- the camera -----------------------------------------------------------------------------------

def _rx(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _ry(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rz(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def sensor_to_ned(heading: float, pitch: float, roll: float,
                  rel_az: float, rel_el: float, rel_roll: float) -> np.ndarray:
    """(3, 3) rotation taking sensor-frame vectors (x lens axis, y image right, z image down) to
    north-east-down at the sensor: platform heading, pitch, roll, then the sensor's relative
    azimuth, elevation, roll (ST 0601 tags 5-7 and 18-20)."""
    return _rz(heading) @ _ry(pitch) @ _rx(roll) @ _rz(rel_az) @ _ry(rel_el) @ _rx(rel_roll)


def sensor_angles(heading: float, pitch: float, roll: float, look_enu: np.ndarray,
                  rel_roll: float = 0.0) -> tuple[float, float]:
    """The sensor relative azimuth (0..360) and elevation (degrees) that point the lens axis along
    `look_enu` (a direction in the sensor's local east-north-up) from a platform with this attitude:
    the inverse of sensor_to_ned for the lens axis (the relative roll does not move it)."""
    ned = _NED_TO_ENU @ np.asarray(look_enu, float)       # the swap is its own inverse
    body = (_rz(heading) @ _ry(pitch) @ _rx(roll)).T @ ned
    az = np.degrees(np.arctan2(body[1], body[0])) % 360.0
    el = np.degrees(np.arctan2(-body[2], np.hypot(body[0], body[1])))
    return float(az), float(el)


@dataclass(frozen=True, eq=False)
class Camera:
    """A pinhole camera in the east-north-up frame tangent at `origin`, whose ground is the plane
    up = 0 (the origin's height)."""
    origin: tuple[float, float, float]    # lat, lon (degrees), h (m above the ellipsoid) of the ground frame
    position: np.ndarray                  # (3,) the sensor, east/north/up metres
    rotation: np.ndarray                  # (3, 3) sensor-frame vectors -> ENU (columns: lens axis, right, down)
    focal: tuple[float, float]            # fx, fy in pixels
    image_size: tuple[int, int]           # (width, height)

    def rays(self, pixels_xy: np.ndarray) -> np.ndarray:
        """(N, 2) pixel positions -> (N, 3) ENU directions of their lines of sight (lens-axis length 1)."""
        w, h = self.image_size
        p = np.asarray(pixels_xy, float).reshape(-1, 2)
        local = np.stack([np.ones(len(p)), (p[:, 0] - w / 2) / self.focal[0], (p[:, 1] - h / 2) / self.focal[1]], 1)
        return local @ self.rotation.T

    def ground_enu(self, pixels_xy: np.ndarray, up: float = 0.0) -> np.ndarray:
        """(N, 2) pixels -> (N, 3) ENU points where their lines of sight meet the plane at height
        `up`; NaN rows for lines that never come down to it (at or above the horizon)."""
        d = self.rays(pixels_xy)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (up - self.position[2]) / d[:, 2]
        t = np.where((d[:, 2] < 0) & (t > 0), t, np.nan)
        return self.position + t[:, None] * d

    def project(self, enu: np.ndarray) -> np.ndarray:
        """(N, 3) ENU points -> (N, 2) pixel positions (possibly outside the picture); NaN for points
        behind the camera."""
        s = (np.asarray(enu, float).reshape(-1, 3) - self.position) @ self.rotation
        w, h = self.image_size
        with np.errstate(divide="ignore", invalid="ignore"):
            ahead = np.where(s[:, 0] > 0, s[:, 0], np.nan)
            return np.stack([w / 2 + self.focal[0] * s[:, 1] / ahead, h / 2 + self.focal[1] * s[:, 2] / ahead], 1)

    def ground_homography(self) -> np.ndarray:
        """(3, 3) H with pixel ~ H @ (east, north, 1) for points on the ground plane."""
        k = np.array([[self.focal[0], 0.0, self.image_size[0] / 2],
                      [0.0, self.focal[1], self.image_size[1] / 2], [0.0, 0.0, 1.0]])
        r = self.rotation.T        # ENU -> sensor frame, whose x is the depth; reorder to (right, down, depth)
        r = r[[1, 2, 0]]
        return k @ np.column_stack([r[:, 0], r[:, 1], -r @ self.position])


def _need(meta: SensorMetadata, fields: Sequence[str], why: str) -> None:
    missing = [f for f in fields if getattr(meta, f) is None]
    if missing:
        raise ValueError(f"{why} needs {', '.join(missing)}, which this frame's metadata does not carry")


def _focal(meta: SensorMetadata, image_size: tuple[int, int]) -> tuple[float, float]:
    w, h = image_size
    fx = (w / 2) / np.tan(np.radians(meta.hfov) / 2)
    fy = fx if meta.vfov is None else (h / 2) / np.tan(np.radians(meta.vfov) / 2)
    return float(fx), float(fy)


def ground_origin(meta: SensorMetadata, ground_elev: float | None = None) -> tuple[float, float, float]:
    """The ground frame's origin: the frame centre (or, without one, the point below the sensor, or
    the corners' mean) at the ground's elevation (`ground_elev`, else the frame centre's, tag 25)."""
    elev = meta.frame_center_elev if ground_elev is None else ground_elev
    if elev is None:
        raise ValueError("the ground's elevation is unknown: the metadata has no frame centre elevation "
                         "(tag 25); pass ground_elev")
    if meta.frame_center_lat is not None and meta.frame_center_lon is not None:
        return float(meta.frame_center_lat), float(meta.frame_center_lon), float(elev)
    if meta.sensor_lat is not None and meta.sensor_lon is not None:
        return float(meta.sensor_lat), float(meta.sensor_lon), float(elev)
    if meta.corners is not None:
        lat, lon = np.mean(np.asarray(meta.corners, float), axis=0)
        return float(lat), float(lon), float(elev)
    raise ValueError("the metadata places nothing on the ground: no frame centre, sensor position or corners")


def camera_from_metadata(meta: SensorMetadata, image_size: tuple[int, int], *,
                         ground_elev: float | None = None, angle_offsets: Sequence[float] = (0.0,) * 6,
                         position_offset: Sequence[float] = (0.0, 0.0, 0.0)) -> Camera:
    """The camera the metadata describes. `angle_offsets` (heading, pitch, roll, relative azimuth,
    elevation, roll; degrees) and `position_offset` (east, north, up; metres) shift it, for the
    uncertainty estimate. Raises ValueError naming the fields it lacks."""
    _need(meta, _RAY_FIELDS, "the camera model")
    origin = ground_origin(meta, ground_elev)
    angles = np.array([meta.platform_heading, meta.platform_pitch, meta.platform_roll, meta.sensor_rel_az,
                       meta.sensor_rel_el, meta.sensor_rel_roll], float) + np.asarray(angle_offsets, float)
    sensor_llh = (meta.sensor_lat, meta.sensor_lon, meta.sensor_alt)
    position = geodetic_to_enu(np.array([sensor_llh]), origin)[0] + np.asarray(position_offset, float)
    # the attitude is relative to the sensor's own local level, which leans against the origin's by
    # the distance between them over the earth's radius: go through ECEF
    local_to_origin = enu_rotation(origin[0], origin[1]) @ enu_rotation(meta.sensor_lat, meta.sensor_lon).T
    rotation = local_to_origin @ _NED_TO_ENU @ sensor_to_ned(*angles)
    return Camera(origin, position, rotation, _focal(meta, image_size), (int(image_size[0]), int(image_size[1])))


# --- the corner fallback --------------------------------------------------------------------------

def homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(3, 3) H with dst ~ H @ (src, 1), from four (2,) correspondences, no three in a line."""
    a, b = [], []
    for (x, y), (u, v) in zip(np.asarray(src, float), np.asarray(dst, float)):
        a += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        b += [u, v]
    return np.append(np.linalg.solve(np.array(a), np.array(b)), 1.0).reshape(3, 3)


def apply_homography(h: np.ndarray, xy: np.ndarray) -> np.ndarray:
    p = np.column_stack([np.asarray(xy, float).reshape(-1, 2), np.ones(len(np.asarray(xy).reshape(-1, 2)))]) @ h.T
    with np.errstate(divide="ignore", invalid="ignore"):
        return p[:, :2] / p[:, 2:]


def image_corners(image_size: tuple[int, int]) -> np.ndarray:
    """(4, 2) the picture's corners in ST 0601's order: upper left, upper right, lower right, lower left."""
    w, h = image_size
    return np.array([[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]])


def _corners_enu(meta: SensorMetadata, origin: tuple[float, float, float]) -> np.ndarray:
    corners = np.asarray(meta.corners, float)
    if corners.shape != (4, 2) or not np.isfinite(corners).all():
        raise ValueError(f"the corner fallback needs four (lat, lon) corners, got {meta.corners!r}")
    return geodetic_to_enu(np.column_stack([corners, np.full(4, origin[2])]), origin)[:, :2]


# --- what callers use -----------------------------------------------------------------------------

@dataclass(frozen=True)
class MetadataErrors:
    """The 1-sigma errors assumed for what a frame's metadata says, for the uncertainty estimate.
    The defaults are a small drone with a consumer GNSS and a stabilised gimbal over unsurveyed
    ground; a feed with better (or worse) figures should say so."""
    heading_deg: float = 0.5        # platform heading: magnetometers and GNSS headings drift most
    attitude_deg: float = 0.2       # platform pitch and roll, each
    gimbal_deg: float = 0.3         # sensor relative azimuth, elevation and roll, each (encoders, mounting)
    horizontal_m: float = 3.0       # sensor position, east and north each
    altitude_m: float = 5.0         # sensor altitude
    ground_m: float = 5.0           # the ground's real height against the flat earth assumed (terrain)
    corner_m: float = 10.0          # each reported corner, east and north each (corner fallback only)

    def ray_steps(self) -> np.ndarray:
        """(10,) one sigma of each error source the ray method sees, in the order of
        camera_from_metadata's offsets then the ground's height."""
        return np.array([self.heading_deg, self.attitude_deg, self.attitude_deg, self.gimbal_deg, self.gimbal_deg,
                         self.gimbal_deg, self.horizontal_m, self.horizontal_m, self.altitude_m, self.ground_m])


@dataclass(frozen=True, eq=False)
class Geolocation:
    """Ground positions of picture points, row for row."""
    points: np.ndarray     # (N, 3) latitude, longitude (degrees), elevation (m); NaN rows: the line
                           # of sight misses the ground
    sigma_m: np.ndarray    # (N,) circular 1-sigma error in metres, sqrt(trace(cov) / 2); NaN where there
                           # is no point; inf where an assumed error would lift its line of sight off the ground
    method: str            # "ray" (camera model, flat earth) or "corners" (homography of the reported corners)


def choose_method(meta: SensorMetadata, method: str = "auto") -> str:
    """"ray" when the metadata has what the camera model needs, else "corners" when it has corners;
    a named method is checked, not replaced."""
    if method not in METHODS:
        raise ValueError(f"unknown geolocation method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "auto":
        if all(getattr(meta, f) is not None for f in _RAY_FIELDS):
            return "ray"
        if meta.corners is not None:
            return "corners"
        missing = [f for f in _RAY_FIELDS if getattr(meta, f) is None]
        raise ValueError(f"cannot geolocate: the camera model lacks {', '.join(missing)} and there are no corners")
    if method == "ray":
        _need(meta, _RAY_FIELDS, "the camera model")
    else:
        _need(meta, ("corners",), "the corner fallback")
    return method


def _ground_enu(meta: SensorMetadata, pixels_xy: np.ndarray, image_size: tuple[int, int], method: str,
                origin: tuple[float, float, float], offsets: np.ndarray) -> np.ndarray:
    """(N, 2) east, north on the ground frame at `origin`, with the method's error sources shifted by
    `offsets` (ray: MetadataErrors.ray_steps' order; corners: 8 corner east/north shifts)."""
    if method == "ray":
        cam = camera_from_metadata(meta, image_size, ground_elev=origin[2], angle_offsets=offsets[:6],
                                   position_offset=offsets[6:9])
        return cam.ground_enu(pixels_xy, up=offsets[9])[:, :2]
    ground = _corners_enu(meta, origin) + offsets.reshape(4, 2)
    return apply_homography(homography(image_corners(image_size), ground), pixels_xy)


def geolocate(meta: SensorMetadata, pixels_xy: np.ndarray, image_size: tuple[int, int], *,
              method: str = "auto", ground_elev: float | None = None,
              errors: MetadataErrors = MetadataErrors()) -> Geolocation:
    """Where the (N, 2) picture positions are on the ground, with a 1-sigma error for each.
    `image_size` is (width, height) of the picture the pixels are on; `ground_elev` overrides the
    frame centre's elevation as the flat ground's height."""
    method = choose_method(meta, method)
    pixels_xy = np.asarray(pixels_xy, float).reshape(-1, 2)
    origin = ground_origin(meta, ground_elev)
    steps = errors.ray_steps() if method == "ray" else np.full(8, errors.corner_m)
    base = _ground_enu(meta, pixels_xy, image_size, method, origin, np.zeros(len(steps)))
    cov = np.zeros((len(pixels_xy), 2, 2))
    for i, step in enumerate(steps):
        if step == 0:
            continue
        shift = np.zeros(len(steps))
        shift[i] = step
        d = (_ground_enu(meta, pixels_xy, image_size, method, origin, shift)
             - _ground_enu(meta, pixels_xy, image_size, method, origin, -shift)) / 2
        cov += d[:, :, None] * d[:, None, :]
    sigma = np.sqrt(np.trace(cov, axis1=1, axis2=2) / 2)
    sigma = np.where(np.isfinite(base).all(1) & ~np.isfinite(sigma), np.inf, sigma)
    elev = np.full(len(base), origin[2])
    points = enu_to_geodetic(np.column_stack([base, elev - origin[2]]), origin)
    points[:, 2] = np.where(np.isfinite(base).all(1), elev, np.nan)   # the flat ground's height, by definition
    return Geolocation(points, sigma, method)


def ground_points(meta: SensorMetadata, pixels_xy: np.ndarray, image_size: tuple[int, int], *,
                  method: str = "auto", ground_elev: float | None = None) -> np.ndarray:
    """(N, 2) picture positions -> (N, 3) latitude, longitude, elevation on the flat ground; NaN rows
    for lines of sight that miss it (at or above the horizon). The camera model when the metadata
    has its angles, the reported corners' homography otherwise."""
    return geolocate(meta, pixels_xy, image_size, method=method, ground_elev=ground_elev,
                     errors=MetadataErrors(0, 0, 0, 0, 0, 0, 0)).points


def project(meta: SensorMetadata, llh: np.ndarray, image_size: tuple[int, int], *,
            ground_elev: float | None = None) -> np.ndarray:
    """(N, 3) latitude, longitude, height -> (N, 2) picture positions by the camera model (outside
    the picture when not in view); NaN for points behind the camera."""
    cam = camera_from_metadata(meta, image_size, ground_elev=ground_elev)
    return cam.project(geodetic_to_enu(np.asarray(llh, float).reshape(-1, 3), cam.origin))


def footprint(meta: SensorMetadata, image_size: tuple[int, int], *, method: str = "auto",
              ground_elev: float | None = None) -> np.ndarray:
    """(4, 2) latitude, longitude of the picture's corners on the ground (upper left, upper right,
    lower right, lower left); NaN rows for corners above the horizon."""
    return ground_points(meta, image_corners(image_size), image_size, method=method, ground_elev=ground_elev)[:, :2]


def with_ground_truth(meta: SensorMetadata, image_size: tuple[int, int], ground_elev: float) -> SensorMetadata:
    """`meta` with the frame centre (tags 23-25), the slant range (21) and the corners (82-89)
    computed by the camera model over flat ground at `ground_elev`, as a drone's own computer would
    fill them in; corners above the horizon leave the corners out."""
    cam = camera_from_metadata(replace(meta, frame_center_lat=None, frame_center_lon=None),
                               image_size, ground_elev=ground_elev)
    centre_enu = cam.ground_enu(np.array([[image_size[0] / 2, image_size[1] / 2]]))
    if not np.isfinite(centre_enu).all():
        raise ValueError("the lens axis does not meet the ground: the frame has no centre")
    centre = enu_to_geodetic(centre_enu, cam.origin)[0]
    meta = replace(meta, frame_center_lat=float(centre[0]), frame_center_lon=float(centre[1]),
                   frame_center_elev=float(ground_elev),
                   slant_range=float(np.linalg.norm(centre_enu[0] - cam.position)))
    corners = footprint(meta, image_size, method="ray")
    in_view = np.isfinite(corners).all()
    return replace(meta, corners=tuple((float(a), float(b)) for a, b in corners) if in_view else None)


# --- GeoJSON (RFC 7946: positions are [longitude, latitude(, elevation)]) -------------------------

def _number(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None      # JSON has no NaN or infinity


def point_features(geo: Geolocation, properties: Sequence[dict] | None = None) -> list[dict]:
    """One GeoJSON Feature per located point, its error in `properties.sigma_m`; a point whose line
    of sight misses the ground keeps its place with a null geometry."""
    properties = properties or [{}] * len(geo.points)
    if len(properties) != len(geo.points):
        raise ValueError(f"{len(properties)} property dicts for {len(geo.points)} points")
    out = []
    for (lat, lon, elev), sigma, props in zip(geo.points, geo.sigma_m, properties):
        geometry = {"type": "Point", "coordinates": [float(lon), float(lat), float(elev)]} \
            if np.isfinite([lat, lon, elev]).all() else None
        out.append({"type": "Feature", "geometry": geometry,
                    "properties": {**props, "sigma_m": _number(sigma), "method": geo.method}})
    return out


def footprint_feature(corners_latlon: np.ndarray, properties: dict | None = None) -> dict:
    """The picture's ground quadrilateral as a GeoJSON Polygon Feature: a closed ring in
    [lon, lat], counter-clockwise as RFC 7946 asks; a null geometry when a corner is above the horizon."""
    corners = np.asarray(corners_latlon, float)
    geometry = None
    if np.isfinite(corners).all():
        ring = corners[:, ::-1]
        x, y = ring[:, 0], ring[:, 1]
        if np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) < 0:    # shoelace: negative is clockwise
            ring = ring[::-1]
        geometry = {"type": "Polygon", "coordinates": [[[float(a), float(b)] for a, b in np.vstack([ring, ring[:1]])]]}
    return {"type": "Feature", "geometry": geometry, "properties": {"role": "footprint", **(properties or {})}}


def frame_geojson(meta: SensorMetadata, image_size: tuple[int, int], pixels_xy: np.ndarray,
                  properties: Sequence[dict] | None = None, *, errors: MetadataErrors = MetadataErrors(),
                  ground_elev: float | None = None) -> dict:
    """A FeatureCollection for one frame: its footprint, then a point per picture position (the feet
    of people, the bottom centre of objects) with its error."""
    geo = geolocate(meta, pixels_xy, image_size, errors=errors, ground_elev=ground_elev)
    return {"type": "FeatureCollection",
            "features": [footprint_feature(footprint(meta, image_size, ground_elev=ground_elev),
                                           {"method": geo.method}), *point_features(geo, properties)]}


def place(scene: SceneGraph, start: float, end: float, errors: MetadataErrors = MetadataErrors(),
          ground_elev: float | None = None) -> dict | None:
    """Where an event of a drone's camera is: a GeoJSON FeatureCollection for the last frame of
    `scene` inside [start, end] that has metadata (else its last frame that has any): the event's
    point (`role: event`), the frame's footprint (`role: footprint`) and each person and left
    object in that frame (`role: person` / `object`, their feet or bottom centre). None when no
    frame has metadata or the metadata cannot locate anything.

    The event's point is the middle of the people and objects it located, its `ce` (CoT's circular
    error, metres, 1 sigma) their own error and their spread together; with nobody located it is the
    picture's centre, with the footprint's reach as its error (the event is somewhere in view).
    `le` is the assumed terrain error: the flat earth's height is `ground_elev`, else the frame centre's."""
    sensors = scene.sensors
    times = scene.timestamps
    have = [i for i, m in enumerate(sensors) if m is not None]
    if not have:
        return None
    inside = [i for i in have if start - 1e-6 <= times[i] <= end + 1e-6]
    i = (inside or have)[-1]
    meta, size = sensors[i], scene.frame_size
    roles, points = [], []
    for t in scene.tracks:
        if t.present[i]:
            x0, _, x1, y1 = t.boxes[i]
            roles.append({"role": "person", "track_id": int(t.track_id)})
            points.append(((x0 + x1) / 2, y1))
    if i < len(scene.objects):
        for x0, _, x1, y1, _, oid in scene.objects[i]:
            roles.append({"role": "object", "object_id": int(oid)})
            points.append(((x0 + x1) / 2, y1))
    try:
        corners = footprint(meta, size, ground_elev=ground_elev)
        geo = geolocate(meta, np.asarray(points, float).reshape(-1, 2), size, errors=errors, ground_elev=ground_elev)
    except ValueError:
        return None
    found = np.isfinite(geo.points).all(1) & np.isfinite(geo.sigma_m)
    centre = None if found.any() else \
        geolocate(meta, np.array([[size[0] / 2, size[1] / 2]]), size, errors=errors, ground_elev=ground_elev)
    if found.any():
        origin = (float(np.mean(geo.points[found, 0])), float(np.mean(geo.points[found, 1])), float(geo.points[found, 2][0]))
        enu = geodetic_to_enu(geo.points[found], origin)[:, :2]
        spread = float(np.sqrt(np.mean(np.sum(enu ** 2, axis=1)) / 2))
        ce = float(np.sqrt(np.mean(geo.sigma_m[found] ** 2) + spread ** 2))
        point = origin
    elif np.isfinite(centre.points).all():
        point = tuple(float(v) for v in centre.points[0])
        reach = geodetic_to_enu(np.column_stack([corners, np.full(4, point[2])]), point)[:, :2] \
            if np.isfinite(corners).all() else np.full((1, 2), np.nan)
        ce = float(np.nanmax(np.hypot(reach[:, 0], reach[:, 1]))) if np.isfinite(reach).any() else None
    else:
        return None
    event = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [point[1], point[0], point[2]]},
             "properties": {"role": "event", "ce": _number(ce) if ce is not None else None, "le": errors.ground_m,
                            "located": int(found.sum()), "method": geo.method, "time": float(times[i]),
                            "sensor_time_us": meta.time_us}}
    return {"type": "FeatureCollection",
            "features": [event, footprint_feature(corners, {"method": geo.method}), *point_features(geo, roles)]}
