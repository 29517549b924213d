"""Zones: where on a camera's picture events may open (include) and where they never open
(exclude), as polygons in coordinates relative to the picture (0..1, x to the right, y down), so
they hold at any resolution.

What an event is about is located per sampled frame: the feet of the people tracked in it (the
bottom centre of their boxes), the objects left in it, and when there is neither, what moved. A
second of a window may open an event only if something located in it stands in the allowed area:
inside an include zone (anywhere, when there is none) and outside every exclude zone. A second
where nothing is located at all may open one only when the camera has no include zone. Once open,
an event follows its scores wherever it goes: zones decide where events start, not where they
are allowed to continue.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, Mapping

import cv2
import numpy as np
import yaml
from pydantic import ValidationError

from stream.config import ZoneConfig
from stream.types import SceneGraph

log = logging.getLogger(__name__)

GRID_W = 256        # the allowed area is rasterised this wide (its height keeps the picture's aspect)
INCLUDE_BGR, EXCLUDE_BGR = (80, 200, 80), (60, 60, 230)


class Zones:
    def __init__(self, zones: Mapping[str, object]):
        """`zones`: name -> a config ZoneConfig (kind, points)."""
        self.zones = dict(zones)
        self.includes = [z for z in self.zones.values() if z.kind == "include"]
        self.excludes = [z for z in self.zones.values() if z.kind == "exclude"]
        self._grids: dict[tuple[int, int], np.ndarray] = {}

    def __bool__(self) -> bool:
        return bool(self.zones)

    def as_config(self) -> dict[str, dict]:
        """name -> {kind, points}: as the config (and the API) gives them."""
        return {name: z.model_dump() for name, z in self.zones.items()}

    def allowed(self, width: int, height: int) -> np.ndarray:
        """(h, w) bool over a GRID_W-wide raster of a width x height picture: where events may open."""
        h = max(1, round(GRID_W * height / max(width, 1)))
        if (GRID_W, h) not in self._grids:
            grid = np.zeros((h, GRID_W), np.uint8) if self.includes else np.ones((h, GRID_W), np.uint8)
            for zones, value in ((self.includes, 1), (self.excludes, 0)):
                for z in zones:
                    pts = np.round(np.asarray(z.points) * [GRID_W - 1, h - 1]).astype(np.int32)
                    cv2.fillPoly(grid, [pts], value)
            self._grids[(GRID_W, h)] = grid.astype(bool)
        return self._grids[(GRID_W, h)]

    def frames(self, scene: SceneGraph) -> np.ndarray:
        """(T,) per sampled frame: +1 something located there stands in the allowed area, -1 all of
        it stands outside, 0 nothing was located."""
        width, height = scene.frame_size
        grid = self.allowed(width, height)
        gh, gw = grid.shape
        out = np.zeros(len(scene.timestamps), np.int8)
        for t in range(len(out)):
            pts = [((b[0] + b[2]) / 2, b[3]) for tr in scene.tracks if tr.present[t] for b in (tr.boxes[t],)]
            if t < len(scene.objects):
                pts += [((o[0] + o[2]) / 2, o[3]) for o in scene.objects[t]]
            if pts:
                xy = np.asarray(pts, float)
                gx = np.clip((xy[:, 0] / max(width, 1) * gw).astype(int), 0, gw - 1)
                gy = np.clip((xy[:, 1] / max(height, 1) * gh).astype(int), 0, gh - 1)
                out[t] = 1 if grid[gy, gx].any() else -1
            elif scene.motion is not None and 0 < t <= len(scene.motion.masks) and scene.motion.masks[t - 1].any():
                moving = cv2.resize(scene.motion.masks[t - 1].astype(np.uint8), (gw, gh),
                                    interpolation=cv2.INTER_NEAREST).astype(bool)
                out[t] = 1 if (moving & grid).any() else -1
        return out

    def admits(self, scene: SceneGraph) -> Callable[[float, float], bool]:
        """Whether an event may open in the second [start, end) of this window."""
        where = self.frames(scene)
        ts = np.asarray(scene.timestamps, float)
        unlocated = not self.includes

        def admitted(start: float, end: float) -> bool:
            inside = (ts >= start - 1e-6) & (ts < end - 1e-6)
            if not inside.any() and len(ts):           # no frame sampled in that second: the nearest one
                inside = np.abs(ts - (start + end) / 2) == np.abs(ts - (start + end) / 2).min()
            seen = where[inside]
            return bool((seen > 0).any()) or (unlocated and bool((seen == 0).all()))
        return admitted

    def draw(self, image: np.ndarray) -> None:
        """The zones outlined on a picture of the camera (any size), with their names."""
        h, w = image.shape[:2]
        for name, z in self.zones.items():
            pts = np.round(np.asarray(z.points) * [w - 1, h - 1]).astype(np.int32)
            col = INCLUDE_BGR if z.kind == "include" else EXCLUDE_BGR
            cv2.polylines(image, [pts], True, col, 2, cv2.LINE_AA)
            x, y = pts.min(axis=0)
            cv2.putText(image, f"{name} ({z.kind})", (int(x) + 3, int(y) + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, col, 1,
                        cv2.LINE_AA)


class ZoneStore:
    """Zones drawn on the console, kept across restarts in a YAML file shaped like the config's
    cameras section (`cameras: {<id>: {zones: {...}}}`, so an entry can be pasted into the config
    as it is). A camera's zones there replace the config's. Written whole to a temporary file
    and renamed, so a crash leaves the old file or the new one; a file that does not read is
    logged and ignored (the config's zones apply), never a reason not to start."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def load(self) -> dict[str, dict[str, ZoneConfig]]:
        if not self.path.exists():
            return {}
        try:
            data = yaml.safe_load(self.path.read_text()) or {}
            return {str(cam): {str(name): ZoneConfig.model_validate(z) for name, z in (c or {}).get("zones", {}).items()}
                    for cam, c in (data.get("cameras") or {}).items()}
        except (OSError, yaml.YAMLError, ValidationError, AttributeError, TypeError) as e:
            log.error("zones: %s does not read (%s); the config's zones apply", self.path, str(e).splitlines()[0])
            return {}

    def save(self, camera: str, zones: dict[str, ZoneConfig]) -> None:
        """Keep `camera`'s zones (OSError when the file cannot be written)."""
        saved = self.load()
        saved[camera] = zones
        data = {"cameras": {cam: {"zones": {name: {"kind": z.kind, "points": [list(p) for p in z.points]}
                                            for name, z in found.items()}} for cam, found in sorted(saved.items())}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("# Zones drawn on the Hawkwatch console (they replace a camera's zones in the config).\n" +
                       yaml.safe_dump(data, sort_keys=False))
        os.replace(tmp, self.path)
