"""The real-clip set: public footage of real people, labelled here by looking at its frames, rebuilt
from a manifest and a folder of source checkouts into videos and ground truth that
`training.extract`, `training.train` and `training.evaluate` read like the synthetic benchmark's.

    python -m training.realset --sources /path/to/checkouts --out data/real      # rebuild
    python -m training.realset --summary                                           # what the set holds

The manifest (`training/real_clips.yaml`) names, for every clip, the public repository, commit and
path it comes from, the repository's licence, the trim, the labels (category and span in seconds of
the source file) and a one-line description; and, for every camera, its split (train / val / test),
so no camera is in two splits. No clip is committed to this repository: the set is rebuilt from the
sources. A source is found under `--sources` as `<owner>+<name>` (a git directory, or one with
`repo/` inside) or `<owner>/<name>` (a clone); the file is read at the manifest's commit, so the set
is the same whatever the checkout's branch.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from tqdm import tqdm

from engines.cli import Parser
from stream.llm.prompts import CATEGORIES

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "training" / "real_clips.yaml"
SPLITS = ("train", "val", "test")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Event(_Strict):
    category: str = Field(description="One of the model's anomaly categories.")
    start: float = Field(ge=0.0, description="Seconds of the source file.")
    end: float = Field(ge=0.0)

    @field_validator("category")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in CATEGORIES or v == "normal":
            raise ValueError(f"unknown category {v!r}; one of {', '.join(c for c in CATEGORIES if c != 'normal')}")
        return v

    @model_validator(mode="after")
    def _ordered(self) -> Event:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end:g}) must be after start ({self.start:g})")
        return self


class Clip(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    repo: str = Field(pattern=r"^[A-Za-z0-9][\w.-]*/[\w.-]+$", description="owner/name of the public repository.")
    commit: str = Field(pattern=r"^[0-9a-f]{40}$")
    path: str = Field(min_length=1, description="The file's path in the repository.")
    licence: str = Field(description="SPDX id of the repository's licence, or none.")
    origin: str = Field("unknown", description="Where the repository says the footage comes from.")
    camera: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="The physical camera view.")
    duration_s: float = Field(gt=0.0, description="The source file's length.")
    fps: float = Field(gt=0.0)
    size: tuple[int, int]
    trim: tuple[float, float] | None = Field(None, description="[start, end] seconds of the source kept.")
    view: str = "other"
    night: bool = False
    people: str | int = ""
    overlay: bool = False
    description: str = Field(min_length=1)
    events: list[Event] = []

    @model_validator(mode="after")
    def _inside(self) -> Clip:
        a, b = self.trim or (0.0, self.duration_s)
        if not 0.0 <= a < b or b > self.duration_s + 0.5:
            raise ValueError(f"trim [{a:g}, {b:g}] must lie inside the file (0 to {self.duration_s:g} s)")
        for e in self.events:
            if e.start < a - 1e-6 or e.end > b + 0.5:
                raise ValueError(f"event {e.category} [{e.start:g}, {e.end:g}] lies outside the kept part [{a:g}, {b:g}]")
        return self

    @property
    def kept(self) -> tuple[float, float]:
        return self.trim or (0.0, self.duration_s)

    @property
    def length_s(self) -> float:
        a, b = self.kept
        return b - a

    @property
    def label(self) -> str:
        """The clip's category: its first event's, or normal."""
        return self.events[0].category if self.events else "normal"


class Manifest(_Strict):
    cameras: dict[str, Literal["train", "val", "test"]] = Field(description="Each camera's split.")
    clips: list[Clip]

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        ids = Counter(c.id for c in self.clips)
        twice = [i for i, n in ids.items() if n > 1]
        if twice:
            raise ValueError(f"clip id {twice[0]!r} is used {ids[twice[0]]} times")
        missing = sorted({c.camera for c in self.clips} - set(self.cameras))
        if missing:
            raise ValueError(f"camera {missing[0]!r} (clip {next(c.id for c in self.clips if c.camera == missing[0])}) "
                             "has no split in `cameras`")
        return self

    def split_of(self, clip: Clip) -> str:
        return self.cameras[clip.camera]


class ManifestError(ValueError):
    """The manifest is malformed; the message names the file, the clip and the field."""


def read_manifest(path: Path = MANIFEST) -> Manifest:
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ManifestError(f"{path}: missing") from None
    except yaml.YAMLError as e:
        raise ManifestError(f"{path}: not valid YAML: {e}") from None
    try:
        return Manifest.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        loc = list(err["loc"])
        if len(loc) >= 2 and loc[0] == "clips" and isinstance(loc[1], int) and isinstance(raw, dict):
            clip = (raw.get("clips") or [None] * (loc[1] + 1))[loc[1]]
            name = clip.get("id") if isinstance(clip, dict) else None
            loc[1] = f"{loc[1]} ({name})" if name else loc[1]
        where = ".".join(str(p) for p in loc)
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        raise ManifestError(f"{path}: {where}: {msg}") from None


# -- rebuilding ----------------------------------------------------------------------------------
def git_dir(sources: Path, repo: str) -> Path:
    """The git directory of `repo` under `sources`: <owner>+<name>[/repo] (bare) or <owner>/<name> (a clone)."""
    owner, name = repo.split("/", 1)
    fetched = sources / f"{owner}+{name}"
    for cand in (fetched / "repo", fetched / "repo" / ".git", fetched, sources / owner / name / ".git", sources / owner / name):
        if (cand / "HEAD").is_file() and (cand / "objects").is_dir():
            return cand
    raise FileNotFoundError(f"{repo}: no checkout under {sources} (looked for {owner}+{name} and {owner}/{name})")


def read_source(sources: Path, clip: Clip) -> bytes:
    gd = git_dir(sources, clip.repo)
    done = subprocess.run(["git", "--git-dir", str(gd), "cat-file", "blob", f"{clip.commit}:{clip.path}"],
                          capture_output=True)
    if done.returncode:
        raise FileNotFoundError(f"{clip.id}: {clip.repo}@{clip.commit[:10]}:{clip.path} cannot be read from {gd}: "
                                f"{done.stderr.decode(errors='replace').strip()[:200]}")
    if done.stdout.startswith(b"version https://git-lfs"):
        raise FileNotFoundError(f"{clip.id}: {clip.repo}:{clip.path} is a Git LFS pointer, not the video")
    return done.stdout


def write_clip(data: bytes, clip: Clip, out: Path) -> None:
    """The kept part of the source as H.264 MP4 at the source's frame rate (ffmpeg re-encodes, so the
    cut falls on the exact frame whatever the source's key frames)."""
    a, b = clip.kept
    with tempfile.NamedTemporaryFile(suffix=Path(clip.path).suffix or ".bin") as src:
        src.write(data)
        src.flush()
        cmd = ["ffmpeg", "-v", "error", "-y", "-i", src.name, "-ss", f"{a:.3f}", "-t", f"{b - a:.3f}", "-an",
               "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
               "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", str(out)]
        done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{clip.id}: ffmpeg could not cut it: {done.stderr.strip()[-300:]}")


