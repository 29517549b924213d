"""Each camera's own normal: what the model's scene embeddings of this camera look like when nothing
is wrong, so that only the unusual can open an event.

The mechanism is nearest neighbours. Every scored second carries the model's embedding of the scene
(the mean of the video tokens the LM reads, L2-normalised: `Verdict.embeddings`). A camera keeps a
bounded memory of the embeddings of its normal seconds; a second whose nearest neighbour in it lies
within `radius` (cosine distance) is *familiar* and cannot open an event (it can still extend one
already open). The memory learns

- during a warm-up: the first `warmup_minutes` of footage in which people were seen (while it
  learns, the model alone decides), or from a recorded file (`python -m stream.detection.normal learn`);
- afterwards, from seconds that passed with no event: a second is learnt `LAG_S` after it was
  scored, and only if no event opened over it or right after it (the lead-in of an event is not
  normal);
- from operators: a "False alarm" review adds the event's seconds at once, pinned (never evicted).

The cost is bounded: at most `capacity` embeddings a camera (256 floats each, stored as float16:
2 MiB at 4096), one matrix-vector product per scored second, and a new embedding is kept only when
no stored one is within half the radius (it refreshes that one instead). When full, the least
recently matched unpinned embedding goes.

What a camera learnt is stored in `<store>/<camera>.npz` (written atomically every `SAVE_EVERY_S`
and at the end), with the embedding space it was learnt in. A store that cannot be read, or was
learnt by another model, is moved aside (`.corrupt` / `.stale` beside it, never deleted) and the
camera learns again; the health message says so.

    python -m stream.detection.normal show  --config configs/demo.yaml [CAMERA]
    python -m stream.detection.normal learn --config configs/demo.yaml CAMERA recording.mp4
    python -m stream.detection.normal reset --config configs/demo.yaml CAMERA
"""
from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

import numpy as np

from engines.cli import Parser
from stream.config import NormalConfig
from stream.types import Verdict

log = logging.getLogger(__name__)

STORE_VERSION = 1
LAG_S = 10.0            # a second is learnt this long after it was scored, if no event opened over it
LEAD_IN_S = 4.0         # seconds before an event's start that are not learnt either
SAVE_EVERY_S = 60.0
MAX_EVENTS = 256        # events whose seconds are kept for a later review
RECENT_S = 300.0        # seconds kept to build an event's record (an event is at most max_event_s long)
STALLED_FACTOR = 3.0    # a warm-up that has seen less than a third of its footage in 3x its time is stalled


class NormalStoreError(ValueError):
    """A normal store that cannot be used; the message says why."""


