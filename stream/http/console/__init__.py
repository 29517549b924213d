"""The web console: server-rendered pages, in the HTTP API's app, reading its read model
(stream/http/readmodel.py).

    /                   every camera: its snapshot (refreshed every second) and state
    /cameras/{c}        a camera: snapshot with zones (drawn here), score timeline with its events, chat
    /events             events, newest first, by camera and category
    /events/{id}        an event: keyframe, clip, explanation, span, the review buttons, and a
                        drone's event on a map (geomap.py: an SVG drawn here, no tiles)
    /login              the token, where the API wants one (kept in a cookie)

Jinja templates and one small script (static/console.js: refreshes, chat, the zone editor); no
build step, nothing fetched from elsewhere, so the console works on a site without internet.
The timeline is an SVG drawn here from the scores the read model keeps (`Recent`) and the events
in the outbox. A page is a function on `router` below and its template.
"""
from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from stream.alerts.reviews import ReviewError
from stream.http.auth import COOKIE, session, token_matches
from stream.http.console.geomap import located, map_svg
from stream.http.readmodel import ReadModel
from stream.http.state import read_model

HERE = Path(__file__).parent
TIMELINE_W, TIMELINE_H = 900, 180       # the timeline's SVG size, pixels
TIMELINE_LEFT = 34                      # where its plot starts (the score axis is left of it)
SVG_STYLE = (".plot{fill:#0c0f13;stroke:#2c333d}.event{fill:rgba(200,69,61,.3)}.event.open,.event.update"
             "{fill:rgba(201,148,43,.35)}.threshold{stroke:#8b95a1;stroke-dasharray:4 3;stroke-width:1}"
             ".threshold.open{stroke:#c8453d}.scores{fill:none;stroke:#4d9de0;stroke-width:1.6}"
             ".axis{fill:#8b95a1;font:11px system-ui,sans-serif}.footage{fill:#3f7f4f}")
STATE_CLASSES = {"streaming": "ok", "connecting": "warn", "reconnecting": "warn", "stalled": "warn"}

templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters["clock"] = lambda t: datetime.fromtimestamp(t).strftime("%H:%M:%S") if t else "–"
templates.env.filters["day"] = lambda t: datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S") if t else "–"
templates.env.filters["located"] = located
templates.env.globals["state_class"] = lambda state: STATE_CLASSES.get(state, "bad")


def timeline_svg(rows: list[dict], events: list[dict], *, start: float, end: float, open_threshold: float,
                 close_threshold: float, footage: list[dict] | None = None) -> str:
    """The scores of [start, end] (wall clock) as a curve, the thresholds as lines, the events as
    bands linking to their pages, and where footage is recorded as a strip along the bottom."""
    w, h, left, bottom = TIMELINE_W, TIMELINE_H, TIMELINE_LEFT, 20
    span = max(end - start, 1e-6)

    def x(t: float) -> float:
        return left + (w - left - 4) * (min(max(t, start), end) - start) / span

    def y(score: float) -> float:
        return 6 + (h - bottom - 6) * (1.0 - score)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" class="timeline" role="img" '
             f'aria-label="scores and events"><style>{SVG_STYLE}</style>',
             f'<rect x="{left}" y="6" width="{w - left - 4}" height="{h - bottom - 6}" class="plot"/>']
    for e in events:
        x0, x1 = x(e["wall_start"]), x(e["wall_end"] if e["state"] == "close" else end)
        parts.append(f'<a href="/events/{e["alert_id"]}"><rect class="event {e["state"]}" x="{x0:.1f}" y="6" '
                     f'width="{max(x1 - x0, 2):.1f}" height="{h - bottom - 6}"><title>{e["category"]} '
                     f'{e["score"]:.2f} ({e["state"]})</title></rect></a>')
    for seg in footage or []:
        x0, x1 = x(seg["start"]), x(seg["end"] if seg["end"] is not None else end)
        parts.append(f'<rect class="footage" x="{x0:.1f}" y="{h - bottom - 4}" width="{max(x1 - x0, 1):.1f}" height="4"/>')
    for value, name in ((open_threshold, "open"), (close_threshold, "close")):
        parts.append(f'<line class="threshold {name}" x1="{left}" x2="{w - 4}" y1="{y(value):.1f}" y2="{y(value):.1f}"/>')
    for value in (0.0, open_threshold, 1.0):
        parts.append(f'<text x="2" y="{y(value) + 4:.1f}" class="axis">{value:.2f}</text>')
    points, seen = [], set()
    for r in rows:
        duration = max(r["end"] - r["start"], 1e-6)
        for s in r["seconds"]:
            t = r["wall_start"] + (r["wall_end"] - r["wall_start"]) * ((s["start"] + s["end"]) / 2 - r["start"]) / duration
            key = round(s["start"], 3)
            if start <= t <= end and key not in seen:     # overlapping windows score a second twice: the first
                seen.add(key)
                points.append((t, s["score"]))
    points.sort()
    if points:
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
        parts.append(f'<polyline class="scores" points="{path}"/>')
    for k in range(6):
        t = start + span * k / 5
        anchor = "start" if k == 0 else "end" if k == 5 else "middle"
        parts.append(f'<text x="{x(t):.1f}" y="{h - 5}" class="axis" text-anchor="{anchor}">'
                     f'{datetime.fromtimestamp(t).strftime("%H:%M:%S")}</text>')
    parts.append("</svg>")
    return "".join(parts)


