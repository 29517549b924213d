"""Evaluate detectors on a benchmark split: Hawkeye's Table 1 (FNR, F2, mAP@tIoU) and Table 2
(FNR per category), frame-level ROC-AUC and AP, false alerts per hour on footage with no
anomaly, and score timelines against the ground truth.

    python -m training.evaluate --features data/bench --gt data/bench/gt.json --subset test \\
        --baseline --model hawkeye=models/hawkeye --normal-video vtest --out out/eval

Each detector sees every window of every video as the stream cuts them (features rebuilt by
training/features.py), and the stream's own event tracker (`events:` of --config) turns its
per-second scores into alerts. Frame-level metrics use each second's score as the stream decides
it (the first window that scores it) and the alerts' spans as the frames flagged; mAP ranks the
alerts (span, category, peak score) against the ground-truth segments.

`--stream` also runs the real pipeline (run_pipeline.py, every test video a camera, replayed
fast) with the first --model, takes the verdicts a subscriber receives, and reports the same
metrics next to the offline ones.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from stream.cli import Parser
from stream.config import EventsConfig, load_config
from stream.llm.events import EventTracker
from stream.types import SceneGraph, SecondScore, Verdict
from training.data import Segment, read_ground_truth
from training.features import read_video
from training.metrics import Detection, average_precision, f_beta, fnr, mean_ap, roc_auc

ROOT = Path(__file__).resolve().parents[1]
THRESHOLDS = (0.1, 0.2, 0.3)


@dataclass
class VideoResult:
    video: str
    fps: float
    n_frames: int
    seconds: list[SecondScore]                  # each second as the stream decides it
    alerts: list[Detection]                     # closed events: span, category, peak score
    truth: list[Segment] = field(default_factory=list)

    def frame_scores(self) -> np.ndarray:
        t = np.arange(self.n_frames) / self.fps
        out = np.zeros(self.n_frames)
        for s in self.seconds:
            out[(t >= s.start - 1e-6) & (t < s.end - 1e-6)] = s.score
        return out

    def frame_flags(self) -> np.ndarray:
        t = np.arange(self.n_frames) / self.fps
        out = np.zeros(self.n_frames, bool)
        for a in self.alerts:
            out |= (t >= a.start - 1e-6) & (t < a.end - 1e-6)
        return out

    def frame_truth(self, label: str | None = None) -> np.ndarray:
        t = np.arange(self.n_frames) / self.fps
        out = np.zeros(self.n_frames, bool)
        for s in self.truth:
            if label is None or s.label == label:
                out |= (t >= s.start - 1e-6) & (t < s.end - 1e-6)
        return out


def decide(video: str, verdicts: list[Verdict], events: EventsConfig, fps: float, n_frames: int,
           truth: list[Segment]) -> VideoResult:
    """A video's verdicts (in window order) through the stream's event tracker."""
    tracker = EventTracker(video, events)
    seconds, decided, alerts = [], 0.0, []
    for v in verdicts:
        for s in v.seconds:
            if s.start >= decided - 1e-6:
                seconds.append(s)
                decided = s.end
        alerts += tracker.update(v)
    alerts += tracker.flush(verdicts[-1] if verdicts else None)
    closed = [Detection(video, a.start, a.end, a.category, a.score) for a in alerts if a.state == "close"]
    return VideoResult(video, fps, n_frames, seconds, closed, truth)


def run_detector(detector, graphs: list[SceneGraph], batch: int = 16) -> list[Verdict]:
    out = []
    for i in range(0, len(graphs), batch):
        out += detector.batch(graphs[i:i + batch])
    return out


def summarise(results: list[VideoResult], hours_normal: float | None = None, normal_alerts: int | None = None) -> dict:
    """Table 1's metrics over all videos' frames, and Table 2's per-category FNR."""
    truth = np.concatenate([r.frame_truth() for r in results])
    flags = np.concatenate([r.frame_flags() for r in results])
    scores = np.concatenate([r.frame_scores() for r in results])
    segs = {r.video: [(s.start, s.end, s.label) for s in r.truth] for r in results}
    dets = [d for r in results for d in r.alerts]
    maps = mean_ap(segs, dets, THRESHOLDS)
    per_cat = {}
    for label in sorted({s.label for r in results for s in r.truth}):
        t = np.concatenate([r.frame_truth(label) for r in results])
        per_cat[label] = fnr(t, flags)
    out = {"fnr": fnr(truth, flags), "f2": f_beta(truth, flags, 2.0),
           **{f"map@{th}": maps[th] for th in THRESHOLDS}, "map_avg": float(np.mean(list(maps.values()))),
           "auc": roc_auc(truth, scores), "ap": average_precision(truth, scores), "alerts": len(dets),
           "fnr_per_category": per_cat}
    if hours_normal:
        out["false_alerts_per_hour"] = normal_alerts / hours_normal
    return out


