"""Datasets: Hawkeye's and Hawk's annotation files, and the question/answer samples training
reads from features (training/features.py) and ground truth.

Formats read:

    ground truth (Hawkeye, ActivityNet style)
        {"database": {video: {"subset": "train"|"val"|"test", "annotations": [{"segment": [s, e], "label": str}]}}}
    conversation records (Hawkeye)
        [{"path": "<video>/<s>_<e>.mp4" or "<video>.mp4", "label": str,
          "conversations": [{"from": "human", "value": "<video>\\n..."}, {"from": "gpt", "value": "..."}, ...]}]
    Hawk
        [{"video": str, "description": str, "QA": [{"q": str, "a": str}, ...]}]

Every reader checks the structure and names the file, the entry and what was expected.
"""
from __future__ import annotations

import json
import random
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stream.llm.features import Clip, clips_of
from stream.llm.hawkeye import VIDEO_TOKEN, HawkeyeConfig
from stream.llm.prompts import (CATEGORIES, CATEGORY, CHAT, COUNT_QUESTION, DESCRIBE_QUESTION, DISCOVERY, EXPLAIN,
                                GROUNDING, PLACES, YES_NO_QUESTIONS, answer_category, answer_count, answer_described,
                                answer_explanation, answer_span, answer_yes_no, answer_yes_no_chat)
from stream.types import SceneGraph


class DataError(ValueError):
    """An annotation file is missing or malformed; the message names the file and the entry."""


def _read_json(path: Path):
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: missing")
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise DataError(f"{path}: not JSON ({e})") from None


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    label: str


def read_ground_truth(path: Path) -> dict[str, dict]:
    """video -> {"subset", "duration" (if given), "segments": [Segment]}."""
    raw = _read_json(path)
    db = raw.get("database") if isinstance(raw, dict) else None
    if not isinstance(db, dict):
        raise DataError(f"{path}: expected {{\"database\": {{video: {{\"subset\", \"annotations\"}}}}}}")
    out = {}
    for video, entry in db.items():
        where = f"{path}: database[{video!r}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("annotations", []), list):
            raise DataError(f"{where}: expected an object with an \"annotations\" list")
        segs = []
        for k, a in enumerate(entry.get("annotations", [])):
            seg = a.get("segment") if isinstance(a, dict) else None
            if (not isinstance(seg, (list, tuple)) or len(seg) != 2
                    or not all(isinstance(v, (int, float)) and np.isfinite(v) for v in seg) or seg[1] < seg[0]):
                raise DataError(f"{where}.annotations[{k}]: \"segment\" must be [start, end] seconds with start <= end")
            label = a.get("label")
            if not isinstance(label, str) or not label:
                raise DataError(f"{where}.annotations[{k}]: \"label\" must be a non-empty string")
            segs.append(Segment(float(seg[0]), float(seg[1]), label.lower()))
        subset = entry.get("subset", "test")
        if not isinstance(subset, str):
            raise DataError(f"{where}: \"subset\" must be a string")
        out[video] = {"subset": subset, "duration": entry.get("duration"), "segments": segs}
    return out


def _records(path: Path, fields: str, key: str):
    """A JSON list of objects, each with a string `key` -> (where, record) pairs for further checks."""
    raw = _read_json(path)
    if not isinstance(raw, list):
        raise DataError(f"{path}: expected a list of {{{fields}}} records")
    for k, r in enumerate(raw):
        if not isinstance(r, dict) or not isinstance(r.get(key), str):
            raise DataError(f"{path}: record {k}: needs a \"{key}\" string")
        yield f"{path}: record {k}", r


def read_conversations(path: Path) -> list[dict]:
    """Hawkeye's conversation records, checked: [{path, label, conversations: [{from, value}]}]."""
    raw = []
    for where, r in _records(path, "path, label, conversations", "path"):
        raw.append(r)
        conv = r.get("conversations")
        if not isinstance(conv, list) or len(conv) < 2 or len(conv) % 2:
            raise DataError(f"{where}: \"conversations\" must be a list of human/gpt turns in pairs")
        for j, turn in enumerate(conv):
            want = "human" if j % 2 == 0 else "gpt"
            if not isinstance(turn, dict) or turn.get("from") != want or not isinstance(turn.get("value"), str):
                raise DataError(f"{where}: turn {j} must be {{\"from\": \"{want}\", \"value\": str}}")
    return raw