def cosine_distances(memory: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(N, D) and (M, D) unit vectors -> (M, N) cosine distances."""
    return 1.0 - np.asarray(x, np.float32) @ np.asarray(memory, np.float32).T


class CameraNormal:
    """One camera's normal memory: the detector thread scores and teaches it; reviews and resets come
    from HTTP threads (one lock serialises them)."""

    def __init__(self, camera: str, cfg: NormalConfig, path: Path | None):
        self.camera, self.cfg, self.path = camera, cfg, path
        self._lock = threading.RLock()       # the detector thread, and reviews and resets from HTTP threads
        self._file_lock = threading.Lock()
        self.notice = ""                 # what happened to the store at load, for the health message
        self._clear()
        self._pending: deque[tuple[float, float, np.ndarray, int]] = deque()   # scored, not yet learnt
        self._recent: deque[tuple[float, float, np.ndarray]] = deque()        # for events' records
        self._saved_at = time.monotonic()
        self.dirty = False
        self._started = time.monotonic()
        self.suppressed = 0              # seconds that crossed the threshold but were familiar
        if path is not None and path.exists():
            self._load()

    # -- state --------------------------------------------------------------------------------
    def _clear(self) -> None:
        self.space = ""                  # the embedding space (model) it was learnt in
        self.memory = np.zeros((0, 0), np.float16)
        self.pinned = np.zeros(0, bool)
        self.used = np.zeros(0, np.float64)    # when each was last matched (or added): eviction order
        self.seen_s = 0.0                # seconds learnt from (footage with people, or reviewed)
        self.reviewed = 0                # false alarms learnt
        self.warm = False
        self.events: dict[str, np.ndarray] = {}

    @property
    def state(self) -> str:
        return "off" if not self.cfg.enabled else "ready" if self.warm else "learning"

    def status(self) -> dict[str, Any]:
        """For the health message and the console."""
        need = self.cfg.warmup_minutes * 60.0
        out = {"state": self.state, "seen_s": round(self.seen_s, 1), "warmup_s": need, "entries": len(self.memory),
               "capacity": self.cfg.capacity, "reviewed": self.reviewed, "suppressed": self.suppressed}
        if self.state == "learning" and self.stalled():
            out["detail"] = (f"warm-up stalled: {self.seen_s / 60:.1f} of {self.cfg.warmup_minutes:g} min with people "
                             f"seen in {(time.monotonic() - self._started) / 60:.0f} min; is the camera dark, or does "
                             "nobody pass? The model alone decides until it completes")
        elif self.notice:
            out["detail"] = self.notice
        return out

    def stalled(self) -> bool:
        need = self.cfg.warmup_minutes * 60.0
        return time.monotonic() - self._started > STALLED_FACTOR * need and self.seen_s < need / STALLED_FACTOR

    # -- deciding -----------------------------------------------------------------------------
    def familiar(self, embedding: np.ndarray | None, now: float | None = None) -> bool:
        """Whether a second with this embedding is like the camera's normal (only once warm, or for a
        reviewed false alarm: those count at once)."""
        with self._lock:
            if embedding is None or not self.cfg.enabled or len(self.memory) == 0 or \
                    self.memory.shape[1] != len(embedding):
                return False
            d = cosine_distances(self.memory, embedding[None])[0]
            if not self.warm:                              # still learning: only what operators said counts
                d = np.where(self.pinned, d, np.inf)
            i = int(np.argmin(d))
            if d[i] > self.cfg.radius:
                return False
            self.used[i] = time.monotonic() if now is None else now
            return True

    def admits(self, verdict: Verdict):
        """`admits(start, end)` for the event tracker: whether the second starting at `start` may
        open an event (it is not familiar)."""
        with self._lock:
            if not self._usable(verdict):
                return None
        by_start = {round(s.start, 3): e for s, e in zip(verdict.seconds, verdict.embeddings)}

        def admits(start: float, end: float) -> bool:
            if self.familiar(by_start.get(round(start, 3))):
                self.suppressed += 1
                return False
            return True
        return admits

    def _usable(self, verdict: Verdict) -> bool:
        if not self.cfg.enabled or verdict.embeddings is None or len(verdict.embeddings) != len(verdict.seconds):
            return False
        if self.space != verdict.embedding_space:
            if self.space and len(self.memory):      # a new model: what was learnt no longer means anything
                self._move_aside(".stale", f"learnt by {self.space}, the detector is now {verdict.embedding_space}")
            self.space = verdict.embedding_space
        return True

    # -- learning -----------------------------------------------------------------------------
    def observed(self, verdict: Verdict, event_open: bool, opened_at: list[float]) -> None:
        """A scored window: its seconds wait LAG_S, then are learnt unless an event opened over them
        (`opened_at`: the starts of events opened by this window; `event_open`: one is open now)."""
        with self._lock:
            if not self._usable(verdict):
                return
            for s, e in self._fresh(verdict):
                self._recent.append((s.start, s.end, e))
                if not event_open:                              # an open event's seconds are never learnt
                    self._pending.append((s.start, s.end, e, verdict.people))
            for t in opened_at:                                # the event and its lead-in are not normal
                self._pending = deque(p for p in self._pending if p[1] <= t - LEAD_IN_S)
            if event_open:
                return
            now = verdict.end
            while self._pending and self._pending[0][1] <= now - LAG_S:
                start, end, e, people = self._pending.popleft()
                if people or self.warm:
                    self._learn(e[None], end - start)
            while self._recent and self._recent[0][1] < now - RECENT_S:
                self._recent.popleft()
        self.maybe_save()

    def _fresh(self, verdict: Verdict) -> list:
        """The window's (second, embedding) pairs not seen before (overlapping windows: each second once)."""
        last = self._recent[-1][0] if self._recent else float("-inf")
        return [(s, e) for s, e in zip(verdict.seconds, verdict.embeddings) if s.start >= last + 1e-3]

    def learn_all(self, verdict: Verdict) -> int:
        """A recorded file an operator says is normal: every second of the window is learnt now."""
        with self._lock:
            if not self._usable(verdict):
                return 0
            fresh = self._fresh(verdict)
            for s, e in fresh:
                self._recent.append((s.start, s.end, e))
                self._learn(e[None], s.end - s.start)
            return len(fresh)

    def _learn(self, emb: np.ndarray, seconds: float, pin: bool = False) -> None:
        with self._lock:
            emb = np.asarray(emb, np.float16)
            if self.memory.shape[1:] != emb.shape[1:]:
                self.memory = np.zeros((0, emb.shape[1]), np.float16)
                self.pinned, self.used = np.zeros(0, bool), np.zeros(0)
            now = time.monotonic()
            for e in emb:
                if len(self.memory):
                    d = cosine_distances(self.memory, e[None])[0]
                    i = int(np.argmin(d))
                    if d[i] <= self.cfg.radius / 2:       # nothing new: refresh its neighbour
                        self.used[i] = now
                        self.pinned[i] |= pin
                        continue
                if len(self.memory) >= self.cfg.capacity:
                    free = np.flatnonzero(~self.pinned)
                    if len(free) == 0:
                        continue
                    i = free[np.argmin(self.used[free])]
                    self.memory[i], self.pinned[i], self.used[i] = e, pin, now
                else:
                    self.memory = np.vstack([self.memory, e[None]])
                    self.pinned, self.used = np.append(self.pinned, pin), np.append(self.used, now)
            self.seen_s += seconds
            if not self.warm and self.seen_s >= self.cfg.warmup_minutes * 60.0:
                self.warm = True
                log.info("camera %s: normal learnt (%.0f s of footage, %d embeddings): only the unusual opens "
                         "events now", self.camera, self.seen_s, len(self.memory))
            self.dirty = True

    # -- events and reviews -------------------------------------------------------------------
    def event(self, alert_id: str, start: float, end: float) -> None:
        """An event's span (at open, update and close): its seconds are kept for a review."""
        with self._lock:
            seconds = [e for a, b, e in self._recent if a >= start - 1e-3 and b <= end + 1e-3]
            if not seconds:
                return
            self.events[alert_id] = np.asarray(seconds, np.float16)
            while len(self.events) > MAX_EVENTS:
                self.events.pop(next(iter(self.events)))
            self.dirty = True

    def false_alarm(self, alert_id: str) -> str:
        """An operator's "False alarm": the event's seconds join the normal at once. Returns what happened."""
        with self._lock:
            seconds = self.events.get(alert_id)
        if not self.cfg.enabled:
            return f"camera {self.camera} does not learn its normal (normal.enabled is false)"
        if seconds is None:
            return (f"camera {self.camera} has no record of this event's seconds (it is older than the last "
                    f"{MAX_EVENTS} events, from before the store was reset, or from another model); the review is "
                    "kept for training, the camera's normal did not change")
        self._learn(seconds, 0.0, pin=True)
        with self._lock:
            self.reviewed += 1
        self.save()
        return f"camera {self.camera} learnt this event's {len(seconds)} s as normal: windows like it no longer open events"

    # -- storage ------------------------------------------------------------------------------
    def maybe_save(self) -> None:
        if self.dirty and time.monotonic() - self._saved_at >= SAVE_EVERY_S:
            self.save()

    def save(self) -> None:
        if self.path is None:
            return
        with self._lock:
            ids = list(self.events)
            meta = {"version": STORE_VERSION, "camera": self.camera, "space": self.space, "seen_s": self.seen_s,
                    "warm": self.warm, "reviewed": self.reviewed, "event_ids": ids,
                    "event_sizes": [len(self.events[i]) for i in ids]}
            arrays = {"memory": self.memory, "pinned": self.pinned,
                      "events": np.concatenate([self.events[i] for i in ids]) if ids
                      else np.zeros((0, self.memory.shape[1] if self.memory.ndim == 2 else 0), np.float16)}
            self.dirty, self._saved_at = False, time.monotonic()
        with self._file_lock:                   # a review's save and the periodic one never share the file
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            with open(tmp, "wb") as f:
                np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)

    def _load(self) -> None:
        try:
            meta, arrays = read_store(self.path)
            if meta["camera"] != self.camera:
                raise NormalStoreError(f"it is camera {meta['camera']!r}'s, not {self.camera!r}'s")
        except NormalStoreError as e:
            self._move_aside(".corrupt", str(e))
            return
        self.space, self.seen_s, self.warm = meta["space"], float(meta["seen_s"]), bool(meta["warm"])
        self.reviewed = int(meta["reviewed"])
        self.memory, self.pinned = arrays["memory"], arrays["pinned"]
        self.used = np.zeros(len(self.memory))
        off = np.cumsum([0, *meta["event_sizes"]])
        self.events = {i: arrays["events"][a:b] for i, a, b in zip(meta["event_ids"], off[:-1], off[1:])}
        log.info("camera %s: normal loaded from %s (%s, %.0f s seen, %d embeddings)", self.camera, self.path,
                 self.state, self.seen_s, len(self.memory))

    def _move_aside(self, suffix: str, why: str) -> None:
        """Start learning again; the old store (if on disk) is renamed, never deleted."""
        kept = ""
        if self.path is not None and self.path.exists():
            aside = self.path.with_name(f"{self.path.name}{suffix}-{time.strftime('%Y%m%dT%H%M%S')}")
            os.replace(self.path, aside)
            kept = f" (kept as {aside.name})"
        self.notice = f"normal store set aside: {why}{kept}; learning again"
        log.warning("camera %s: %s", self.camera, self.notice)
        self._clear()
        self.dirty = True

    def reset(self) -> None:
        """Forget everything learnt (an operator's reset)."""
        with self._lock:
            self._clear()
            self._pending.clear()
            self._started = time.monotonic()
            self.notice = "reset: learning again"
            self.dirty = True
        self.save()