router = APIRouter(include_in_schema=False)


def cameras(read: ReadModel) -> list[dict]:
    out = []
    for cam in read.camera_ids():
        health = read.health_of(cam)
        out.append({"id": cam, "state": health.get("state", "starting"), "health": health, "zones": read.zones_of(cam)})
    return out


@router.get("/", response_class=HTMLResponse)
def grid(request: Request, read: ReadModel = Depends(read_model)):
    return templates.TemplateResponse(request, "grid.html", {"cameras": cameras(read), "page": "cameras"})


@router.get("/cameras/{camera}", response_class=HTMLResponse)
def camera_page(request: Request, camera: str, minutes: float = Query(10.0, gt=0.0, le=60.0, allow_inf_nan=False),
                read: ReadModel = Depends(read_model)):
    found = next((c for c in cameras(read) if c["id"] == camera), None)
    if found is None:
        raise HTTPException(404, f"no camera {camera!r}")
    zones = found["zones"].as_config() if found["zones"] is not None else {}
    recorded = read.recorded(camera)
    return templates.TemplateResponse(request, "camera.html", {
        "camera": found, "page": "cameras", "minutes": minutes, "zones_json": json.dumps(zones), "recorded": recorded,
        "events": read.events(camera=camera, limit=20), "talks": read.talks,
        "normal": read.normal(camera).status()})


@router.post("/cameras/{camera}/normal/reset")
def normal_reset(camera: str, read: ReadModel = Depends(read_model)):
    if not read.in_config(camera):
        raise HTTPException(404, f"no camera {camera!r}")
    read.normal(camera).reset()
    return RedirectResponse(f"/cameras/{camera}", status_code=303)


@router.get("/cameras/{camera}/timeline.svg")
def timeline(camera: str, minutes: float = Query(10.0, gt=0.0, le=60.0, allow_inf_nan=False),
             end: float | None = Query(None, ge=0.0, allow_inf_nan=False), read: ReadModel = Depends(read_model)):
    end = end or time.time()
    start = end - max(0.5, min(minutes, 60.0)) * 60.0
    rows = read.scores(camera, since=start)
    if rows:      # a camera that started within the span: the span starts with it (at least a minute)
        start = max(start, min(rows[0]["wall_start"] - 5.0, end - 60.0))
    events = [e for e in read.events(camera=camera, since=start - 3600, limit=200)
              if (e["wall_end"] if e["state"] == "close" else end) >= start]
    th = read.thresholds(camera)
    footage = read.recordings(camera, start, end) if read.recorded(camera) else None
    svg = timeline_svg(rows, events, start=start, end=end, open_threshold=th.open_threshold,
                       close_threshold=th.close_threshold, footage=footage)
    # the span drawn, for the page to turn a click into a time (the plot's left edge and width in the SVG's units)
    span = {"X-Timeline-Start": f"{start:.3f}", "X-Timeline-End": f"{end:.3f}",
            "X-Timeline-Plot": f"{TIMELINE_LEFT},{TIMELINE_W - TIMELINE_LEFT - 4},{TIMELINE_W}"}
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-store", **span})