# -- the stream itself -----------------------------------------------------------------------------
def _verdict(msg: dict) -> Verdict:
    return Verdict(camera=msg["camera"], window_id=msg["window_id"], start=msg["start"], end=msg["end"],
                   wall_start=msg["wall_start"], wall_end=msg["wall_end"], score=msg["score"],
                   seconds=tuple(SecondScore(s["start"], s["end"], s["score"], s["category"]) for s in msg["seconds"]),
                   categories=msg["categories"], explanation=msg["explanation"], detector=msg["detector"],
                   people=msg["people"], final=msg["final"])


def stream_verdicts(videos: dict[str, Path], model: Path, config: Path, timeout_s: float = 3600) -> dict[str, list[Verdict]]:
    """Every video a camera of one real pipeline process, replayed as fast as the models go; the
    verdicts a ZeroMQ subscriber receives, per camera in window order."""
    import yaml
    import zmq

    base = yaml.safe_load(config.read_text())
    for key in ("person_detector", "pose"):
        if key in base.get("models", {}) and "path" in base["models"][key]:
            base["models"][key]["path"] = str((config.parent / base["models"][key]["path"]).resolve())
    port = _free_port()
    base.update(replay="fast", cameras={v: {"path": str(p.resolve())} for v, p in videos.items()})
    base["detector"] = {"name": "hawkeye", "hawkeye": {"model": str(Path(model).resolve()), "explain": False}}
    base["alerts"] = {**base.get("alerts", {}), "endpoint": f"tcp://127.0.0.1:{port}", "wait_for_subscriber_s": 10}
    out: dict[str, list[Verdict]] = {v: [] for v in videos}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "eval.yaml"
        path.write_text(yaml.safe_dump(base))
        sock = zmq.Context.instance().socket(zmq.SUB)
        sock.setsockopt(zmq.RCVHWM, 0)
        sock.connect(base["alerts"]["endpoint"])
        sock.setsockopt(zmq.SUBSCRIBE, b"verdict/")
        proc = subprocess.Popen([sys.executable, str(ROOT / "run_pipeline.py"), "--config", str(path),
                                 "--log-level", "WARNING"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        t0 = time.time()
        bar = tqdm(desc="streaming", unit="verdict", file=sys.stderr)
        while (proc.poll() is None or sock.poll(500)) and time.time() - t0 < timeout_s:
            if sock.poll(200):
                msg = json.loads(sock.recv_multipart()[1])
                out[msg["camera"]].append(_verdict(msg))
                bar.update(1)
        bar.close()
        err = proc.stderr.read()
        sock.close(0)
        if proc.returncode:
            raise RuntimeError(f"the pipeline failed ({proc.returncode}): {err.strip()[-500:]}")
    return {v: sorted(vs, key=lambda x: x.window_id) for v, vs in out.items()}


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- pictures and tables ---------------------------------------------------------------------------
def plot_timeline(path: Path, rows: dict[str, VideoResult], threshold: float) -> None:
    """One video: each detector's per-second score, its alerts, and the ground-truth spans."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = next(iter(rows.values()))
    t = np.arange(first.n_frames) / first.fps
    fig, axes = plt.subplots(len(rows), 1, figsize=(10, 1.6 * len(rows) + 0.6), sharex=True, squeeze=False)
    for ax, (name, r) in zip(axes[:, 0], rows.items()):
        for s in r.truth:
            ax.axvspan(s.start, s.end, color="tab:red", alpha=0.18, lw=0)
            ax.text((s.start + s.end) / 2, 1.02, s.label, ha="center", va="bottom", fontsize=8, color="tab:red")
        for a in r.alerts:
            ax.plot([a.start, a.end], [-0.06, -0.06], color="tab:orange", lw=4, solid_capstyle="butt")
        ax.plot(t, r.frame_scores(), color="tab:blue", lw=1.2, drawstyle="steps-post")
        ax.axhline(threshold, color="grey", lw=0.8, ls="--")
        ax.set_ylim(-0.12, 1.15)
        ax.set_ylabel(name, fontsize=9)
    axes[-1, 0].set_xlabel("seconds (shaded: ground truth; orange: alerts; dashed: open threshold)")
    fig.suptitle(first.video, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _pct(x: float) -> str:
    return "  n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:5.1f}"


def table1(rows: dict[str, dict]) -> str:
    head = ("| method | FNR ↓ | F2 ↑ | mAP@0.1 | mAP@0.2 | mAP@0.3 | mAP avg | AUC | AP | false alerts/h |\n"
            "|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for name, m in rows.items():
        fah = m.get("false_alerts_per_hour")
        lines.append(f"| {name} | {_pct(m['fnr'])} | {_pct(m['f2'])} | " + " | ".join(_pct(m[f"map@{t}"]) for t in THRESHOLDS)
                     + f" | {_pct(m['map_avg'])} | {_pct(m['auc'])} | {_pct(m['ap'])} | "
                     + ("n/a" if fah is None else f"{fah:.0f}") + " |")
    return "\n".join(lines)


def table2(rows: dict[str, dict]) -> str:
    cats = sorted({c for m in rows.values() for c in m["fnr_per_category"]})
    lines = ["| method | " + " | ".join(cats) + " |", "|---|" + "---|" * len(cats)]
    for name, m in rows.items():
        lines.append(f"| {name} | " + " | ".join(_pct(m["fnr_per_category"].get(c)) for c in cats) + " |")
    return "FNR per category (%, lower is better)\n" + "\n".join(lines)


# -- the command -----------------------------------------------------------------------------------
def load_detectors(baseline: bool, models: list[tuple[str, Path]], config, threads: int):
    out = {}
    if baseline:
        from stream.llm.baseline import BaselineDetector
        out["baseline"] = BaselineDetector(config.detector.baseline)
    for name, path in models:
        from stream.llm.detector import HawkeyeDetector
        from stream.llm.hawkeye import load_model
        out[name] = HawkeyeDetector(load_model(path, merge_lora=True), threads=threads, explain=False)
    return out


def evaluate(features: Path, gt_path: Path, subset: str, detectors: dict, events: EventsConfig, *,
             normal_videos: list[str] = (), out: Path | None = None, plots: int = 8,
             stream_model: Path | None = None, config: Path | None = None) -> dict[str, dict]:
    gt = read_ground_truth(gt_path)
    names = sorted(v for v, e in gt.items() if e["subset"] == subset)
    if not names:
        raise ValueError(f"no {subset!r} videos in {gt_path}")
    per: dict[str, list[VideoResult]] = {d: [] for d in detectors}
    fps, n_frames, sources = {}, {}, {}
    for v in tqdm(names, desc=f"evaluating {subset}", unit="video", file=sys.stderr):
        feats = read_video(features, v)
        graphs = feats.scene_graphs()
        fps[v], sources[v] = feats.fps, feats.source
        n_frames[v] = int(round((gt[v].get("duration") or graphs[-1].end) * feats.fps))
        for name, det in detectors.items():
            per[name].append(decide(v, run_detector(det, graphs), events, fps[v], n_frames[v], gt[v]["segments"]))
    normal = {name: [0.0, 0] for name in detectors}           # hours watched, alerts raised
    for v in normal_videos:
        feats = read_video(features, v)
        graphs = feats.scene_graphs()
        for name, det in detectors.items():
            normal[name][0] += graphs[-1].end / 3600.0 if graphs else 0.0
            normal[name][1] += len(decide(v, run_detector(det, graphs), events, feats.fps, 0, []).alerts)
    tables = {name: summarise(rs, *normal[name]) for name, rs in per.items()}
    if stream_model is not None:
        model_name = next(n for n in detectors if n != "baseline")
        missing = [v for v in names if not sources[v]]
        if missing:
            raise ValueError(f"{features}/meta/{missing[0]}.json names no source video; --stream needs the videos")
        streamed = stream_verdicts({v: Path(sources[v]) for v in names}, stream_model, config)
        rs = [decide(v, streamed[v], events, fps[v], n_frames[v], gt[v]["segments"]) for v in names]
        tables[f"{model_name} (stream)"] = summarise(rs)
        per[f"{model_name} (stream)"] = rs
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(tables, indent=1) + "\n")
        text = f"{subset} split, {len(names)} videos\n\n{table1(tables)}\n\n{table2(tables)}\n"
        (out / "tables.md").write_text(text)
        for v_i, v in enumerate(names[:plots]):
            plot_timeline(out / "timelines" / f"{v}.png", {n: rs[v_i] for n, rs in per.items()}, events.open_threshold)
    return tables


def main(argv: list[str] | None = None) -> int:
    ap = Parser("python -m training.evaluate", __doc__)
    ap.add_argument("--features", type=Path, default=Path("data/bench"), help="the benchmark's features folder")
    ap.add_argument("--gt", type=Path, default=Path("data/bench/gt.json"), help="its ground truth")
    ap.add_argument("--subset", default="test", help="the split to evaluate (train, val, test)")
    ap.add_argument("--baseline", action="store_true", help="evaluate the baseline detector")
    ap.add_argument("--model", action="append", default=[], metavar="NAME=DIR",
                    help="a Hawkeye model directory to evaluate (repeatable)")
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "demo.yaml",
                    help="events: thresholds and the baseline's settings come from here")
    ap.add_argument("--normal-video", action="append", default=[],
                    help="a video with features and no anomaly (e.g. vtest): false alerts per hour")
    ap.add_argument("--stream", action="store_true", help="also run the first --model through the real pipeline")
    ap.add_argument("--out", type=Path, default=Path("out/eval"), help="where tables and timelines go")
    ap.add_argument("--plots", type=int, default=8, help="score timelines for this many videos")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads for the models")
    args = ap.parse_args(argv)
    try:
        models = [(m.split("=", 1)[0], Path(m.split("=", 1)[1])) if "=" in m else (Path(m).name, Path(m))
                  for m in args.model]
        if not models and not args.baseline:
            raise ValueError("nothing to evaluate: give --baseline and/or --model NAME=DIR")
        if args.stream and not models:
            raise ValueError("--stream needs a --model")
        cfg = load_config(args.config)
        dets = load_detectors(args.baseline, models, cfg, args.threads)
        tables = evaluate(args.features, args.gt, args.subset, dets, cfg.events, normal_videos=args.normal_video,
                          out=args.out, plots=args.plots, stream_model=models[0][1] if args.stream else None,
                          config=args.config)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"\n{table1(tables)}\n\n{table2(tables)}\n\n(written to {args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
