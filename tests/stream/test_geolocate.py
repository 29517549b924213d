"""Drone pixels to the ground (stream/scene/geolocate.py): known geometries give known places, the
two methods agree, and the error estimate behaves as the geometry says it must."""
from __future__ import annotations

import json
from dataclasses import replace

import cv2
import numpy as np
import pytest

from bench.drone_flight import PERSON_COLOURS, Flight, SyntheticFlight

from stream.scene.geolocate import (
    MetadataErrors, camera_from_metadata, ecef_to_geodetic, enu_to_geodetic, footprint, frame_geojson,
    geodetic_to_ecef, geodetic_to_enu, geolocate, ground_points, project, sensor_angles, sensor_to_ned,
    with_ground_truth,
)
from stream.types import SensorMetadata

SIZE = (640, 360)
GROUND = 50.0          # metres above the ellipsoid
LAT, LON = 45.0, 7.0   # far apart, so a swapped pair shows


def drone(altitude=100.0, off_nadir=0.0, heading=0.0, pitch=0.0, roll=0.0, rel_az=0.0, rel_roll=0.0, hfov=30.0):
    """A drone above (LAT, LON) whose camera looks `off_nadir` degrees from straight down, along
    the nose when rel_az is 0; frame centre and corners filled in by the model."""
    meta = SensorMetadata(platform_heading=heading, platform_pitch=pitch, platform_roll=roll, sensor_rel_az=rel_az,
                          sensor_rel_el=off_nadir - 90.0 - pitch, sensor_rel_roll=rel_roll, sensor_lat=LAT,
                          sensor_lon=LON, sensor_alt=GROUND + altitude, hfov=hfov)
    return with_ground_truth(meta, SIZE, GROUND)


def metres(llh, origin=(LAT, LON, GROUND)):
    """East/north metres of (N, 3) or (N, 2) lat/lon(/h) points from the sensor's nadir."""
    llh = np.asarray(llh, float)
    if llh.shape[1] == 2:
        llh = np.column_stack([llh, np.full(len(llh), GROUND)])
    return geodetic_to_enu(llh, origin)[:, :2]


def test_wgs84_round_trip_and_known_points():
    assert np.allclose(geodetic_to_ecef(0.0, 0.0, 0.0), [6378137.0, 0.0, 0.0])
    assert np.allclose(geodetic_to_ecef(90.0, 0.0, 0.0), [0.0, 0.0, 6356752.314245], atol=1e-6)
    llh = np.array([[45.0, 7.0, 50.0], [-33.9, 151.2, 2000.0], [64.1, -21.9, -30.0]])
    assert np.abs(ecef_to_geodetic(geodetic_to_ecef(*llh.T)) - llh).max() < 1e-7
    enu = np.array([[120.0, -340.0, 15.0]])
    assert np.allclose(geodetic_to_enu(enu_to_geodetic(enu, llh[0]), llh[0]), enu, atol=1e-6)


def test_nadir_camera_puts_the_image_centre_below_the_sensor():
    meta = drone(altitude=300.0, heading=37.0)
    point = ground_points(meta, [[SIZE[0] / 2, SIZE[1] / 2]], SIZE)[0]
    assert np.abs(metres([point])).max() < 1e-3
    assert point[2] == GROUND


def test_45_degrees_off_nadir_at_100_m_looks_100_m_along_the_nose():
    meta = drone(altitude=100.0, off_nadir=45.0, heading=90.0)   # nose east
    east, north = metres(ground_points(meta, [[SIZE[0] / 2, SIZE[1] / 2]], SIZE))[0]
    assert east == pytest.approx(100.0, abs=0.01) and north == pytest.approx(0.0, abs=0.01)
    assert meta.slant_range == pytest.approx(100.0 * np.sqrt(2), abs=0.01)


def test_image_top_is_ahead_and_image_right_is_right_of_the_nose():
    meta = drone(altitude=100.0)                                 # nose north, looking down
    top, right = metres(ground_points(meta, [[320, 0], [640, 180]], SIZE))
    assert top[1] > 10 and abs(top[0]) < 1e-6
    assert right[0] > 20 and abs(right[1]) < 1e-6


