"""The event page's map of a drone alert's `geometry` (a GeoJSON FeatureCollection made by
stream/scene/geolocate.py `place`), drawn here as an SVG.

Drawn on the server, like the score timeline, and with no tiles: a tile server or a map script
would need the internet, and a console on a closed site has none. What an operator needs from the
map is the shape of the place, not a basemap: where in the camera's ground footprint the event is,
how far its circular error reaches, where the people it averaged stand, and the scale and north to
read it by. The page links to OpenStreetMap for the basemap where there is internet.

The projection is equirectangular around the event point (metres east and north of it): over a
footprint a few hundred metres across it is off by far less than the geolocation's own error.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

from stream.alerts.cot import UNKNOWN, event_point

M_PER_DEG = 111_320.0           # metres per degree of latitude (and of longitude at the equator)
MAP_W, MAP_H = 560, 400         # the SVG's size, pixels
MARGIN = 0.12                   # of the fitted span, on each side
MIN_SPAN_M = 40.0               # the narrowest view: a lone point still shows its surroundings


@dataclass(frozen=True)
class Located:
    """Where an event is: its point and its circular error (metres, 1 sigma; None when unknown)."""
    lat: float
    lon: float
    ce: float | None


def located(event: dict) -> Located | None:
    """The event's point on the ground, or None (a fixed camera's event, or one not placed)."""
    point = event_point(event)
    if point is None:
        return None
    lat, lon, _, ce, _ = point
    return Located(lat, lon, ce if ce < UNKNOWN and math.isfinite(ce) else None)


def to_metres(lon: float, lat: float, origin: Located) -> tuple[float, float]:
    """(east, north) metres of a point from `origin`, equirectangular."""
    return ((lon - origin.lon) * math.cos(math.radians(origin.lat)) * M_PER_DEG, (lat - origin.lat) * M_PER_DEG)


@dataclass(frozen=True)
class View:
    """Metres to SVG pixels: `west`, `north` are the view's top-left corner in metres from the
    origin, `scale` pixels per metre (the same both ways, so a circle stays round; y grows south)."""
    west: float
    north: float
    scale: float

    def xy(self, east: float, north: float) -> tuple[float, float]:
        return (east - self.west) * self.scale, (self.north - north) * self.scale


def fit(points: list[tuple[float, float]], width: float = MAP_W, height: float = MAP_H, margin: float = MARGIN,
        min_span: float = MIN_SPAN_M) -> View:
    """The view that shows every (east, north) point with `margin` around them, centred, at least
    `min_span` metres across."""
    assert points, "nothing to fit"
    es, ns = [p[0] for p in points], [p[1] for p in points]
    span_e, span_n = max(max(es) - min(es), min_span), max(max(ns) - min(ns), min_span)
    scale = min(width / (span_e * (1 + 2 * margin)), height / (span_n * (1 + 2 * margin)))
    mid_e, mid_n = (max(es) + min(es)) / 2, (max(ns) + min(ns)) / 2
    return View(mid_e - width / scale / 2, mid_n + height / scale / 2, scale)


def scale_bar(view: View, width: float = MAP_W) -> float:
    """A round length (1, 2 or 5 times a power of ten, metres) about a fifth of the map's width."""
    target = width / 5 / view.scale
    power = 10 ** math.floor(math.log10(target))
    return max(m * power for m in (1, 2, 5) if m * power <= target)


def _features(geometry: dict, role: str, kind: str) -> list[tuple[dict, dict]]:
    """(geometry, properties) of the features with `role` whose geometry is a `kind` (a feature
    whose line of sight missed the ground has none, and is left out)."""
    out = []
    for f in geometry.get("features", []):
        geo, props = f.get("geometry") or {}, f.get("properties") or {}
        if props.get("role") == role and geo.get("type") == kind:
            out.append((geo, props))
    return out


def map_svg(event: dict) -> str | None:
    """The event's map, or None when it has no point on the ground: the footprint, the event point
    with its circular error as a circle of that radius, the people and objects, a scale bar in
    metres and a north arrow; each mark has a tooltip."""
    at = located(event)
    if at is None:
        return None
    geometry = event["geometry"]
    rings = [[to_metres(c[0], c[1], at) for c in geo["coordinates"][0]]
             for geo, _ in _features(geometry, "footprint", "Polygon")]
    marks = [(role, to_metres(*geo["coordinates"][:2], at), props)
             for role in ("person", "object") for geo, props in _features(geometry, role, "Point")]
    view = fit([(0.0, 0.0), *(p for ring in rings for p in ring), *(p for _, p, _ in marks)])

    def pt(p: tuple[float, float]) -> str:
        x, y = view.xy(*p)
        return f"{x:.1f},{y:.1f}"

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {MAP_W} {MAP_H}" class="geomap" role="img" '
             f'aria-label="where the event is on the ground"><rect class="ground" width="{MAP_W}" height="{MAP_H}"/>']
    for ring in rings:
        parts.append(f'<polygon class="footprint" points="{" ".join(pt(p) for p in ring)}">'
                     f'<title>the camera\'s view on the ground</title></polygon>')
    x0, y0 = view.xy(0.0, 0.0)
    if at.ce is not None:
        parts.append(f'<circle class="ce" cx="{x0:.1f}" cy="{y0:.1f}" r="{at.ce * view.scale:.1f}">'
                     f'<title>circular error ± {at.ce:.1f} m (1 sigma)</title></circle>')
    for role, p, props in marks:
        x, y = view.xy(*p)
        ident = props.get("track_id") if role == "person" else props.get("object_id")
        sigma = props.get("sigma_m")
        title = escape(f"{role} {ident}" + (f" ± {sigma:.1f} m" if isinstance(sigma, (int, float)) else ""))
        shape = (f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4"/>' if role == "person" else
                 f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8"/>')
        parts.append(f'<g class="{role}"><title>{title}</title>{shape}</g>')
    parts.append(f'<g class="event"><title>the event: {at.lat:.6f}, {at.lon:.6f}</title>'
                 f'<circle cx="{x0:.1f}" cy="{y0:.1f}" r="6"/></g>')
    bar = scale_bar(view)
    length = bar * view.scale
    parts.append(f'<g class="scale"><path d="M12 {MAP_H - 18} v6 h{length:.1f} v-6"/>'
                 f'<text x="{12 + length / 2:.1f}" y="{MAP_H - 22}" text-anchor="middle">{bar:g} m</text></g>')
    parts.append(f'<g class="north"><path d="M{MAP_W - 24} 14 l8 22 l-8 -6 l-8 6 z"/>'
                 f'<text x="{MAP_W - 24}" y="50" text-anchor="middle">N</text></g>')
    parts.append("</svg>")
    return "".join(parts)
