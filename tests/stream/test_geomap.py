"""A drone event's map on the console (stream/http/console/geomap.py) and its GeoJSON route: the
projection puts known offsets at known metres, the map fits the footprint with north up and draws
the error to scale, and the API hands the geometry out unchanged (or a 404 saying why not). The
app is the real one over a real outbox."""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest
from fastapi.testclient import TestClient

from stream.alerts.reviews import ReviewStore
from stream.http import create_app
from stream.http.console.geomap import MAP_H, MAP_W, Located, View, fit, located, map_svg, scale_bar, to_metres
from stream.http.readmodel import ReadModel
from tests.harness import OutboxPipeline, drone_geometry, placed_outbox

SVG = "{http://www.w3.org/2000/svg}"


def test_offsets_in_degrees_become_metres_east_and_north_of_the_origin():
    origin = Located(45.0, 7.0, None)
    east, north = to_metres(7.001, 45.001, origin)
    assert north == pytest.approx(111.32, abs=0.01)                           # a thousandth of a degree north
    assert east == pytest.approx(111.32 * math.cos(math.radians(45.0)), abs=0.01)   # narrower east, at 45 degrees
    assert to_metres(7.0, 45.0, origin) == (0.0, 0.0)


def test_the_view_fits_every_point_with_a_margin_north_up_at_one_scale():
    points = [(-50.0, -20.0), (150.0, 30.0), (0.0, 0.0)]                      # 200 m wide, 50 m tall
    view = fit(points, width=500, height=400, margin=0.1)
    xy = [view.xy(*p) for p in points]
    assert all(0 < x < 500 and 0 < y < 400 for x, y in xy)
    assert view.scale == pytest.approx(500 / (200 * 1.2))                      # the width binds, margin included
    assert min(x for x, _ in xy) == pytest.approx(500 * 0.1 / 1.2)           # centred: equal margins left and right
    assert xy[1][1] < xy[2][1] < xy[0][1]                                      # further north is higher up
    lone = fit([(0.0, 0.0)], width=500, height=400, min_span=40.0)
    assert lone.xy(0.0, 0.0) == pytest.approx((250.0, 200.0)) and lone.scale < 10   # a lone point: 40 m at least


def test_the_scale_bar_is_a_round_length_near_a_fifth_of_the_map():
    for scale, bar in ((1.0, 100.0), (3.0, 20.0), (0.05, 2000.0)):      # pixels a metre: 500 px are 500, 167, 10,000 m
        assert scale_bar(View(0.0, 0.0, scale), width=500) == bar


def test_a_drone_events_map_draws_its_footprint_error_people_and_objects_to_scale():
    event = {"geometry": drone_geometry()}
    at = located(event)
    root = ET.fromstring(map_svg(event))
    assert root.get("viewBox") == f"0 0 {MAP_W} {MAP_H}"
    polygon = root.find(f"{SVG}polygon[@class='footprint']")
    corners = [tuple(map(float, p.split(","))) for p in polygon.get("points").split()]
    assert len(corners) == 5 and corners[0] == corners[-1]                    # the closed ring
    assert all(0 < x < MAP_W and 0 < y < MAP_H for x, y in corners)           # fitted inside
    event_dot = root.find(f"{SVG}g[@class='event']/{SVG}circle")
    ce = root.find(f"{SVG}circle[@class='ce']")
    assert (ce.get("cx"), ce.get("cy")) == (event_dot.get("cx"), event_dot.get("cy"))
    bar = root.find(f"{SVG}g[@class='scale']")
    metres = float(bar.find(f"{SVG}text").text.removesuffix(" m"))
    bar_px = float(bar.find(f"{SVG}path").get("d").split(" h")[1].split()[0])
    assert float(ce.get("r")) == pytest.approx(at.ce * bar_px / metres, rel=0.01)   # the error, at the bar's scale
    assert len(root.findall(f"{SVG}g[@class='person']")) == 2 and len(root.findall(f"{SVG}g[@class='object']")) == 1
    assert "person 3 ±" in root.find(f"{SVG}g[@class='person']/{SVG}title").text
    assert root.find(f"{SVG}g[@class='north']/{SVG}text").text == "N"


def test_an_event_without_a_point_on_the_ground_has_no_map():
    assert map_svg({"alert_id": "fixed"}) is None and located({"alert_id": "fixed"}) is None
    geometry = drone_geometry()
    for f in geometry["features"]:
        f["geometry"] = None                        # every line of sight missed the ground
    assert map_svg({"geometry": geometry}) is None


@pytest.fixture
def api(tmp_path):
    box, stored = placed_outbox(tmp_path / "outbox.sqlite")
    reviews = ReviewStore(tmp_path / "reviews.sqlite")
    yield TestClient(create_app(ReadModel(OutboxPipeline(box), reviews), None),
                     base_url="http://127.0.0.1:8080"), stored
    reviews.close()
    box.close()


def test_the_api_hands_out_a_drone_events_geometry_unchanged_and_as_geojson(api):
    client, stored = api
    assert client.get("/api/events/flown").json()["geometry"] == stored["flown"]["geometry"] == drone_geometry()
    r = client.get("/api/events/flown/geometry.geojson")
    assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
    assert r.json() == stored["flown"]["geometry"]
    listed = {e["alert_id"]: e for e in client.get("/api/events").json()["events"]}
    assert listed["flown"]["geometry"] == stored["flown"]["geometry"] and "geometry" not in listed["fixed"]
    described = client.get("/openapi.json").json()["paths"]["/api/events/{alert_id}/geometry.geojson"]["get"]
    assert "application/geo+json" in described["responses"]["200"]["content"]


def test_the_geojson_of_an_event_without_geometry_is_a_404_saying_why(api):
    client, _ = api
    r = client.get("/api/events/fixed/geometry.geojson")
    assert r.status_code == 404 and "has no geometry: only a drone's camera" in r.json()["detail"]
    r = client.get("/api/events/nope/geometry.geojson")
    assert r.status_code == 404 and r.json()["detail"] == "no event 'nope' in the outbox"
    assert client.get("/api/events/fixed/keyframe.jpg").status_code == 404   # the evidence route still answers