def read_hawk(path: Path) -> list[dict]:
    """Hawk's annotations, checked: [{video, description, QA: [{q, a}]}]."""
    raw = []
    for where, r in _records(path, "video, description, QA", "video"):
        raw.append(r)
        if not isinstance(r.get("description", ""), str):
            raise DataError(f"{where}: \"description\" must be a string")
        qa = r.get("QA", [])
        if not isinstance(qa, list) or not all(isinstance(x, dict) and isinstance(x.get("q"), str)
                                               and isinstance(x.get("a"), str) for x in qa):
            raise DataError(f"{where}: \"QA\" must be a list of {{\"q\": str, \"a\": str}}")
    return raw


# -- labels per second ---------------------------------------------------------------------------
def second_label(segments: list[Segment], start: float, end: float, min_share: float = 0.5) -> str:
    """The category a second [start, end) is labelled with: the segment covering most of it, if
    it covers at least `min_share` of it; else normal."""
    best, label = 0.0, "normal"
    for s in segments:
        overlap = min(end, s.end) - max(start, s.start)
        if overlap > best:
            best, label = overlap, s.label
    return label if best >= min_share * (end - start) else "normal"


# -- training samples ----------------------------------------------------------------------------
@dataclass
class WindowSample:
    """A window's clips and the questions asked about them: (prompt, answer, clip indices)."""
    video: str
    clips: list[Clip]
    qa: list[tuple[str, str, list[int]]]
    anomalous: bool
    category: str = "normal"     # the category most of its anomalous seconds have (class-balanced sampling)


def window_samples(video: str, graphs: list[SceneGraph], segments: list[Segment], cfg: HawkeyeConfig,
                   explain: bool = True, chat: bool = False) -> list[WindowSample]:
    """Hawkeye's tasks on each window of a video: discovery and category per second (what the
    stream scores), for anomalous windows the grounding and the explanation, and with `chat` a
    few of the operators' questions (`taught`)."""
    out = []
    for g in graphs:
        clips = clips_of(g, cfg)
        if not clips:
            continue
        labels = [second_label(segments, c.start, c.end) for c in clips]
        qa = [(DISCOVERY, answer_yes_no(lab != "normal"), [i]) for i, lab in enumerate(labels)]
        qa += [(CATEGORY, answer_category(lab), [i]) for i, lab in enumerate(labels)]
        everything = list(range(len(clips)))
        bad = [lab for lab in labels if lab != "normal"]
        category = max(sorted(set(bad)), key=bad.count) if bad else "normal"
        if bad:
            first = next(i for i, lab in enumerate(labels) if lab != "normal")
            last = max(i for i, lab in enumerate(labels) if lab != "normal")
            s, e = clips[first].start - g.start, clips[last].end - g.start
            qa.append((GROUNDING.format(seconds=f"{g.end - g.start:g}"), answer_span(s, e), everything))
            if explain:
                qa.append((EXPLAIN, answer_explanation(category, s, e), everything))
        if chat:
            rng = random.Random(zlib.crc32(f"{video}/{g.window_id}".encode()))
            qa += [(CHAT.format(question=q.question), q.answer, everything) for q in taught(window_questions(g, segments), rng)]
        out.append(WindowSample(video, clips, qa, bool(bad), category))
    return out


# -- the operators' questions -------------------------------------------------------------------
@dataclass(frozen=True)
class Question:
    question: str
    answer: str
    kind: str          # "count" | "yes/no" | "describe"


def people_count(g: SceneGraph) -> int:
    """How many people the scene stage sees in the window: the median over its frames."""
    if not len(g.timestamps):
        return 0
    per_frame = np.sum([t.present for t in g.tracks], axis=0) if g.tracks else np.zeros(len(g.timestamps))
    return int(np.floor(np.median(per_frame) + 0.5))


def place_of_left_object(g: SceneGraph) -> str | None:
    """Where in the view the window's last left object lies (left / middle / right third), if any."""
    for objects in reversed(g.objects):
        if len(objects):
            x = (objects[0, 0] + objects[0, 2]) / 2 / max(g.frame_size[0], 1)
            return PLACES[min(int(x * 3), 2)]
    return None


