"""Run the stream's own scene stage over videos and write Hawkeye-format features
(training/features.py), so that training and streaming see the same features.

    python -m training.extract --videos data/bench/videos --out data/bench [--config configs/demo.yaml]

The videos are decoded, sampled and cut into windows exactly as the pipeline does for a camera
replaying the file (the config's `windows:` and `models:`), and every window's frames go through
the same detector, pose model, tracker, motion and thumbnails. Resumable: a video whose index
(meta/<video>.json, written last) exists is skipped; a half-written one is redone. Videos are
extracted by `--workers` processes side by side (default: one per core, up to 2).

With `models.appearance` in the config, an extracted video that lacks the pretrained features
(app_feat/) gets them without redoing the rest: its sampled frames are decoded again by number
and encoded with the stored person boxes.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from engines.cli import Parser
from stream.config import ConfigError, load_config
from stream.ingest.source import VideoSource
from stream.ingest.windows import WindowAssembler
from stream.scene.graph import scene_from_config
from stream.scene.relations import ROW, relation_rows
from training.features import has_appearance, has_video, read_video, write_appearance, write_frame, write_meta

ROOT = Path(__file__).resolve().parents[1]
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")


def person_detector(models: Path = ROOT / "models"):
    """The bundled person detector (models/ssdlite_person.onnx, built by `make models`)."""
    from engines import create_engine
    from stream.scene.people import PersonDetector

    path = models / "ssdlite_person.onnx"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; run `make models`")
    return PersonDetector(create_engine("onnxruntime", path, threads=2))


def extract_video(builder, cfg, path: Path, out: Path, name: str) -> int:
    """One video's features; returns its number of windows."""
    w = cfg.windows
    asm = WindowAssembler(name, w.length_s, w.stride_s, w.sample_fps)
    src = VideoSource(name, str(path), is_file=True, replay="fast")
    frames, stamps, windows = [], [], []
    size = (0, 0)
    written: set[int] = set()

    def take(batch):
        nonlocal size
        for win in batch:
            scenes = builder.analyse([win])[0]
            g = builder.graph(win, scenes)
            size = g.frame_size if win.frames else size
            for t, (f, s) in enumerate(zip(win.frames, scenes)):
                if f.seq in written:
                    continue
                triples = list(g.relations[t]) if g.relations else []
                rel = relation_rows(triples) if triples else np.zeros((0, ROW), np.float32)
                nodes = np.array([(r.subject, r.object) for r in triples], np.int64).reshape(-1, 2)
                write_frame(out, name, f.seq, s, rel, nodes)
                written.add(f.seq)
                frames.append(f.seq)
                stamps.append(f.ts)
            windows.append((win.window_id, win.start, win.end, win.final, [f.seq for f in win.frames]))

    for f in src.frames():
        take(asm.push(f.seq, f.ts, f.wall, f.pixels, f.gap))
    take(asm.finish())
    builder.forget(name)
    write_meta(out, name, src.declared_fps or 0.0, size, frames, stamps, windows,
               extra={"windows_config": {"length_s": w.length_s, "stride_s": w.stride_s, "sample_fps": w.sample_fps},
                      "source": str(path)})
    return len(windows)


def add_appearance(builder, path: Path, out: Path, name: str, batch: int = 16) -> int:
    """Pretrained features for an extracted video that lacks them: its sampled frames (by number,
    from its index) decoded again, the frame and its stored person boxes encoded. Returns its
    number of windows (as extract_video)."""
    feats = read_video(out, name)
    if not feats.frames:
        return len(feats.windows)
    boxes = {n: s.boxes for n, s in zip(feats.frames, feats.scenes)}
    src = VideoSource(name, str(path), is_file=True, replay="fast")
    pending: list[tuple[int, np.ndarray]] = []

    def flush():
        found = builder.appearance.describe([im for _, im in pending],
                                            [boxes[n] for n, _ in pending] if builder.appearance_crops else None)
        for (n, _), a in zip(pending, found):
            write_appearance(out, name, n, a)
        pending.clear()

    for f in src.frames():
        if f.seq in boxes:
            pending.append((f.seq, f.pixels()))
            if len(pending) == batch:
                flush()
        if f.seq >= feats.frames[-1]:
            break
    if pending:
        flush()
    if not has_appearance(out, name):
        raise RuntimeError(f"{path}: some sampled frames were not decoded again (it has fewer frames than "
                           f"{out / 'meta' / name}.json lists): not the video that was extracted")
    return len(feats.windows)