def test_platform_roll_right_wing_down_swings_a_belly_camera_to_the_left():
    level, rolled = (metres(ground_points(drone(altitude=100.0, roll=r), [[320, 180]], SIZE))[0] for r in (0.0, 10.0))
    assert rolled[0] == pytest.approx(level[0] - 100.0 * np.tan(np.radians(10.0)), abs=0.01)   # nose north: west


def test_sensor_angles_undo_the_attitude():
    look = np.array([0.3, -0.8, -0.5])
    az, el = sensor_angles(20.0, 3.0, -7.0, look)
    axis = sensor_to_ned(20.0, 3.0, -7.0, az, el, 11.0)[:, 0]
    assert np.allclose([axis[1], axis[0], -axis[2]], look / np.linalg.norm(look))


@pytest.mark.parametrize("altitude,off_nadir", [(100.0, 0.0), (300.0, 30.0), (1000.0, 60.0)])
def test_projecting_and_locating_again_returns_the_same_place(altitude, off_nadir):
    meta = drone(altitude=altitude, off_nadir=off_nadir, heading=123.0, pitch=4.0, roll=-6.0, rel_az=35.0, rel_roll=3.0)
    pixels = np.random.default_rng(1).uniform([0, 0], SIZE, (50, 2))
    truth = ground_points(meta, pixels, SIZE)
    cam = camera_from_metadata(meta, SIZE)
    on_plane = enu_to_geodetic(cam.ground_enu(pixels), cam.origin)      # exactly on the ground plane
    again = ground_points(meta, project(meta, on_plane, SIZE), SIZE)
    assert np.abs(metres(again[:, :2]) - metres(on_plane[:, :2])).max() < 0.1
    assert np.abs(metres(truth[:, :2]) - metres(on_plane[:, :2])).max() < 0.01


def test_corner_homography_agrees_with_the_camera_model():
    meta = drone(altitude=300.0, off_nadir=40.0, heading=250.0, pitch=2.0, roll=5.0, rel_az=80.0, rel_roll=-4.0)
    pixels = np.random.default_rng(2).uniform([0, 0], SIZE, (50, 2))
    ray = ground_points(meta, pixels, SIZE, method="ray")
    corners = ground_points(meta, pixels, SIZE, method="corners")
    assert np.abs(metres(ray[:, :2]) - metres(corners[:, :2])).max() < 0.05
    assert geolocate(meta, pixels, SIZE, method="auto").method == "ray"


def test_without_angles_the_corners_are_used_and_without_either_the_error_names_what_is_missing():
    meta = replace(drone(altitude=300.0, off_nadir=30.0), platform_roll=None, sensor_rel_el=None)
    assert geolocate(meta, [[10.0, 10.0]], SIZE).method == "corners"
    with pytest.raises(ValueError, match="platform_roll, sensor_rel_el"):
        ground_points(replace(meta, corners=None), [[10.0, 10.0]], SIZE)
    with pytest.raises(ValueError, match="platform_roll, sensor_rel_el"):
        ground_points(meta, [[10.0, 10.0]], SIZE, method="ray")
    with pytest.raises(ValueError, match="frame centre elevation"):
        ground_points(replace(meta, frame_center_elev=None), [[10.0, 10.0]], SIZE)


def test_pixels_at_or_above_the_horizon_have_no_ground_point():
    meta = replace(drone(altitude=100.0, off_nadir=80.0), corners=None)   # vfov ~17 deg: the top reaches 88.6 deg
    meta = replace(meta, sensor_rel_el=-5.0)                             # now the top rows look above the horizon
    geo = geolocate(meta, [[320.0, 0.0], [320.0, 360.0]], SIZE)
    assert np.isnan(geo.points[0]).all() and np.isnan(geo.sigma_m[0])
    assert np.isfinite(geo.points[1]).all() and np.isfinite(geo.sigma_m[1])
    assert np.isnan(footprint(meta, SIZE)[:2]).all()


