"""Draw what the scene stage sees on a video file's frames: skeletons, track ids, relation edges,
left objects, how long people have stayed, and the motion mask, as a PNG per window or one MP4 of
every sampled frame.

    python -m stream.scene.render data/vtest.avi --out renders/            # PNG per window
    python -m stream.scene.render data/vtest.avi --out vtest_scene.mp4 --seconds 20
    python -m stream.scene.render data/vtest.avi --out docs/ --window 10    # just window 10

The models, windows, tracking and motion settings come from `--config` (default: the demo's);
the config's cameras are ignored. Each PNG shows the window's newest sampled frame with every
track's path through the window; the MP4 shows each sampled frame once, at the sample rate.
"""
from __future__ import annotations

import colorsys
from fractions import Fraction
import sys
from pathlib import Path

import av
import cv2
import numpy as np

from engines.cli import Parser
from stream.scene.pose import COCO17_EDGES
from stream.scene.relations import GROUND, OBJECTS, PREDICATES
from stream.types import SceneGraph

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"
KEYPOINT_MIN = 0.3          # joints less certain than this are not drawn
MOTION_BGR = (255, 200, 0)  # the motion mask's tint
OBJECT_BGR = (0, 0, 255)    # left objects
NAMED_BGR = (0, 200, 255)   # named objects (COCO detector)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def colour(track_id: int) -> tuple[int, int, int]:
    """A bright BGR colour per track id, far from its neighbours' (golden-ratio hues)."""
    r, g, b = colorsys.hsv_to_rgb((track_id * 0.618034) % 1.0, 0.85, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


def label(img: np.ndarray, text: str, org: tuple[int, int], col, scale: float = 0.45) -> None:
    """Text on a black box, kept inside the image."""
    (w, h), base = cv2.getTextSize(text, _FONT, scale, 1)
    x, y = max(0, min(org[0], img.shape[1] - w - 3)), max(h + 2, org[1])
    cv2.rectangle(img, (x, y - h - 2), (x + w + 2, y + base), (0, 0, 0), -1)
    cv2.putText(img, text, (x + 1, y), _FONT, scale, col, 1, cv2.LINE_AA)


def draw(image: np.ndarray, graph: SceneGraph, t: int, *, scale: float = 1.0, trails: bool = False,
         motion: bool = True) -> np.ndarray:
    """The window's sampled frame t with the graph drawn on it, upscaled by `scale` for legibility."""
    img = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR) if scale != 1 else image.copy()
    if motion and graph.motion is not None and t > 0 and len(graph.motion.masks) >= t:
        mask = cv2.resize(graph.motion.masks[t - 1].astype(np.uint8), img.shape[1::-1], interpolation=cv2.INTER_LINEAR)
        img[mask > 0] = (0.8 * img[mask > 0] + 0.2 * np.array(MOTION_BGR)).astype(np.uint8)   # what moves: tinted,
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)        # and outlined
        cv2.drawContours(img, contours, -1, MOTION_BGR, 1, cv2.LINE_AA)

    def pt(xy) -> tuple[int, int]:
        return int(round(xy[0] * scale)), int(round(xy[1] * scale))

    tracks = {tr.track_id: tr for tr in graph.tracks}
    for tr in graph.tracks:
        col = colour(tr.track_id)
        if trails:
            seen = np.flatnonzero(tr.present[:t + 1])
            feet = [((tr.boxes[k, 0] + tr.boxes[k, 2]) / 2, tr.boxes[k, 3]) for k in seen]
            for a, b in zip(feet, feet[1:]):
                cv2.line(img, pt(a), pt(b), col, 2, cv2.LINE_AA)
        if not tr.present[t]:
            continue
        x0, y0, x1, y1 = tr.boxes[t]
        cv2.rectangle(img, pt((x0, y0)), pt((x1, y1)), col, 1, cv2.LINE_AA)
        kp = tr.keypoints[t]
        for a, b in COCO17_EDGES:
            if kp[a, 2] >= KEYPOINT_MIN and kp[b, 2] >= KEYPOINT_MIN:
                cv2.line(img, pt(kp[a]), pt(kp[b]), col, 2, cv2.LINE_AA)
        for x, y, s in kp:
            if s >= KEYPOINT_MIN:
                cv2.circle(img, pt((x, y)), 2, (255, 255, 255), -1, cv2.LINE_AA)
        label(img, f"#{tr.track_id}", (pt((x0, y0))[0], pt((x0, y0))[1] - 2), col)
    for (a, b), text in _pair_labels(graph, t, tracks).items():
        ba, bb = tracks[a].boxes[t], tracks[b].boxes[t]
        ca, cb = pt(((ba[0] + ba[2]) / 2, (ba[1] + ba[3]) / 2)), pt(((bb[0] + bb[2]) / 2, (bb[1] + bb[3]) / 2))
        cv2.line(img, ca, cb, (255, 255, 255), 1, cv2.LINE_AA)
        label(img, text, ((ca[0] + cb[0]) // 2, (ca[1] + cb[1]) // 2), (255, 255, 255), 0.4)
    for x0, y0, x1, y1, score, cls in graph.named[t] if t < len(graph.named) else ():
        cv2.rectangle(img, pt((x0, y0)), pt((x1, y1)), NAMED_BGR, 2, cv2.LINE_AA)       # a named object
        label(img, f"{OBJECTS[int(cls)]} {score:.2f}", (pt((x0, y0))[0], pt((x0, y0))[1] - 2), NAMED_BGR)
    for x0, y0, x1, y1, there, oid in graph.objects[t] if t < len(graph.objects) else ():
        cv2.rectangle(img, pt((x0, y0)), pt((x1, y1)), OBJECT_BGR, 2, cv2.LINE_AA)      # a left object
        label(img, f"object {int(oid)} {there:.0f}s", (pt((x0, y0))[0], pt((x0, y0))[1] - 2), OBJECT_BGR)
    for tr in graph.tracks:
        if tr.present[t] and tr.dwell is not None and tr.dwell[t] >= 5.0:                  # people who stay
            label(img, f"{tr.dwell[t]:.0f}s here", pt((tr.boxes[t, 0], tr.boxes[t, 3] + 14)), colour(tr.track_id))
    people = int(sum(tr.present[t] for tr in graph.tracks))
    label(img, f"{graph.camera}  window {graph.window_id}  t={graph.timestamps[t]:.1f}s  {people} people",
           (4, 18), (255, 255, 255), 0.55)
    return img


_INVERSE = {"behind": "in front of"}       # drawn once, as the other


def _pair_labels(graph: SceneGraph, t: int, tracks: dict) -> dict[tuple[int, int], str]:
    """One label per pair of people related in frame t: symmetric predicates once ("near"), directed
    ones with their direction ("#7 in front of #4"). Ground relations (walking on, standing on)
    would bury the picture and are left out."""
    pairs: dict[tuple[int, int], set[str]] = {}
    for r in graph.relations[t] if t < len(graph.relations) else ():
        if r.object == GROUND or r.subject not in tracks or r.object not in tracks:
            continue
        name, subj, obj = PREDICATES[r.predicate], r.subject, r.object
        if name in _INVERSE:
            name, subj, obj = _INVERSE[name], obj, subj
        text = name if name == "near" else f"#{subj} {name} #{obj}"
        pairs.setdefault((min(subj, obj), max(subj, obj)), set()).add(text)
    return {k: ", ".join(sorted(v, key=lambda x: (x != "near", x))) for k, v in pairs.items()}


class Mp4Writer:
    """BGR frames into an MP4 (H.264, or MPEG-4 Part 2 where PyAV lacks libx264), at `fps` or, when
    each write gives its stream time `ts`, at those times (a variable frame rate, to the millisecond)."""

    def __init__(self, path: Path, fps: float, container_format: str | None = None):
        self.container = av.open(str(path), "w", format=container_format)
        self.fps, self.stream = fps, None
        self._t0: float | None = None
        self._last_pts = -1

    def write(self, img: np.ndarray, ts: float | None = None) -> None:
        if self.stream is None:
            codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
            self.stream = self.container.add_stream(codec, rate=max(1, round(self.fps)))
            self.stream.height, self.stream.width = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
            self.stream.pix_fmt = "yuv420p"
            if ts is not None:
                self.stream.codec_context.time_base = Fraction(1, 1000)
                self._t0 = ts
        frame = av.VideoFrame.from_ndarray(img[:self.stream.height, :self.stream.width], format="bgr24")
        if self._t0 is not None and ts is not None:
            self._last_pts = max(self._last_pts + 1, round((ts - self._t0) * 1000))
            frame.pts, frame.time_base = self._last_pts, Fraction(1, 1000)
        self.container.mux(self.stream.encode(frame))

    def close(self) -> None:
        if self.stream is not None:
            self.container.mux(self.stream.encode(None))
        self.container.close()


def render(video: Path, out: Path, cfg, *, start: float = 0.0, seconds: float | None = None,
           window: int | None = None, scale: float = 1.5, progress=print) -> list[Path]:
    """Render the file's windows; returns the files written."""
    from stream.ingest.source import VideoSource
    from stream.ingest.windows import WindowAssembler
    from stream.scene.graph import scene_from_config

    scene = scene_from_config(cfg)
    w = cfg.windows
    asm = WindowAssembler(video.stem, w.length_s, w.stride_s, w.sample_fps)
    mp4 = Mp4Writer(out, w.sample_fps) if out.suffix.lower() == ".mp4" else None
    if mp4 is None:
        out.mkdir(parents=True, exist_ok=True)
    end = None if seconds is None else start + seconds
    if window is not None:
        start, end = window * w.stride_s, window * w.stride_s + w.length_s
    source = VideoSource(video.stem, str(video), is_file=True, replay="fast", max_stream_s=end)
    written: list[Path] = []
    drawn = -1                   # the newest frame seq already in the MP4

    def emit(win) -> None:
        nonlocal drawn
        if win.end <= start or (window is not None and win.window_id != window) or not win.frames:
            return
        graph = scene.build(win)
        progress(f"window {win.window_id} [{win.start:.0f}-{win.end:.0f} s]: {len(graph.tracks)} tracks, "
                 f"{graph.latency_ms['scene']:.0f} ms")
        if mp4 is None:
            path = out / f"{video.stem}_w{win.window_id:04d}.png"
            cv2.imwrite(str(path), draw(win.frames[-1].image, graph, len(win.frames) - 1, scale=scale, trails=True))
            written.append(path)
            return
        for t, f in enumerate(win.frames):
            if f.seq > drawn:
                mp4.write(draw(f.image, graph, t, scale=scale))
                drawn = f.seq

    try:
        for f in source.frames():
            for win in asm.push(f.seq, f.ts, f.wall, f.pixels, f.gap):
                emit(win)
        for win in asm.finish():
            emit(win)
    finally:
        if mp4 is not None:
            mp4.close()
            written.append(out)
    return written


def main(argv: list[str] | None = None) -> int:
    p = Parser("python -m stream.scene.render", __doc__)
    p.add_argument("video", type=Path, help="a video file")
    p.add_argument("--out", type=Path, required=True, help="a folder (PNG per window) or a .mp4 file")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="models, windows, tracking")
    p.add_argument("--start", type=float, default=0.0, help="skip windows that end before this (s)")
    p.add_argument("--seconds", type=float, help="render this much of the file (s)")
    p.add_argument("--window", type=int, help="render only this window")
    p.add_argument("--scale", type=float, default=1.5, help="upscale frames for legibility")
    args = p.parse_args(argv)
    if not args.video.is_file():
        p.error(f"{args.video}: no such video file")
    if args.scale <= 0 or (args.seconds is not None and args.seconds <= 0) or args.start < 0:
        p.error("--scale and --seconds must be positive, --start not negative")
    from stream.config import ConfigError, load_config
    try:
        cfg = load_config(args.config)
        files = render(args.video, args.out, cfg, start=args.start, seconds=args.seconds, window=args.window,
                       scale=args.scale, progress=lambda m: print(m, file=sys.stderr, flush=True))
    except ConfigError as e:
        print(f"render: config error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - one line, not a traceback
        print(f"render: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(f"wrote {len(files)} file(s) under {args.out}" if files else "no window in that range")
    return 0


if __name__ == "__main__":
    sys.exit(main())