def ground_truth(manifest: Manifest, clips: list[Clip] | None = None) -> dict:
    """ActivityNet-style ground truth (training/data.py reads it): each clip a video, its split the
    camera's, its events shifted to the kept part's seconds."""
    db = {}
    for c in clips if clips is not None else manifest.clips:
        a, b = c.kept
        db[c.id] = {"subset": manifest.split_of(c), "duration": round(b - a, 3), "camera": c.camera,
                    "annotations": [{"segment": [round(max(e.start - a, 0.0), 3), round(min(e.end, b) - a, 3)],
                                     "label": e.category} for e in c.events]}
    return {"version": "hawkwatch-real-1", "database": db}


def rebuild(manifest: Manifest, sources: Path, out: Path, *, only: set[str] | None = None,
            progress: bool = True) -> dict[str, str]:
    """Every clip (or those in `only`) into out/videos/<id>.mp4 and out/gt.json; a clip already there
    is kept. Returns {clip id: why it could not be rebuilt} for the clips whose source is missing."""
    (out / "videos").mkdir(parents=True, exist_ok=True)
    failed, built = {}, []
    todo = [c for c in manifest.clips if only is None or c.id in only]
    for clip in tqdm(todo, desc="rebuilding the real set", unit="clip", disable=not progress, file=sys.stderr):
        target = out / "videos" / f"{clip.id}.mp4"
        try:
            if not target.exists():
                part = target.with_suffix(".part.mp4")
                write_clip(read_source(sources, clip), clip, part)
                part.rename(target)
            built.append(clip)
        except (FileNotFoundError, RuntimeError) as e:
            failed[clip.id] = str(e)
    (out / "gt.json").write_text(json.dumps(ground_truth(manifest, built), indent=1) + "\n")
    return failed


# -- what the set holds --------------------------------------------------------------------------
def summary(manifest: Manifest) -> str:
    """Clips, cameras and minutes per category and split, and the licences."""
    rows: dict[tuple[str, str], list[Clip]] = defaultdict(list)
    for c in manifest.clips:
        for cat in {e.category for e in c.events} or {"normal"}:
            rows[(cat, manifest.split_of(c))].append(c)
    cats = sorted({k[0] for k in rows}, key=lambda c: (c == "normal", c))
    lines = ["| category | " + " | ".join(f"{s}: clips / cameras / min" for s in SPLITS) + " | all |",
             "|---|" + "---|" * (len(SPLITS) + 1)]
    for cat in cats:
        cells = []
        for s in (*SPLITS, None):
            cs = [c for (k, sp), v in rows.items() if k == cat and (s is None or sp == s) for c in v]
            cells.append(f"{len(cs)} / {len({c.camera for c in cs})} / {sum(c.length_s for c in cs) / 60:.1f}")
        lines.append(f"| {cat} | " + " | ".join(cells) + " |")
    lic = Counter(c.licence for c in manifest.clips)
    lines.append("")
    lines.append(f"{len(manifest.clips)} clips from {len({c.camera for c in manifest.clips})} cameras in "
                 f"{len({c.repo for c in manifest.clips})} repositories, {sum(c.length_s for c in manifest.clips) / 60:.1f} min; "
                 "licences: " + ", ".join(f"{k} {v}" for k, v in lic.most_common()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = Parser("python -m training.realset", __doc__)
    ap.add_argument("--manifest", type=Path, default=MANIFEST, help="the clips and their labels")
    ap.add_argument("--sources", type=Path, help="the folder of source checkouts")
    ap.add_argument("--out", type=Path, default=Path("data/real"), help="where videos/ and gt.json go")
    ap.add_argument("--summary", action="store_true", help="print what the set holds and exit")
    args = ap.parse_args(argv)
    try:
        manifest = read_manifest(args.manifest)
    except ManifestError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.summary:
        print(summary(manifest))
        return 0
    if args.sources is None or not args.sources.is_dir():
        print(f"error: --sources: {args.sources} is not a folder of source checkouts", file=sys.stderr)
        return 2
    failed = rebuild(manifest, args.sources, args.out)
    for cid, why in failed.items():
        print(f"missing: {why}", file=sys.stderr)
    print(f"{len(manifest.clips) - len(failed)} of {len(manifest.clips)} clips in {args.out}/videos, "
          f"ground truth in {args.out}/gt.json")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
