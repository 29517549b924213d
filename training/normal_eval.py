"""What each camera's own normal (stream/detection/normal.py) buys and costs, measured with the stream's
own memory and event tracker on extracted features.

    python -m training.normal_eval --model models/hawkeye --real data/real --bench data/bench \
        [--subset test] [--radius 0.05 0.07 0.1]

Every clip is split in time: the memory learns the first part (as `python -m stream.detection.normal learn`
does from a recording), then the rest is watched as a live camera would be, with and without it.
- Real normal clips: the first half is learnt, the second watched. Figures: clips with an alert in
  the watched half, and false alerts an hour.
- Real clips with events: the seconds up to LEAD_IN_S before the first event are learnt (where
  there are at least 4), the rest is watched. Figure: events found (an alert overlapping the event;
  `named`: of its category).
- vtest.avi (one camera, no events): its first minute is learnt; the rest, and the synthetic
  benchmark's test videos (actors composed into the same scene, through simulated cameras) are
  watched with that memory. Figures: false alerts an hour outside events, and events found.
Intervals are Wilson 95 % intervals on the clip and event counts.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from engines.cli import Parser
from stream.config import EventsConfig, NormalConfig
from stream.detection.events import EventTracker
from stream.detection.normal import LEAD_IN_S, CameraNormal
from stream.types import Verdict
from training.data import read_ground_truth
from training.evaluate import run_detector
from training.features import read_video

VTEST_WARMUP_S = 60.0


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def watch(verdicts: list[Verdict], events: EventsConfig, normal: CameraNormal | None) -> list:
    """The opened alerts of a live camera watching these windows (with its normal memory, if any)."""
    tracker, out = EventTracker("eval", events), []
    for v in verdicts:
        alerts = tracker.update(v, normal.admits(v) if normal is not None else None)
        if normal is not None:
            normal.observed(v, tracker.is_open, [a.start for a in alerts if a.state == "open"])
        out += [a for a in alerts if a.state == "open"]
    return out


def learnt(verdicts: list[Verdict], until: float, radius: float) -> CameraNormal:
    """A memory that learnt every second of the windows ending by `until`."""
    normal = CameraNormal("eval", NormalConfig(enabled=True, warmup_minutes=0.0, radius=radius), None)
    for v in verdicts:
        if v.end <= until + 1e-6:
            normal.learn_all(v)
    normal.warm = True
    return normal


@dataclass
class Tally:
    normal_clips: int = 0
    alerting: list[int] = field(default_factory=lambda: [0, 0])         # without, with
    false_alerts: list[int] = field(default_factory=lambda: [0, 0])
    hours: float = 0.0
    events: int = 0
    found: list[int] = field(default_factory=lambda: [0, 0])
    named: list[int] = field(default_factory=lambda: [0, 0])

    def rows(self, name: str) -> list[str]:
        out = []
        for i, label in enumerate(("without", "with")):
            a, f = self.alerting[i], self.found[i]
            lo, hi = wilson(a, self.normal_clips)
            flo, fhi = wilson(f, self.events)
            fah = self.false_alerts[i] / self.hours if self.hours else float("nan")
            out.append(f"| {name} | {label} | {a}/{self.normal_clips} ({100 * lo:.0f}–{100 * hi:.0f} %) | {fah:.0f} | "
                       f"{f}/{self.events} ({100 * flo:.0f}–{100 * fhi:.0f} %) | {self.named[i]}/{self.events} |")
        return out


def overlaps(a, start: float, end: float) -> bool:
    return a.start < end + 0.5 and a.end > start - 0.5


def real_clips(features: Path, subset: str, det, events: EventsConfig, radii: list[float]) -> dict[float, Tally]:
    gt = read_ground_truth(features / "gt.json")
    names = sorted(v for v, e in gt.items() if e["subset"] == subset)
    out = {r: Tally() for r in radii}
    for v in tqdm(names, desc=f"real {subset}", unit="clip", file=sys.stderr):
        verdicts = run_detector(det, read_video(features, v).scene_graphs())
        if not verdicts:
            continue
        segs = gt[v]["segments"]
        end = verdicts[-1].end
        until = end / 2 if not segs else min(s.start for s in segs) - LEAD_IN_S
        if not segs and end < 8.0:
            continue
        if segs and until < 4.0:
            until = 0.0                           # too little before the event to learn: watch it all, no memory
        watched = [w for w in verdicts if w.start >= until - 1e-6]
        base = watch(watched, events, None)
        for r in radii:
            t = out[r]
            mem = learnt(verdicts, until, r) if until > 0 else None
            got = watch(watched, events, mem)
            if not segs:
                t.normal_clips += 1
                t.hours += (end - until) / 3600.0
                for i, alerts in enumerate((base, got)):
                    t.alerting[i] += bool(alerts)
                    t.false_alerts[i] += len(alerts)
            else:
                for s in segs:
                    t.events += 1
                    for i, alerts in enumerate((base, got)):
                        hit = [a for a in alerts if overlaps(a, s.start, s.end)]
                        t.found[i] += bool(hit)
                        t.named[i] += any(a.category == s.label for a in hit)
    return out


def vtest_camera(bench: Path, det, events: EventsConfig, radii: list[float]) -> dict[float, Tally]:
    gt = read_ground_truth(bench / "gt.json")
    vtest = run_detector(det, read_video(bench, "vtest").scene_graphs())
    tests = {v: run_detector(det, read_video(bench, v).scene_graphs())
             for v in tqdm(sorted(v for v, e in gt.items() if e["subset"] == "test"), desc="bench test",
                           unit="video", file=sys.stderr)}
    out = {}
    for r in radii:
        t = out[r] = Tally()
        mem = learnt(vtest, VTEST_WARMUP_S, r)
        rest = [w for w in vtest if w.start >= VTEST_WARMUP_S - 1e-6]
        t.normal_clips, t.hours = 1, (vtest[-1].end - VTEST_WARMUP_S) / 3600.0
        for i, m in enumerate((None, mem)):
            alerts = watch(rest, events, m)
            t.alerting[i] += bool(alerts)
            t.false_alerts[i] += len(alerts)
        for v, verdicts in tests.items():
            segs = gt[v]["segments"]
            t.hours += (verdicts[-1].end - sum(s.end - s.start for s in segs)) / 3600.0
            for i, m in enumerate((None, learnt(vtest, VTEST_WARMUP_S, r))):    # each video: the same memory
                alerts = watch(verdicts, events, m)
                t.false_alerts[i] += sum(not any(overlaps(a, s.start, s.end) for s in segs) for a in alerts)
                for s in segs:
                    hit = [a for a in alerts if overlaps(a, s.start, s.end)]
                    t.found[i] += bool(hit)
                    t.named[i] += any(a.category == s.label for a in hit)
            t.events += len(segs)
    return out


def main(argv: list[str] | None = None) -> int:
    from stream.config import load_config
    from stream.llm.detector import HawkeyeDetector
    from stream.llm.hawkeye import load_model

    p = Parser("python -m training.normal_eval", "Each camera's own normal: false alerts and missed events with "
                                                 "and without it.")
    p.add_argument("--model", type=Path, default=Path("models/hawkeye"))
    p.add_argument("--real", type=Path, help="the real-clip set's features (training/realset.py)")
    p.add_argument("--subset", default="test")
    p.add_argument("--bench", type=Path, help="the synthetic benchmark's features (with vtest)")
    p.add_argument("--config", type=Path, default=Path("configs/demo.yaml"), help="events thresholds from here")
    p.add_argument("--radius", type=float, nargs="+", default=[NormalConfig().radius])
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    if args.real is None and args.bench is None:
        p.error("give --real, --bench or both")
    events = load_config(args.config).events
    det = HawkeyeDetector(load_model(args.model, merge_lora=True), threads=args.threads, explain=False)
    lines = ["| footage | normal memory | clips with an alert (95 % CI) | false alerts / h | events found (95 % CI) | "
             "named |", "|---|---|---|---|---|---|"]
    for name, tallies in ((f"real {args.subset}", real_clips(args.real, args.subset, det, events, args.radius)
                           if args.real else {}),
                          ("vtest camera", vtest_camera(args.bench, det, events, args.radius) if args.bench else {})):
        for r, t in tallies.items():
            lines += t.rows(f"{name}, radius {r:g}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
