"""Evaluate detectors on a benchmark split: Hawkeye's Table 1 (FNR, F2, mAP@tIoU) and Table 2
(FNR per category, also category-aware), frame-level and per-second ROC-AUC and AP, the confusion
of alert against event categories, false alerts per hour over all normal footage, 95 % per-video
bootstrap intervals for each figure, and score timelines against the ground truth.

    python -m training.evaluate --features data/bench --gt data/bench/gt.json --subset test \\
        --baseline --model hawkeye=models/hawkeye --normal-video vtest --out out/eval

Each detector sees every window of every video as the stream cuts them (features rebuilt by
training/features.py), and the stream's own event tracker (`events:` of --config) turns its
per-second scores into alerts. Frame-level metrics use each second's score as the stream decides
it (the first window that scores it) and the alerts' spans as the frames flagged; mAP ranks the
alerts (span, category, peak score) against the ground-truth segments, tied scores ordered as
ActivityNet orders them. `--out` keeps what was scored (per-frame truth, scores and flags in
scored/<method>.npz; events, alerts and per-second scores in scored/<method>.json).

`--open-thresholds 0.6,0.7,0.8` adds the operating points: the same verdicts through the event
tracker at each `events.open_threshold`, and what each costs in missed events and buys in false
alerts (choose one on `--subset val`, then read its figures on test).

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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from engines.cli import Parser
from stream.config import EventsConfig, load_config
from stream.detection.events import EventTracker
from stream.types import SceneGraph, SecondScore, Verdict
from training.data import Segment, read_ground_truth
from training.features import read_video
from training.metrics import (Detection, average_precision, bootstrap_intervals, category_confusion, f_beta, fnr,
                              labels_without_truth, mean_ap, roc_auc)

ROOT = Path(__file__).resolve().parents[1]
THRESHOLDS = (0.1, 0.2, 0.3)
EARLY_S = 2.0          # an alert that starts more than this before an event did not find it: a false alert


@dataclass
class VideoResult:
    video: str
    fps: float
    n_frames: int
    seconds: list[SecondScore]                  # each second as the stream decides it
    alerts: list[Detection]                     # closed events: span, category, peak score
    truth: list[Segment] = field(default_factory=list)
    _memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)   # per-frame arrays, by kind

    def _once(self, key, make):
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def frame_scores(self) -> np.ndarray:
        return self._once("scores", self._frame_scores)

    def _frame_scores(self) -> np.ndarray:
        t = np.arange(self.n_frames) / self.fps
        out = np.zeros(self.n_frames)
        for s in self.seconds:
            out[(t >= s.start - 1e-6) & (t < s.end - 1e-6)] = s.score
        return out

    def frame_flags(self, label: str | None = None) -> np.ndarray:
        """Frames inside an alert (of `label`, when given)."""
        return self._once(("flags", label), lambda: self._frame_flags(label))

    def _frame_flags(self, label: str | None) -> np.ndarray:
        t = np.arange(self.n_frames) / self.fps
        out = np.zeros(self.n_frames, bool)
        for a in self.alerts:
            if label is None or a.label == label:
                out |= (t >= a.start - 1e-6) & (t < a.end - 1e-6)
        return out

    def frame_truth(self, label: str | None = None) -> np.ndarray:
        return self._once(("truth", label), lambda: self._frame_truth(label))

    def _frame_truth(self, label: str | None) -> np.ndarray:
        t = np.arange(self.n_frames) / self.fps
        out = np.zeros(self.n_frames, bool)
        for s in self.truth:
            if label is None or s.label == label:
                out |= (t >= s.start - 1e-6) & (t < s.end - 1e-6)
        return out

    # per second: what the stream scores; a second is anomalous when most of its frames are
    def _second_of_frame(self) -> np.ndarray:
        return (np.arange(self.n_frames) / self.fps + 1e-6).astype(int)     # non-decreasing

    def _most(self, frames: np.ndarray) -> np.ndarray:
        idx = self._second_of_frame()
        return np.bincount(idx, weights=frames.astype(float)) >= 0.5 * np.maximum(np.bincount(idx), 1)

    def second_truth(self) -> np.ndarray:
        return self._once("second truth", lambda: self._most(self.frame_truth()))

    def second_flags(self) -> np.ndarray:
        return self._once("second flags", lambda: self._most(self.frame_flags()))

    def second_scores(self) -> np.ndarray:
        def make():
            idx = self._second_of_frame()
            starts = np.flatnonzero(np.r_[True, np.diff(idx) > 0])
            out = np.zeros(idx[-1] + 1 if len(idx) else 0)
            if len(idx):
                out[idx[starts]] = np.maximum.reduceat(self.frame_scores(), starts)
            return out
        return self._once("second scores", make)

    @property
    def normal_s(self) -> float:
        """Seconds of this video outside every ground-truth event."""
        return float((~self.frame_truth()).sum()) / self.fps

    def finds(self, a: Detection, s: Segment) -> bool:
        """Whether alert `a` found event `s`: it overlaps it and starts at most EARLY_S before it."""
        return min(s.end, a.end) > max(s.start, a.start) and a.start >= s.start - EARLY_S

    @property
    def false_alerts(self) -> int:
        """Alerts that found no ground-truth event: they overlap none, or start more than EARLY_S
        before every event they overlap (an alarm raised before anything happened)."""
        return sum(not any(self.finds(a, s) for s in self.truth) for a in self.alerts)

    def found(self) -> list[tuple[Segment, Detection | None]]:
        """Each event with the first alert (by the time it went out) that found it, or None."""
        return [(s, min((a for a in self.alerts if self.finds(a, s)), key=lambda a: (a.opened, a.start), default=None))
                for s in self.truth]


def decide(video: str, verdicts: list[Verdict], events: EventsConfig, fps: float, n_frames: int,
           truth: list[Segment]) -> VideoResult:
    """A video's verdicts (in window order) through the stream's event tracker."""
    tracker = EventTracker(video, events)
    seconds, decided, alerts, opened = [], 0.0, [], {}
    for v in verdicts:
        for s in v.seconds:
            if s.start >= decided - 1e-6:
                seconds.append(s)
                decided = s.end
        for a in tracker.update(v):
            alerts.append(a)
            if a.state == "open":
                opened[a.alert_id] = v.end
    alerts += tracker.flush(verdicts[-1] if verdicts else None)
    closed = [Detection(video, a.start, a.end, a.category, a.score, opened.get(a.alert_id, a.start))
              for a in alerts if a.state == "close"]
    return VideoResult(video, fps, n_frames, seconds, closed, truth)


def run_detector(detector, graphs: list[SceneGraph], batch: int = 16) -> list[Verdict]:
    out = []
    for i in range(0, len(graphs), batch):
        out += detector.batch(graphs[i:i + batch])
    return out


HEADLINE = ("fnr", "f2", *(f"map@{t}" for t in THRESHOLDS), "map_avg", "auc", "ap", "fnr_category_aware",
            "false_alerts_per_hour", "second_fnr", "second_f2", "second_auc", "second_ap", "normal_videos_alerting",
            "event_fnr", "time_to_alert_median", "time_to_alert_p90")


def operator_figures(results: list[VideoResult]) -> dict[str, float]:
    """What an operator asks: the share of videos with no event that raise any alert; the share of
    events no alert found (`event_fnr`, also per category); and the time to alert, from an event's
    start to the moment its first finding alert went out (median and 90th percentile, seconds; an
    alert that starts more than EARLY_S early finds nothing and counts as a false alert)."""
    normal = [r for r in results if not r.truth]
    out = {"normal_videos_alerting": sum(bool(r.alerts) for r in normal) / len(normal) if normal else float("nan")}
    pairs = [(s, a) for r in results for s, a in r.found()]
    delays = np.array([a.opened - s.start for s, a in pairs if a is not None])
    out["event_fnr"] = sum(a is None for _, a in pairs) / len(pairs) if pairs else float("nan")
    for label in sorted({s.label for s, _ in pairs}):
        mine = [a for s, a in pairs if s.label == label]
        out[f"event_fnr/{label}"] = sum(a is None for a in mine) / len(mine)
    out["time_to_alert_median"] = float(np.median(delays)) if len(delays) else float("nan")
    out["time_to_alert_p90"] = float(np.percentile(delays, 90)) if len(delays) else float("nan")
    return out


def headline(results: list[VideoResult], normal_hours: float = 0.0, normal_alerts: int = 0) -> dict[str, float]:
    """The figures each table reports, over all videos' frames (and seconds): Hawkeye's Table 1,
    Table 2's FNR per category (`fnr/<category>`), the category-aware FNR (an event's frames count
    as found only inside an alert of its own category), per-second scoring, and false alerts per
    hour over every normal stretch of the videos plus `normal_hours` of footage with no event."""
    truth = np.concatenate([r.frame_truth() for r in results])
    flags = np.concatenate([r.frame_flags() for r in results])
    scores = np.concatenate([r.frame_scores() for r in results])
    # keyed by position: a bootstrap resample may hold one video twice, and mAP matches per video
    segs = {i: [(s.start, s.end, s.label) for s in r.truth] for i, r in enumerate(results)}
    dets = [replace(d, video=i) for i, r in enumerate(results) for d in r.alerts]
    maps = mean_ap(segs, dets, THRESHOLDS)
    out = {"fnr": fnr(truth, flags), "f2": f_beta(truth, flags, 2.0), **{f"map@{t}": maps[t] for t in THRESHOLDS},
           "map_avg": float(np.mean(list(maps.values()))), "auc": roc_auc(truth, scores),
           "ap": average_precision(truth, scores)}
    missed = total = 0
    for label in sorted({s.label for r in results for s in r.truth}):
        t = np.concatenate([r.frame_truth(label) for r in results])
        own = np.concatenate([r.frame_flags(label) for r in results])
        out[f"fnr/{label}"] = fnr(t, flags)
        out[f"fnr_category_aware/{label}"] = fnr(t, own)
        missed, total = missed + int((t & ~own).sum()), total + int(t.sum())
    out["fnr_category_aware"] = missed / total if total else float("nan")
    st = np.concatenate([r.second_truth() for r in results])
    out.update(second_fnr=fnr(st, np.concatenate([r.second_flags() for r in results])),
               second_f2=f_beta(st, np.concatenate([r.second_flags() for r in results]), 2.0),
               second_auc=roc_auc(st, np.concatenate([r.second_scores() for r in results])),
               second_ap=average_precision(st, np.concatenate([r.second_scores() for r in results])))
    hours = normal_hours + sum(r.normal_s for r in results) / 3600.0
    out["false_alerts_per_hour"] = (normal_alerts + sum(r.false_alerts for r in results)) / hours if hours else float("nan")
    out.update(operator_figures(results))
    return out


def summarise(results: list[VideoResult], hours_normal: float = 0.0, normal_alerts: int = 0,
              bootstrap: int = 1000) -> dict:
    """Every figure (see `headline`) with its 95 % interval from a per-video bootstrap (`ci`),
    the confusion of alert against event categories, and the alert labels no event has."""
    out = headline(results, hours_normal, normal_alerts)
    segs = {r.video: [(s.start, s.end, s.label) for s in r.truth] for r in results}
    dets = [d for r in results for d in r.alerts]
    normal_h = hours_normal + sum(r.normal_s for r in results) / 3600.0
    out.update(alerts=len(dets), false_alerts=normal_alerts + sum(r.false_alerts for r in results),
               normal_hours=normal_h, false_alerts_resolution_per_hour=1.0 / normal_h if normal_h else float("nan"),
               confusion=category_confusion(segs, dets), labels_without_truth=labels_without_truth(segs, dets),
               fnr_per_category={k.split("/", 1)[1]: v for k, v in out.items() if k.startswith("fnr/")},
               videos=len(results), events=sum(len(r.truth) for r in results))
    if bootstrap:
        out["ci"] = bootstrap_intervals(results, lambda rs: headline(rs, hours_normal, normal_alerts), n=bootstrap)
    return out


def scored(results: list[VideoResult]) -> tuple[dict[str, np.ndarray], list[dict]]:
    """What a detector's figures were computed from, to recompute any table: per video the frame
    truth, scores and flags (arrays), and the ground truth, alerts and per-second scores (records)."""
    arrays, records = {}, []
    for r in results:
        arrays[f"{r.video}/truth"], arrays[f"{r.video}/scores"] = r.frame_truth(), r.frame_scores()
        arrays[f"{r.video}/flags"] = r.frame_flags()
        records.append({"video": r.video, "fps": r.fps, "n_frames": r.n_frames,
                        "truth": [asdict(s) for s in r.truth], "alerts": [asdict(a) for a in r.alerts],
                        "seconds": [asdict(s) for s in r.seconds]})
    return arrays, records


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


def _with_ci(m: dict, key: str, scale: float = 100.0, fmt: str = "{:.1f}") -> str:
    """A figure and its 95 % interval: `64.0 [51.6–78.9]`."""
    x = m.get(key)
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    lo_hi = m.get("ci", {}).get(key)
    text = fmt.format(scale * x)
    return text + (f" [{fmt.format(scale * lo_hi[0])}–{fmt.format(scale * lo_hi[1])}]" if lo_hi else "")


def table_operator(rows: dict[str, dict]) -> str:
    """What an operator asks first (see `operator_figures`), each with its 95 % interval."""
    lines = ["| method | normal videos with an alert ↓ | false alerts/h ↓ | events missed ↓ | category-aware FNR ↓ "
             "| time to alert, median (s) | p90 (s) | AUC |", "|---|" + "---|" * 7]
    for name, m in rows.items():
        lines.append(f"| {name} | " + " | ".join([
            _with_ci(m, "normal_videos_alerting"), _with_ci(m, "false_alerts_per_hour", 1.0, "{:.0f}"),
            _with_ci(m, "event_fnr"), _with_ci(m, "fnr_category_aware"),
            _with_ci(m, "time_to_alert_median", 1.0), _with_ci(m, "time_to_alert_p90", 1.0), _with_ci(m, "auc")]) + " |")
    cats = sorted({k.split("/", 1)[1] for m in rows.values() for k in m if k.startswith("event_fnr/")})
    if cats:
        lines += ["", "Events missed per category (%; an alert of any category finds an event)",
                  "| method | " + " | ".join(cats) + " |", "|---|" + "---|" * len(cats)]
        lines += [f"| {name} | " + " | ".join(_with_ci(m, f"event_fnr/{c}") for c in cats) + " |"
                  for name, m in rows.items()]
    return "For the operator (an alert starting over 2 s before its event counts as false)\n" + "\n".join(lines)


SPREAD = (("normal_videos_alerting", "normal videos with an alert", 100.0), ("false_alerts_per_hour", "false alerts/h", 1.0),
          ("event_fnr", "events missed", 100.0), ("fnr_category_aware", "category-aware FNR", 100.0),
          ("time_to_alert_median", "time to alert, median (s)", 1.0), ("auc", "AUC", 100.0), ("fnr", "FNR", 100.0),
          ("f2", "F2", 100.0), ("map_avg", "mAP avg", 100.0))


def table_spread(rows: dict[str, dict], seeds: list[str]) -> str:
    """The same recipe trained with different seeds: each figure's mean, standard deviation and range."""
    lines = [f"Across {len(seeds)} seeds ({', '.join(seeds)})", "| figure | mean | sd | min–max |", "|---|---|---|---|"]
    for key, label, scale in SPREAD:
        vals = np.array([rows[s][key] for s in seeds if key in rows[s]], float) * scale
        vals = vals[np.isfinite(vals)]
        if len(vals):
            lines.append(f"| {label} | {vals.mean():.1f} | {vals.std(ddof=1) if len(vals) > 1 else 0.0:.1f} | "
                         f"{vals.min():.1f}–{vals.max():.1f} |")
    return "\n".join(lines)