_worker: dict = {}          # a worker process's own scene stage (engines are not shared across processes)


def _start_worker(cfg) -> None:
    _worker["cfg"], _worker["builder"] = cfg, scene_from_config(cfg, thumbs=True)


def _extract_in_worker(video: Path, out: Path, only_appearance: bool) -> tuple[str, int]:
    if only_appearance:
        return video.stem, add_appearance(_worker["builder"], video, out, video.stem)
    return video.stem, extract_video(_worker["builder"], _worker["cfg"], video, out, video.stem)


def extract(videos: list[Path], out: Path, cfg, *, progress: bool = True, workers: int = 1) -> dict[str, int]:
    """Features of every video not extracted yet (and the pretrained appearance features of
    extracted ones that lack them, when the config computes them). With `workers` > 1, videos go to
    that many processes, each with its own scene stage on models.threads / workers threads (so the
    cores are shared, not oversubscribed); a video is one process's job from start to end."""
    todo = [(v, False) for v in videos if not has_video(out, v.stem)]
    if cfg.models.appearance is not None:
        todo += [(v, True) for v in videos if has_video(out, v.stem) and not has_appearance(out, v.stem)]
    skipped = len(videos) - len(todo)
    if skipped:
        print(f"{skipped} of {len(videos)} videos already extracted: skipped", file=sys.stderr)
    if any(only for _, only in todo):
        print(f"{sum(only for _, only in todo)} extracted videos get their pretrained appearance features",
              file=sys.stderr)
    workers = max(1, min(workers, len(todo)))
    done = {}
    t0 = time.time()
    bar = tqdm(total=len(todo), desc="extracting", unit="video", disable=not progress, file=sys.stderr)
    if workers == 1:
        builder = scene_from_config(cfg, thumbs=True) if todo else None
        for v, only in todo:
            done[v.stem] = add_appearance(builder, v, out, v.stem) if only else \
                extract_video(builder, cfg, v, out, v.stem)
            bar.update(1)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed
        models = cfg.models.model_copy(update={"threads": max(1, cfg.models.threads // workers)})
        each = cfg.model_copy(update={"models": models})
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                                 initargs=(each,)) as pool:
            for job in as_completed([pool.submit(_extract_in_worker, v, out, only) for v, only in todo]):
                name, n = job.result()
                done[name] = n
                bar.update(1)
    bar.close()
    if todo:
        print(f"extracted {len(todo)} videos, {sum(done.values())} windows in {time.time() - t0:.0f} s "
              f"({workers} worker{'s' if workers > 1 else ''})", file=sys.stderr)
    return done


def main(argv: list[str] | None = None) -> int:
    ap = Parser("python -m training.extract", __doc__)
    ap.add_argument("--videos", type=Path, required=True, help="a video file, or a folder of them")
    ap.add_argument("--out", type=Path, required=True, help="where pose_feat/, rel_feat/, ... go")
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "demo.yaml",
                    help="the pipeline config whose scene stage and windows to use")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                    help="processes extracting videos side by side (each gets models.threads / workers threads)")
    args = ap.parse_args(argv)
    if args.workers < 1:
        ap.error(f"--workers must be at least 1, got {args.workers}")
    if args.videos.is_dir():
        videos = sorted(p for p in args.videos.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    else:
        videos = [args.videos]
    missing = [v for v in videos if not v.exists()]
    if missing or not videos:
        print(f"error: no video at {missing[0] if missing else args.videos} "
              f"(expected a file or a folder of {', '.join(VIDEO_SUFFIXES)})", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    extract(videos, args.out, cfg, workers=args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