def window_questions(g: SceneGraph, segments: list[Segment], min_overlap_s: float = 0.5) -> list[Question]:
    """Every operator question about a window with the answer its truth gives: the count (what
    the scene stage sees), yes/no per kind of event (events overlapping the window by at least
    `min_overlap_s`; a bag left is placed in the view), and what happened in it, in stream seconds."""
    inside = [s for s in segments if min(s.end, g.end) - max(s.start, g.start) >= min_overlap_s]
    labels = {s.label for s in inside}
    out = [Question(COUNT_QUESTION, answer_count(people_count(g)), "count")]
    for q, cats in YES_NO_QUESTIONS.items():
        yes = bool(labels & set(cats))
        where = place_of_left_object(g) if yes and "abandoned" in cats else None
        out.append(Question(q, answer_yes_no_chat(yes, where), "yes/no"))
    events = [(s.label, round(max(s.start, g.start)), round(min(s.end, g.end))) for s in sorted(inside, key=lambda s: s.start)
              if s.label in CATEGORIES]
    t1, t2 = round(g.start, 1), round(g.end, 1)
    out.append(Question(DESCRIBE_QUESTION.format(t1=t1, t2=t2), answer_described(events), "describe"))
    return out


def taught(questions: list[Question], rng: random.Random) -> list[Question]:
    """The few questions training asks about a window: one yes/no whose answer is yes (when there
    is one) and one whose answer is no, the count and the description half the time each."""
    yes = [q for q in questions if q.kind == "yes/no" and q.answer.startswith(" Yes")]
    no = [q for q in questions if q.kind == "yes/no" and not q.answer.startswith(" Yes")]
    out = [rng.choice(group) for group in (yes, no) if group]
    out += [q for q in questions if q.kind in ("count", "describe") and rng.random() < 0.5]
    return out


_CLIP_PATH = re.compile(r"(?:^|/)([^/]+)/(\d+(?:\.\d+)?)_(\d+(?:\.\d+)?)\.\w+$")


def conversation_samples(records: list[dict], graphs_of: dict[str, list[SceneGraph]], cfg: HawkeyeConfig,
                         source: str = "conversations") -> list[WindowSample]:
    """Hawkeye's conversation records as samples: a record's path names the video (and a clip
    <video>/<s>_<e>.mp4 its seconds); every human turn is asked with the video's tokens."""
    out = []
    for k, r in enumerate(records):
        m = _CLIP_PATH.search(r["path"])
        video = m.group(1) if m else Path(r["path"]).stem
        if video not in graphs_of:
            raise DataError(f"{source}: record {k} names video {video!r}, which has no features")
        span = (float(m.group(2)), float(m.group(3))) if m else None
        clips = [c for g in graphs_of[video] for c in clips_of(g, cfg)
                 if span is None or (c.start >= span[0] - 1e-6 and c.end <= span[1] + 1e-6)]
        clips = list({c.start: c for c in clips}.values())      # overlapping windows repeat seconds
        if not clips:
            raise DataError(f"{source}: record {k}: no features in {span} of {video!r}")
        turns = r["conversations"]
        qa = []
        for q, a in zip(turns[::2], turns[1::2]):
            question = q["value"].replace(VIDEO_TOKEN, "").strip()
            qa.append((CHAT.format(question=question), " " + a["value"].strip(), list(range(len(clips)))))
        out.append(WindowSample(video, clips, qa, str(r.get("label", "normal")).lower() != "normal"))
    return out


def hawk_samples(records: list[dict], graphs_of: dict[str, list[SceneGraph]], cfg: HawkeyeConfig,
                 source: str = "hawk") -> list[WindowSample]:
    """Hawk's records as samples: its description answers the explanation prompt, its QA pairs
    are chat turns, over the video's seconds."""
    out = []
    for k, r in enumerate(records):
        video = Path(r["video"]).stem
        if video not in graphs_of:
            raise DataError(f"{source}: record {k} names video {video!r}, which has no features")
        clips = list({c.start: c for g in graphs_of[video] for c in clips_of(g, cfg)}.values())
        everything = list(range(len(clips)))
        qa = [(EXPLAIN, " " + r["description"].strip(), everything)] if r.get("description") else []
        qa += [(CHAT.format(question=x["q"].strip()), " " + x["a"].strip(), everything) for x in r.get("QA", [])]
        if qa:
            out.append(WindowSample(video, clips, qa, True))
    return out


def category_counts(samples: list[WindowSample]) -> dict[str, int]:
    """Windows per category (a window's category: most of its anomalous seconds')."""
    counts = dict.fromkeys(CATEGORIES, 0)
    for s in samples:
        counts[s.category] = counts.get(s.category, 0) + 1
    return counts