def table1(rows: dict[str, dict]) -> str:
    """Hawkeye's Table 1, each figure with its 95 % per-video bootstrap interval."""
    cols = [("FNR ↓", "fnr"), ("F2 ↑", "f2"), *((f"mAP@{t}", f"map@{t}") for t in THRESHOLDS), ("mAP avg", "map_avg"),
            ("AUC", "auc"), ("AP", "ap"), ("category-aware FNR ↓", "fnr_category_aware")]
    lines = ["| method | " + " | ".join(c for c, _ in cols) + " | false alerts/h |", "|---|" + "---|" * (len(cols) + 1)]
    for name, m in rows.items():
        fah = _with_ci(m, "false_alerts_per_hour", 1.0, "{:.0f}")
        lines.append(f"| {name} | " + " | ".join(_with_ci(m, k) for _, k in cols) + f" | {fah} |")
    return "\n".join(lines)


def table2(rows: dict[str, dict]) -> str:
    """Table 2: FNR per category, category-blind (any alert finds an event) and category-aware."""
    cats = sorted({c for m in rows.values() for c in m["fnr_per_category"]})
    lines = ["| method | " + " | ".join(cats) + " |", "|---|" + "---|" * len(cats)]
    for name, m in rows.items():
        lines.append(f"| {name} | " + " | ".join(_with_ci(m, f"fnr/{c}") for c in cats) + " |")
        lines.append(f"| {name}, category-aware | " + " | ".join(_with_ci(m, f"fnr_category_aware/{c}") for c in cats)
                     + " |")
    return "FNR per category (%, lower is better; [95 % interval])\n" + "\n".join(lines)