@router.get("/events", response_class=HTMLResponse)
def events_page(request: Request, camera: str | None = None, category: str | None = None,
                offset: int = Query(0, ge=0, le=2**31),
                read: ReadModel = Depends(read_model)):
    limit = 50
    found = read.events(camera=camera or None, category=category or None, limit=limit + 1, offset=max(0, offset))
    return templates.TemplateResponse(request, "events.html", {
        "events": found[:limit], "page": "events", "camera": camera or "", "category": category or "",
        "cameras": read.camera_ids(), "offset": offset, "next_offset": offset + limit if len(found) > limit else None})


@router.get("/events/{alert_id}", response_class=HTMLResponse)
def event_page(request: Request, alert_id: str, read: ReadModel = Depends(read_model)):
    event = read.event(alert_id)
    if event is None:
        raise HTTPException(404, f"no event {alert_id!r}")
    kinds = {e["kind"] for e in event.get("evidence", [])}
    return templates.TemplateResponse(request, "event.html", {
        "event": event, "page": "events", "kinds": kinds, "review": event["review"], "where": located(event),
        "map_svg": map_svg(event)})


@router.post("/events/{alert_id}/review")
def review_form(alert_id: str, label: str = Form(...), note: str = Form(""), read: ReadModel = Depends(read_model)):
    event = read.event(alert_id)
    if event is None:
        raise HTTPException(404, f"no event {alert_id!r} to review")
    try:
        read.review(event, label, note)
    except ReviewError as e:
        raise HTTPException(422, str(e)) from None
    return RedirectResponse(f"/events/{alert_id}", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login(request: Request, next: str = "/"):
    return templates.TemplateResponse(request, "login.html", {"next": next, "page": "", "wrong": False})


@router.post("/login")
def login_post(request: Request, token: str = Form(...), next: str = Form("/")):
    address = request.client.host if request.client else ""
    limiter = request.app.state.sign_in
    wait = limiter.wait_s(address)
    if wait > 0:
        raise HTTPException(429, f"too many wrong tokens from {address}: try again in {wait:.0f} s",
                            headers={"Retry-After": str(int(wait) + 1)})
    if token_matches(request, token):
        target = next if next.startswith("/") and not next.startswith("//") else "/"
        response = RedirectResponse(target, status_code=303)
        expected, hours = request.app.state.token, request.app.state.session_hours
        if expected is not None:
            response.set_cookie(COOKIE, session(expected, hours), max_age=int(hours * 3600), httponly=True,
                                samesite="strict", secure=request.url.scheme == "https")
        return response
    limiter.failed(address)
    return templates.TemplateResponse(request, "login.html", {"next": next, "page": "", "wrong": True},
                                      status_code=401)


async def signed_out(request: Request, exc: HTTPException):
    """A page asked for without the token: the sign-in page; the API keeps its JSON errors."""
    if exc.status_code == 401 and not request.url.path.startswith(("/api/", "/metrics")) and \
            "text/html" in request.headers.get("accept", ""):
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    return await http_exception_handler(request, exc)


def install(app: FastAPI) -> None:
    """The console's pages, static files and sign-in redirect, on the API's app (its token guards
    them too)."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.add_exception_handler(HTTPException, signed_out)