def read_store(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """A store's metadata and arrays, checked (NormalStoreError says what is wrong)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            arrays = {k: z[k] for k in ("memory", "pinned", "events")}
    except Exception as e:    # noqa: BLE001 - a truncated zip, a foreign file, bad JSON: all mean unreadable
        raise NormalStoreError(f"{path} cannot be read ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict) or meta.get("version") != STORE_VERSION:
        raise NormalStoreError(f"{path} is not a version {STORE_VERSION} normal store")
    m = arrays["memory"]
    if m.ndim != 2 or len(arrays["pinned"]) != len(m) or sum(meta.get("event_sizes", [])) != len(arrays["events"]) \
            or len(meta.get("event_ids", [])) != len(meta.get("event_sizes", [])):
        raise NormalStoreError(f"{path} is inconsistent (its arrays do not match their sizes)")
    if len(m) and not np.isfinite(m.astype(np.float32)).all():
        raise NormalStoreError(f"{path} holds values that are not numbers")
    return meta, arrays


class NormalMemories:
    """The cameras' normal memories, by camera (created on first use; `config()` is the pipeline's
    current config, so a reloaded camera's switch applies to what it already learnt)."""

    def __init__(self, config: Callable[[], Any]):
        self.config = config
        self._cameras: dict[str, CameraNormal] = {}
        self._lock = threading.Lock()

    def of(self, camera: str) -> CameraNormal:
        cfg = self.config()
        ncfg = cfg.normal_of(camera)
        with self._lock:
            if camera not in self._cameras:
                self._cameras[camera] = CameraNormal(camera, ncfg, store_path(ncfg.store, camera))
            cam = self._cameras[camera]
        cam.cfg = ncfg
        return cam

    def save(self) -> None:
        with self._lock:
            cams = list(self._cameras.values())
        for c in cams:
            if c.dirty:
                c.save()


def store_path(folder: Path, camera: str) -> Path:
    return Path(folder) / f"{camera}.npz"


def check_stores(cfg, cameras: list[str]) -> list[str]:
    """`hawkwatch check`: each learning camera's store, readable or not (ConfigError when its folder
    cannot be written)."""
    from stream.config import ConfigError

    out = []
    for cam in cameras:
        path = store_path(cfg.normal_of(cam).store, cam)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            probe = path.with_name(f".{cam}.probe")
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise ConfigError(f"normal.store: camera {cam} cannot keep what it learns in {path.parent}: {e}") from None
        if not path.exists():
            out.append(f"normal: {cam} learns from scratch ({path})")
            continue
        try:
            meta, arrays = read_store(path)
            out.append(f"normal: {cam} {'ready' if meta['warm'] else 'learning'}, {meta['seen_s'] / 60:.1f} min seen, "
                       f"{len(arrays['memory'])} embeddings ({path})")
        except NormalStoreError as e:
            out.append(f"normal: {cam}: {e}; it will be set aside and the camera learns again")
    return out


# -- command line ---------------------------------------------------------------------------------
def _learn_file(cfg, camera: str, video: Path) -> CameraNormal:
    """Run the scene stage and the detector over a recorded file and learn every second of it."""
    from stream.ingest.source import VideoSource
    from stream.ingest.windows import WindowAssembler
    from stream.detection.registry import build_detector
    from stream.scene.graph import scene_from_config

    ncfg = cfg.normal_of(camera)
    normal = CameraNormal(camera, ncfg.model_copy(update={"enabled": True}), store_path(ncfg.store, camera))
    builder, detector = scene_from_config(cfg), build_detector(cfg)
    w = cfg.windows_of(camera)
    asm = WindowAssembler(camera, w.length_s, w.stride_s, w.sample_fps)
    learnt = 0

    def take(windows):
        nonlocal learnt
        for win in windows:
            scene = builder.graph(win, builder.analyse([win])[0])
            for verdict in detector.batch([scene]):
                if verdict.embeddings is None:
                    raise NormalStoreError(f"detector {cfg.detector.name} gives no scene embeddings: only the "
                                           "hawkeye detector can learn a camera's normal")
                learnt += normal.learn_all(verdict)
        print(f"\r{camera}: {learnt} s learnt, {len(normal.memory)} embeddings", end="", file=sys.stderr, flush=True)

    src = VideoSource(camera, str(video), is_file=True, replay="fast")
    for f in src.frames():
        take(asm.push(f.seq, f.ts, f.wall, f.pixels, f.gap))
    take(asm.finish())
    print(file=sys.stderr)
    if not normal.warm and learnt:
        normal.warm = True                    # an operator's recording is a complete warm-up by itself
    normal.save()
    return normal


def main(argv: list[str] | None = None) -> int:
    from stream.config import ConfigError, load_config

    p = Parser("python -m stream.detection.normal", "Each camera's own normal: show it, learn it from a recording, "
                                              "reset it.")
    p.add_argument("action", choices=["show", "learn", "reset"])
    p.add_argument("--config", required=True, help="the pipeline's YAML config")
    p.add_argument("camera", nargs="?", help="camera id (show: all when left out)")
    p.add_argument("video", nargs="?", type=Path, help="learn: a recording of this camera with nothing unusual in it")
    args = p.parse_intermixed_args(argv)
    try:
        cfg = load_config(args.config)
        if args.camera is not None and args.camera not in cfg.cameras:
            raise ConfigError(f"no camera {args.camera!r} in {args.config} (cameras: {', '.join(cfg.cameras)})")
        if args.action != "show" and args.camera is None:
            raise ConfigError(f"{args.action} needs a camera")
        if args.action == "learn":
            if args.video is None or not args.video.is_file():
                raise ConfigError(f"learn needs a video file of camera {args.camera}, not {args.video}")
            n = _learn_file(cfg, args.camera, args.video)
            print(json.dumps({"camera": args.camera, **n.status()}))
            return 0
        for cam in [args.camera] if args.camera else list(cfg.cameras):
            path = store_path(cfg.normal_of(cam).store, cam)
            if args.action == "reset":
                if path.exists():
                    aside = path.with_name(f"{path.name}.reset-{time.strftime('%Y%m%dT%H%M%S')}")
                    os.replace(path, aside)
                    print(f"{cam}: reset (the old store is kept as {aside}); a running pipeline keeps what it holds "
                          "in memory: reset there with POST /api/cameras/{cam}/normal/reset", file=sys.stderr)
                else:
                    print(f"{cam}: nothing learnt yet ({path} does not exist)", file=sys.stderr)
                continue
            ncfg = cfg.normal_of(cam)
            row: dict[str, Any] = {"camera": cam, "store": str(path), "enabled": ncfg.enabled}
            if not path.exists():
                row["state"] = "nothing learnt yet"
            else:
                try:
                    meta, arrays = read_store(path)
                    row.update(state="ready" if meta["warm"] else "learning", seen_s=round(meta["seen_s"], 1),
                               warmup_s=ncfg.warmup_minutes * 60.0, entries=len(arrays["memory"]),
                               reviewed=meta["reviewed"], events=len(meta["event_ids"]), space=meta["space"])
                except NormalStoreError as e:
                    row["state"] = f"unusable: {e} (a running pipeline sets it aside and learns again)"
            print(json.dumps(row))
        return 0
    except (ConfigError, NormalStoreError) as e:
        print(f"normal: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