def table_seconds(rows: dict[str, dict]) -> str:
    """Per-second scoring beside the per-frame figures, and what the false-alert rate rests on."""
    lines = ["| method | FNR ↓ | F2 ↑ | AUC | AP | false alerts | normal footage | rate resolution |", "|---|" + "---|" * 7]
    for name, m in rows.items():
        lines.append(f"| {name} | " + " | ".join(_with_ci(m, f"second_{k}") for k in ("fnr", "f2", "auc", "ap"))
                     + f" | {m['false_alerts']} | {60 * m['normal_hours']:.1f} min"
                     + f" | {m['false_alerts_resolution_per_hour']:.1f}/h |")
    return "Per second (a second is anomalous when most of its frames are)\n" + "\n".join(lines)


def confusion_tables(rows: dict[str, dict]) -> str:
    """For each method: event category (rows) against the category of the alert that found it."""
    parts = []
    for name, m in rows.items():
        conf = m["confusion"]
        cols = sorted({c for r in conf.values() for c in r} - {"missed"}) + ["missed"]
        lines = [f"{name}: event category (rows) against alert category (columns)",
                 "| event | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
        for row, counts in conf.items():
            lines.append(f"| {row} | " + " | ".join(str(counts.get(c, 0)) for c in cols) + " |")
        if m["labels_without_truth"]:
            lines.append("alerts of categories no event has: "
                         + ", ".join(f"{k} {v}" for k, v in m["labels_without_truth"].items()))
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def report(subset: str, rows: dict[str, dict]) -> str:
    first = next(iter(rows.values()))
    return (f"{subset} split: {first['videos']} videos, {first['events']} events; intervals: 95 %, per-video "
            f"bootstrap\n\n{table_operator(rows)}\n\n{table1(rows)}\n\n{table2(rows)}\n\n{table_seconds(rows)}\n\n{confusion_tables(rows)}\n"
            + (f"\n{table_operating(rows)}" if table_operating(rows) else ""))


# -- the command -----------------------------------------------------------------------------------
def open_thresholds(text: str, events: EventsConfig) -> list[float]:
    """`0.6,0.7,0.8` -> [0.6, 0.7, 0.8], each above the config's close_threshold and at most 1."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            t = float(part)
        except ValueError:
            raise ValueError(f"--open-thresholds: {part!r} is not a number") from None
        if not events.close_threshold < t <= 1.0:
            raise ValueError(f"--open-thresholds: {t:g} must be above events.close_threshold "
                             f"({events.close_threshold:g}) and at most 1")
        out.append(t)
    return out


def load_detectors(baseline: bool, models: list[tuple[str, Path]], config, threads: int):
    out = {}
    if baseline:
        from stream.detection.baseline import BaselineDetector
        out["baseline"] = BaselineDetector(config.detector.baseline)
    for name, path in models:
        from stream.llm.detector import HawkeyeDetector
        from stream.llm.hawkeye import load_model
        out[name] = HawkeyeDetector(load_model(path, merge_lora=True), threads=threads, explain=False)
    return out


def operating_points(per_video: dict[str, tuple], normal: list[tuple], events: EventsConfig,
                     thresholds: list[float]) -> list[dict]:
    """One detector's verdicts (per video: verdicts, fps, frames, truth; normal footage: hours,
    verdicts, fps) through the event tracker at each open threshold: FNR, F2, mAP@0.3,
    category-aware FNR and false alerts per hour (no intervals: a curve to choose a point on)."""
    out = []
    for t in thresholds:
        ev = events.model_copy(update={"open_threshold": t})
        rs = [decide(v, verdicts, ev, fps, n, truth) for v, (verdicts, fps, n, truth) in per_video.items()]
        alerts = sum(len(decide("normal", verdicts, ev, fps, 0, []).alerts) for _, verdicts, fps in normal)
        m = headline(rs, sum(h for h, _, _ in normal), alerts)
        out.append({"open_threshold": t, **{k: m[k] for k in ("fnr", "f2", "map@0.3", "fnr_category_aware",
                                                                 "false_alerts_per_hour")}})
    return out


def table_operating(rows: dict[str, dict]) -> str:
    """The operating points (`operating_points`) of the methods that have them."""
    curves = {name: m["operating_points"] for name, m in rows.items() if m.get("operating_points")}
    if not curves:
        return ""
    lines = ["| method | open_threshold | FNR ↓ | F2 ↑ | mAP@0.3 | category-aware FNR ↓ | false alerts/h |",
             "|---|" + "---|" * 6]
    for name, points in curves.items():
        for r in points:
            lines.append(f"| {name} | {r['open_threshold']:g} | {100 * r['fnr']:.1f} | {100 * r['f2']:.1f} | "
                         f"{100 * r['map@0.3']:.1f} | {100 * r['fnr_category_aware']:.1f} | "
                         f"{r['false_alerts_per_hour']:.0f} |")
    return ("Operating points (events.open_threshold; the other events settings as in --config)\n"
            + "\n".join(lines) + "\n")


def evaluate(features: Path, gt_path: Path, subset: str, detectors: dict, events: EventsConfig, *,
             normal_videos: list[str] = (), out: Path | None = None, plots: int = 8,
             stream_model: Path | None = None, config: Path | None = None, bootstrap: int = 1000,
             open_thresholds: list[float] = ()) -> dict[str, dict]:
    gt = read_ground_truth(gt_path)
    names = sorted(v for v, e in gt.items() if e["subset"] == subset)
    if not names:
        raise ValueError(f"no {subset!r} videos in {gt_path}")
    per: dict[str, list[VideoResult]] = {d: [] for d in detectors}
    seen: dict[str, dict[str, tuple]] = {d: {} for d in detectors}          # what each detector said, per video
    fps, n_frames, sources = {}, {}, {}
    for v in tqdm(names, desc=f"evaluating {subset}", unit="video", file=sys.stderr):
        feats = read_video(features, v)
        graphs = feats.scene_graphs()
        fps[v], sources[v] = feats.fps, feats.source
        n_frames[v] = int(round((gt[v].get("duration") or graphs[-1].end) * feats.fps))
        for name, det in detectors.items():
            verdicts = run_detector(det, graphs)
            seen[name][v] = (verdicts, fps[v], n_frames[v], gt[v]["segments"])
            per[name].append(decide(v, verdicts, events, fps[v], n_frames[v], gt[v]["segments"]))
    normal = {name: [0.0, 0] for name in detectors}           # hours watched, alerts raised
    normal_seen: dict[str, list[tuple]] = {d: [] for d in detectors}
    for v in normal_videos:
        feats = read_video(features, v)
        graphs = feats.scene_graphs()
        for name, det in detectors.items():
            verdicts = run_detector(det, graphs)
            normal[name][0] += graphs[-1].end / 3600.0 if graphs else 0.0
            normal[name][1] += len(decide(v, verdicts, events, feats.fps, 0, []).alerts)
            normal_seen[name].append((graphs[-1].end / 3600.0 if graphs else 0.0, verdicts, feats.fps))
    tables = {name: summarise(rs, *normal[name], bootstrap=bootstrap) for name, rs in per.items()}
    for name in detectors if open_thresholds else ():
        tables[name]["operating_points"] = operating_points(seen[name], normal_seen[name], events, list(open_thresholds))
    if stream_model is not None:
        model_name = next(n for n in detectors if n != "baseline")
        missing = [v for v in names if not sources[v]]
        if missing:
            raise ValueError(f"{features}/meta/{missing[0]}.json names no source video; --stream needs the videos")
        streamed = stream_verdicts({v: Path(sources[v]) for v in names}, stream_model, config)
        rs = [decide(v, streamed[v], events, fps[v], n_frames[v], gt[v]["segments"]) for v in names]
        tables[f"{model_name} (stream)"] = summarise(rs, bootstrap=bootstrap)
        per[f"{model_name} (stream)"] = rs
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(tables, indent=1) + "\n")
        (out / "tables.md").write_text(report(subset, tables))
        for name, rs in per.items():            # what was scored, to recompute any table
            arrays, records = scored(rs)
            stem = out / "scored" / name.replace(" ", "_").replace("/", "_")
            stem.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(stem.with_suffix(".npz"), **arrays)
            stem.with_suffix(".json").write_text(json.dumps(records) + "\n")
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
    ap.add_argument("--bootstrap", type=int, default=1000, help="per-video resamples for the 95 %% intervals (0: none)")
    ap.add_argument("--seeds", action="store_true",
                    help="the --model entries are one recipe trained with different seeds: also print each figure's "
                         "mean, standard deviation and range across them")
    ap.add_argument("--open-thresholds", default="", metavar="T,T,...",
                    help="operating points: the same verdicts at each events.open_threshold (e.g. 0.6,0.7,0.8,0.9)")
    args = ap.parse_args(argv)
    try:
        models = [(m.split("=", 1)[0], Path(m.split("=", 1)[1])) if "=" in m else (Path(m).name, Path(m))
                  for m in args.model]
        if not models and not args.baseline:
            raise ValueError("nothing to evaluate: give --baseline and/or --model NAME=DIR")
        if args.stream and not models:
            raise ValueError("--stream needs a --model")
        cfg = load_config(args.config)
        opens = open_thresholds(args.open_thresholds, cfg.events)
        dets = load_detectors(args.baseline, models, cfg, args.threads)
        tables = evaluate(args.features, args.gt, args.subset, dets, cfg.events, normal_videos=args.normal_video,
                          out=args.out, plots=args.plots, stream_model=models[0][1] if args.stream else None,
                          config=args.config, bootstrap=args.bootstrap, open_thresholds=opens)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = report(args.subset, tables)
    if args.seeds and len(models) > 1:
        text += "\n\n" + table_spread(tables, [name for name, _ in models])
        (args.out / "tables.md").write_text(text + "\n")
    print(f"\n{text}\n(written to {args.out}: tables.md, metrics.json, scored/, timelines/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