def test_footprint_is_a_closed_counter_clockwise_lon_lat_ring():
    meta = drone(altitude=300.0, off_nadir=30.0, heading=70.0)
    doc = json.loads(json.dumps(frame_geojson(meta, SIZE, [[320.0, 180.0], [320.0, -5000.0]],
                                              [{"label": "person"}, {"label": "sky"}]), allow_nan=False))
    polygon, person, sky = doc["features"]
    ring = np.array(polygon["geometry"]["coordinates"][0])
    assert len(ring) == 5 and (ring[0] == ring[-1]).all()
    assert np.allclose(ring[:, 0], LON, atol=0.01) and np.allclose(ring[:, 1], LAT, atol=0.01)
    x, y = ring[:-1, 0], ring[:-1, 1]
    assert np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) > 0
    lon, lat, elev = person["geometry"]["coordinates"]
    assert (lat, lon) == pytest.approx((meta.frame_center_lat, meta.frame_center_lon), abs=1e-7)
    assert elev == GROUND and person["properties"]["label"] == "person" and person["properties"]["sigma_m"] > 0
    assert sky["geometry"] is None and sky["properties"]["sigma_m"] is None


def test_uncertainty_grows_with_altitude_and_obliquity():
    def sigma(altitude, off_nadir):
        return geolocate(drone(altitude=altitude, off_nadir=off_nadir), [[320.0, 180.0]], SIZE).sigma_m[0]
    assert sigma(100.0, 0.0) < sigma(300.0, 0.0) < sigma(1000.0, 0.0)
    assert sigma(300.0, 0.0) < sigma(300.0, 30.0) < sigma(300.0, 60.0)
    # with no error assumed there is none; the ground's height alone moves a nadir centre not at all
    quiet = MetadataErrors(0, 0, 0, 0, 0, 0, 0)
    assert geolocate(drone(altitude=300.0, off_nadir=30.0), [[1.0, 1.0]], SIZE, errors=quiet).sigma_m[0] == 0
    only_ground = replace(quiet, ground_m=20.0)
    assert geolocate(drone(altitude=300.0), [[320.0, 180.0]], SIZE, errors=only_ground).sigma_m[0] < 1e-6
    tilted = geolocate(drone(altitude=300.0, off_nadir=45.0), [[320.0, 180.0]], SIZE, errors=only_ground)
    assert tilted.sigma_m[0] == pytest.approx(20.0 / np.sqrt(2), rel=1e-3)   # 20 m along one axis


def test_an_unknown_method_lists_the_choices():
    with pytest.raises(ValueError, match="auto, ray, corners"):
        ground_points(drone(), [[0.0, 0.0]], SIZE, method="dem")


# --- the synthetic test flights (bench/drone_flight.py) -------------------------------------------

def test_a_synthetic_flight_is_the_same_for_the_same_seed():
    a, b, c = (SyntheticFlight(Flight(altitude_m=100.0, off_nadir_deg=30.0, frames=3, seed=s)).frame(1)
               for s in (3, 3, 4))
    assert np.array_equal(a.image, b.image) and a.meta == b.meta and np.array_equal(a.people_llh, b.people_llh)
    assert not np.array_equal(a.image, c.image) and not np.array_equal(a.people_llh, c.people_llh)


@pytest.mark.parametrize("path,altitude,off_nadir", [("circle", 300.0, 30.0), ("line", 1000.0, 60.0)])
def test_a_synthetic_frame_shows_the_ground_where_its_metadata_says(path, altitude, off_nadir):
    flight = Flight(path=path, altitude_m=altitude, off_nadir_deg=off_nadir, frames=3, people=0)
    synthetic = SyntheticFlight(flight)
    frame = synthetic.frame(2)
    # the lens axis meets the ground at the reported frame centre, at the asked obliquity
    down = -frame.camera.rotation[:, 0]
    assert np.degrees(np.arccos(down[2])) == pytest.approx(off_nadir, abs=0.01)
    centre = ground_points(frame.meta, [[320.0, 180.0]], SIZE)[0]
    on_plane = frame.camera.ground_enu(np.array([[320.0, 180.0]]))
    assert np.abs(geodetic_to_enu(centre[None], flight.target)[:, :2] - on_plane[:, :2]).max() < 0.05
    # each pixel shows the texture at the ground point the model puts under it, and not the one a pixel over
    xs, ys = np.meshgrid(np.arange(8, 632, 16), np.arange(8, 352, 16))
    pixels = np.column_stack([xs.ravel(), ys.ravel()]) + 0.5
    r, s = synthetic.half_extent, synthetic.texel_m

    def texture_under(px):
        enu = frame.camera.ground_enu(px)
        cols, rows = ((enu[:, 0] + r) / s - 0.5).astype(np.float32), ((r - enu[:, 1]) / s - 0.5).astype(np.float32)
        return cv2.remap(synthetic.texture, cols[None], rows[None], cv2.INTER_LINEAR)[0].astype(float)

    shown = frame.image[ys.ravel(), xs.ravel()].astype(float)
    right = np.abs(shown - texture_under(pixels)).mean()
    assert right < 3.0
    assert right < np.abs(shown - texture_under(pixels + [1.0, 0.0])).mean() / 2


