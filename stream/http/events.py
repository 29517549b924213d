"""/api/events: events from the outbox, one event, its evidence, where a drone's event is on the
ground (GeoJSON) and its review; /api/labels: the reviews as training labels."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

from stream.http.readmodel import ReadModel
from stream.http.state import read_model

router = APIRouter(tags=["events"])
GEOJSON = "application/geo+json"     # RFC 7946


class ReviewRequest(BaseModel):
    label: Literal["confirmed", "false_alarm"]
    note: str = Field("", max_length=1000)
    reviewer: str = Field("", max_length=100)


def event_of(alert_id: str, read: ReadModel = Depends(read_model)) -> dict:
    """The path's event, or a 404."""
    event = read.event(alert_id)
    if event is None:
        raise HTTPException(404, f"no event {alert_id!r} in the outbox")
    return event


@router.get("/api/events", summary="Events, newest first: each one's latest message (open, update or close)")
def events(camera: str | None = None, category: str | None = None,
           since: float | None = Query(None, allow_inf_nan=False,
                                       description="epoch seconds: events whose span starts then or later"),
           until: float | None = Query(None, allow_inf_nan=False,
                                       description="epoch seconds: events whose span starts before"),
           limit: int = Query(50, ge=1, le=1000), offset: int = Query(0, ge=0, le=2**31),
           read: ReadModel = Depends(read_model)) -> dict:
    found = read.events(camera=camera, category=category, since=since, until=until, limit=limit, offset=offset)
    return {"events": found, "next_offset": offset + len(found) if len(found) == limit else None}


@router.get("/api/events/{alert_id}", summary="One event's latest message, with its review")
def event(found: dict = Depends(event_of)) -> dict:
    return found


# declared before the evidence route, whose `{name}` would take the path and refuse it (422)
@router.get("/api/events/{alert_id}/geometry.geojson", summary="Where a drone's event is on the ground: its "
            "GeoJSON FeatureCollection (event point, footprint, people and objects)", response_class=JSONResponse,
            responses={200: {"content": {GEOJSON: {}}}})
def geometry(found: dict = Depends(event_of)) -> JSONResponse:
    if not found.get("geometry"):
        raise HTTPException(404, f"event {found['alert_id']} has no geometry: only a drone's camera places its "
                                 "events on the ground, when its metadata can")
    return JSONResponse(found["geometry"], media_type=GEOJSON)


@router.get("/api/events/{alert_id}/{name}", summary="The event's evidence: keyframe.jpg or clip.mp4",
            response_class=FileResponse)
def evidence(name: Literal["keyframe.jpg", "clip.mp4"], found: dict = Depends(event_of),
             read: ReadModel = Depends(read_model)) -> FileResponse:
    kind = name.split(".")[0]
    path, why = read.evidence_file(found, kind)
    if path is None:
        raise HTTPException(404, why)
    return FileResponse(path, media_type="image/jpeg" if kind == "keyframe" else "video/mp4")


@router.put("/api/events/{alert_id}/review", summary="Review an event: confirmed or a false alarm (which its "
                                                    "camera's normal learns at once, where it learns one)")
def review(body: ReviewRequest, found: dict = Depends(event_of), read: ReadModel = Depends(read_model)) -> dict:
    return read.review(found, body.label, body.note, body.reviewer)


@router.get("/api/labels", summary="The reviews as training labels (training/data.py's ground-truth format)")
def labels(read: ReadModel = Depends(read_model)) -> dict:
    return read.labels()
