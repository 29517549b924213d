"""A benchmark's contact sheet: one frame of each category at the middle of one of its events,
labelled, so anyone can judge at a glance what the generator's events look like.

    python -m training.sheet --bench data/bench --out docs/benchmark.png [--subset test]
"""
from __future__ import annotations

import sys
from pathlib import Path

import av
import cv2
import numpy as np

from engines.cli import Parser
from training.data import read_ground_truth


def frame_at(video: Path, t: float) -> np.ndarray:
    """The BGR frame shown at `t` seconds."""
    with av.open(str(video)) as c:
        last = None
        for f in c.decode(video=0):
            last = f
            if f.time is not None and f.time >= t:
                break
    if last is None:
        raise ValueError(f"{video} has no frames")
    return last.to_ndarray(format="bgr24")


def contact_sheet(bench: Path, subset: str = "test", columns: int = 4, width: int = 400) -> np.ndarray:
    """One tile per category found in `subset`: its first event's middle frame, the span drawn as a
    caption (category, video, seconds)."""
    gt = read_ground_truth(bench / "gt.json")
    chosen: dict[str, tuple[str, float, float]] = {}
    for video, entry in sorted(gt.items()):
        if entry["subset"] != subset:
            continue
        for seg in entry["segments"]:
            chosen.setdefault(seg.label, (video, seg.start, seg.end))
    if not chosen:
        raise ValueError(f"no {subset!r} events in {bench / 'gt.json'}")
    tiles = []
    for label, (video, start, end) in sorted(chosen.items()):
        img = frame_at(bench / "videos" / f"{video}.mp4", (start + end) / 2)
        img = cv2.resize(img, (width, round(img.shape[0] * width / img.shape[1])), interpolation=cv2.INTER_AREA)
        caption = f"{label}  {video}  {start:.1f}-{end:.1f} s"
        cv2.rectangle(img, (0, 0), (width, 26), (0, 0, 0), -1)
        cv2.putText(img, caption, (8, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(img)
    blank = np.zeros_like(tiles[0])
    rows = [np.hstack(tiles[i:i + columns] + [blank] * (columns - len(tiles[i:i + columns])))
            for i in range(0, len(tiles), columns)]
    return np.vstack(rows)


def main(argv: list[str] | None = None) -> int:
    p = Parser("python -m training.sheet", __doc__)
    p.add_argument("--bench", type=Path, default=Path("data/bench"), help="the benchmark folder (videos/, gt.json)")
    p.add_argument("--out", type=Path, default=Path("docs/benchmark.png"), help="the PNG to write")
    p.add_argument("--subset", default="test", help="the split whose events are shown")
    args = p.parse_args(argv)
    try:
        sheet = contact_sheet(args.bench, args.subset)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), sheet, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