def test_walkers_are_drawn_where_the_model_puts_them():
    synthetic = SyntheticFlight(Flight(altitude_m=100.0, off_nadir_deg=30.0, frames=5, people=6, seed=1))
    frame = synthetic.frame(2)
    assert frame.in_view.sum() >= 3
    for (x, y), colour in zip(frame.people_xy[frame.in_view], np.array(PERSON_COLOURS)[:6][frame.in_view]):
        assert (frame.image[int(y), int(x)] == colour).all()
    located = ground_points(frame.meta, frame.people_xy[frame.in_view], SIZE)
    truth = frame.people_llh[frame.in_view]
    target = synthetic.flight.target
    assert np.abs(geodetic_to_enu(located, target)[:, :2] - geodetic_to_enu(truth, target)[:, :2]).max() < 0.05


def test_a_feed_without_the_frame_centres_elevation_is_placed_once_the_camera_says_the_grounds():
    """`cameras.<id>.geolocation.ground_elevation_m`: a feed without tag 25 places nothing until it
    is set; set, the event lands where the same feed with the elevation puts it, with the camera's
    own errors (a larger terrain error gives a larger `le` and `ce`)."""
    from dataclasses import replace as copy

    from stream.config import ConfigError, GeolocationConfig, parse_config
    from stream.scene.geolocate import MetadataErrors, place, with_ground_truth
    from stream.types import PersonTrack, SceneGraph
    size = (640, 360)
    meta = with_ground_truth(SensorMetadata(platform_heading=10.0, platform_pitch=0.0, platform_roll=0.0,
                                            sensor_rel_az=0.0, sensor_rel_el=-60.0, sensor_rel_roll=0.0,
                                            sensor_lat=45.0, sensor_lon=7.0, sensor_alt=400.0, hfov=40.0), size, 250.0)
    track = PersonTrack(1, np.array([True]), np.array([[300.0, 150.0, 320.0, 210.0]]), np.array([0.9]),
                        np.zeros((1, 17, 3)))

    def scene(m):
        return SceneGraph("uav", 0, 0.0, 1.0, np.array([0.5]), np.array([0.5]), size, (track,), sensors=(m,))
    bare = copy(meta, frame_center_elev=None)
    assert place(scene(bare), 0.0, 1.0) is None
    with_elev = place(scene(meta), 0.0, 1.0)
    models = {"person_detector": {"path": "x.onnx"}, "pose": {"path": "y.onnx"}}
    cfg = parse_config({"models": models, "cameras": {"uav": {
        "url": "udp://0.0.0.0:5600", "geolocation": {"ground_elevation_m": 250.0, "ground_m": 20.0}}}}, check_files=False)
    g = cfg.cameras["uav"].geolocation
    told = place(scene(bare), 0.0, 1.0, MetadataErrors(**g.model_dump(exclude={"ground_elevation_m"})),
                 g.ground_elevation_m)
    event = lambda geo: next(f for f in geo["features"] if f["properties"]["role"] == "event")  # noqa: E731
    np.testing.assert_allclose(event(told)["geometry"]["coordinates"], event(with_elev)["geometry"]["coordinates"],
                               atol=1e-9)
    assert event(told)["properties"]["le"] == 20.0 and event(told)["properties"]["ce"] > event(with_elev)["properties"]["ce"]
    assert GeolocationConfig().ground_elevation_m is None
    with pytest.raises(ConfigError, match="cameras.uav.geolocation.heading_deg"):
        parse_config({"models": models, "cameras": {"uav": {"url": "udp://0.0.0.0:5600",
                                                            "geolocation": {"heading_deg": -1}}}}, check_files=False)
