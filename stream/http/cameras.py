"""/api/cameras: every camera's health, and per camera its snapshot, scores, recordings (segments and
exports), zones, chat and normal."""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import FileResponse, Response, StreamingResponse
from starlette.background import BackgroundTask
from pydantic import BaseModel, Field

from stream.config import ZoneConfig
from stream.http.readmodel import ReadModel, zones_yaml
from stream.http.state import read_model

router = APIRouter(prefix="/api/cameras", tags=["cameras"])


class ChatRequest(BaseModel):
    question: str = Field(description="A free question about the camera's recent windows.")
    windows: int = Field(2, ge=1, le=8, description="How many recent windows the answer reads.")


def known(camera: str, read: ReadModel = Depends(read_model)) -> str:
    """The path's camera, or a 404."""
    if not read.knows(camera):
        raise HTTPException(404, f"no camera {camera!r}")
    return camera


@router.get("", summary="Every camera's latest health message, with the event open on it (or null)")
def cameras(read: ReadModel = Depends(read_model)) -> list[dict]:
    return read.health()


@router.get("/{camera}/snapshot.jpg", summary="The latest scored window's last frame, scene drawn on it",
            response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
def snapshot(camera: str = Depends(known), overlay: bool = True, read: ReadModel = Depends(read_model)) -> Response:
    data = read.snapshot(camera, overlay)
    if data is None:
        raise HTTPException(404, f"no scored window of camera {camera!r} yet")
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get("/{camera}/scores", summary="Recent windows' scores, per second (the last hour)")
def scores(camera: str = Depends(known), read: ReadModel = Depends(read_model),
           since: float | None = Query(None, allow_inf_nan=False,
                                       description="epoch seconds: windows ending then or later")) -> list[dict]:
    return read.scores(camera, since)


@router.get("/{camera}/live", summary="How the camera's live video plays: its MIME type, whether it is transcoded, "
                                     "how many watch")
def live_info(camera: str = Depends(known), read: ReadModel = Depends(read_model)) -> dict:
    feed = read.live(camera)
    if feed is None:
        raise HTTPException(404, f"no live video of camera {camera!r} here (it runs with runtime.engine: local)")
    return {"mime": feed.mime(), "codec": feed.codec, "transcoded": feed.transcoding, "viewers": feed.viewers,
            "delay_ms": feed.delay_ms(), "cpu_per_viewer": feed.cpu_per_viewer()}


@router.get("/{camera}/live.mp4", summary="The camera's live video: fragmented MP4, a fragment a frame, from the "
                                          "next keyframe (remuxed; transcoded to H.264 where browsers need it)",
            response_class=StreamingResponse)
def live(camera: str = Depends(known), read: ReadModel = Depends(read_model)) -> StreamingResponse:
    feed = read.live(camera)
    viewer = feed.watch() if feed is not None else None
    if viewer is None:
        raise HTTPException(503, f"camera {camera!r} is not streaming now")
    return StreamingResponse(viewer.stream(), media_type="video/mp4", headers={"Cache-Control": "no-store"})


@router.get("/{camera}/recordings", summary="The camera's recorded segments overlapping [start, end], oldest first")
def recordings(camera: str = Depends(known), read: ReadModel = Depends(read_model),
               start: float | None = Query(None, allow_inf_nan=False, description="epoch seconds"),
               end: float | None = Query(None, allow_inf_nan=False, description="epoch seconds")) -> list[dict]:
    try:
        return read.recordings(camera, start, end)
    except LookupError as e:
        raise HTTPException(404, str(e)) from None


@router.get("/{camera}/recordings/{name}", summary="One recorded segment (MP4)", response_class=FileResponse)
def segment(name: str, camera: str = Depends(known), read: ReadModel = Depends(read_model)) -> FileResponse:
    try:
        path = read.segment_file(camera, name)
    except LookupError as e:
        raise HTTPException(404, str(e)) from None
    if path is None:
        raise HTTPException(404, f"no segment {name!r} of camera {camera!r} (retention may have removed it)")
    return FileResponse(path, media_type="video/mp4")


@router.get("/{camera}/export.mp4", summary="[start, end] of the camera's footage as one MP4, remuxed (at most 6 h)",
            response_class=FileResponse)
def export(camera: str = Depends(known), read: ReadModel = Depends(read_model),
           start: float = Query(allow_inf_nan=False, description="epoch seconds"),
           end: float = Query(allow_inf_nan=False, description="epoch seconds")) -> FileResponse:
    if not 0 < end - start <= 6 * 3600:
        raise HTTPException(422, "end must be after start, and at most 6 h after it")
    folder = Path(tempfile.mkdtemp(prefix="hawkwatch-export-"))
    name = f"{camera}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(start))}.mp4"
    try:
        path = read.export(camera, start, end, folder / name)
    except LookupError as e:
        shutil.rmtree(folder, ignore_errors=True)
        raise HTTPException(404, str(e)) from None
    except ValueError as e:
        shutil.rmtree(folder, ignore_errors=True)
        raise HTTPException(404, str(e)) from None
    return FileResponse(path, media_type="video/mp4", filename=name,
                        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True))


@router.get("/{camera}/zones", summary="The camera's zones (points relative to the picture)")
def get_zones(camera: str = Depends(known), read: ReadModel = Depends(read_model)) -> dict:
    found = read.zones_of(camera)
    return found.as_config() if found is not None else {}


@router.put("/{camera}/zones", summary="Replace the camera's zones, kept across restarts in http.zones_file")
def set_zones(body: dict[str, ZoneConfig], camera: str = Depends(known), read: ReadModel = Depends(read_model)) -> dict:
    try:
        zones = read.set_zones(camera, body)
    except OSError as e:
        raise HTTPException(507, f"the zones could not be kept in {read.zone_store.path}: {e.strerror or e}; "
                                 "nothing changed") from None
    return {"zones": zones.as_config(), "config": zones_yaml(camera, body),
            "kept_in": str(read.zone_store.path) if read.zone_store else None}


@router.post("/{camera}/chat", summary="Ask about the camera's recent windows")
def chat(body: ChatRequest, camera: str = Depends(known), read: ReadModel = Depends(read_model)) -> dict:
    from stream.alerts.query import RequestError
    if not read.chats:
        raise HTTPException(503, "chat is off in this pipeline")
    try:
        return read.ask(camera, body.question, body.windows)
    except RequestError as e:
        raise HTTPException(409, str(e)) from None


@router.post("/{camera}/normal/reset", summary="Forget what the camera learnt of its own normal")
def normal_reset(camera: str = Depends(known), read: ReadModel = Depends(read_model)) -> dict:
    normal = read.normal(camera)
    normal.reset()
    return normal.status()
