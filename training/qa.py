"""Chat that answers: the operators' questions about a benchmark split's windows, asked of a model
and scored against the answers the ground truth and the scene graphs give (training/data.py builds
them; training teaches a few per window of the train split, `data.chat` of the recipe).

    python -m training.qa --model models/hawkeye --features data/bench --gt data/bench/gt.json \\
        --subset test --out out/qa

Reported as Hawk reports its QA: exact match on counts and on yes/no questions (with 95 % Wilson
intervals, per question, and next to it what always answering "no" would score and the balanced
accuracy, the mean of the yes and the no answers' accuracy, where always "no" scores 50 %), and
BLEU-1..4 on the descriptions of what happened between two stream times (nltk's corpus BLEU,
lower-cased words). `--out` keeps every question, the truth and the answer (answers.json), and
the split's questions in Hawk's format (qa_<subset>.json: one record per window, its video named
`<video>/<start>_<end>.mp4` as Hawkeye's clips are).
"""
from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from engines.cli import Parser
from stream.llm.features import clips_of, collate
from stream.llm.prompts import CHAT, parse_answer
from training.data import Question, read_ground_truth, window_questions
from training.features import read_video, videos

_NUMBER = re.compile(r"-?\d+")
_WORD = re.compile(r"[a-z]+|\d+(?:\.\d+)?")


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion k / n."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (float(centre - half), float(centre + half))


def correct(q: Question, answer: str) -> bool:
    """Exact match: the same count, or the same yes / no."""
    if q.kind == "count":
        got, want = _NUMBER.search(answer), _NUMBER.search(q.answer)
        return bool(got and want and int(got.group()) == int(want.group()))
    return parse_answer(answer).anomalous == parse_answer(q.answer).anomalous


def bleu(references: list[str], hypotheses: list[str]) -> dict[str, float]:
    """BLEU-1..4 over the corpus (one reference each), lower-cased words and numbers."""
    from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu

    refs = [[_WORD.findall(r.lower())] for r in references]
    hyps = [_WORD.findall(h.lower()) for h in hypotheses]
    smooth = SmoothingFunction().method1
    weights = {1: (1.0,), 2: (0.5, 0.5), 3: (1 / 3,) * 3, 4: (0.25,) * 4}
    return {f"bleu{n}": float(corpus_bleu(refs, hyps, weights=w, smoothing_function=smooth)) if hyps else float("nan")
            for n, w in weights.items()}


def split_windows(features: Path, gt_path: Path, subset: str):
    """(video, SceneGraph, its questions) for every window of the split's videos."""
    gt = read_ground_truth(gt_path)
    have = set(videos(features))
    for v in sorted(name for name, e in gt.items() if e["subset"] == subset and name in have):
        for g in read_video(features, v).scene_graphs():
            yield v, g, window_questions(g, gt[v]["segments"])


def hawk_records(items) -> list[dict]:
    """Windows' questions in Hawk's format."""
    out = []
    for v, g, qs in items:
        describe = next(q for q in qs if q.kind == "describe")
        out.append({"video": f"{v}/{g.start:g}_{g.end:g}.mp4", "description": describe.answer.strip(),
                    "QA": [{"q": q.question, "a": q.answer.strip()} for q in qs if q.kind != "describe"]})
    return out


@torch.inference_mode()
def ask(model, items, max_new_tokens: int = 40, progress: bool = True) -> list[dict]:
    """Every question of every window asked of the model (greedy), one batch per window."""
    out = []
    for v, g, qs in tqdm(items, desc="asking", unit="window", disable=not progress, file=sys.stderr):
        clips = clips_of(g, model.cfg)
        if not clips:
            continue
        span = list(range(len(clips)))
        answers = model.generate([CHAT.format(question=q.question) for q in qs], collate(clips, model.cfg),
                                 [span] * len(qs), max_new_tokens=max_new_tokens)
        out += [{"video": v, "start": g.start, "end": g.end, "kind": q.kind, "question": q.question,
                 "truth": q.answer.strip(), "answer": a.strip()} for q, a in zip(qs, answers)]
    return out


def score(asked: list[dict]) -> dict:
    """Exact match per kind (and per yes/no question, with what always-no scores), BLEU on descriptions."""
    report: dict = {}
    for kind in ("count", "yes/no"):
        rows = [r for r in asked if r["kind"] == kind]
        hits = [correct(Question(r["question"], " " + r["truth"], kind), r["answer"]) for r in rows]
        report[kind] = {"n": len(rows), "exact": float(np.mean(hits)) if rows else float("nan"),
                        "ci": wilson(int(sum(hits)), len(rows))}
    yn = [r for r in asked if r["kind"] == "yes/no"]
    report["yes/no"]["always_no"] = float(np.mean([not r["truth"].startswith("Yes") for r in yn])) if yn else float("nan")
    recall = [np.mean([correct(Question(r["question"], " " + r["truth"], "yes/no"), r["answer"]) for r in rows])
              for rows in ([r for r in yn if r["truth"].startswith("Yes")], [r for r in yn if not r["truth"].startswith("Yes")])
              if rows]
    report["yes/no"]["balanced"] = float(np.mean(recall)) if len(recall) == 2 else float("nan")   # always "no" scores 0.5
    per = {}
    for q in sorted({r["question"] for r in yn}):
        rows = [r for r in yn if r["question"] == q]
        yes = [r for r in rows if r["truth"].startswith("Yes")]
        per[q] = {"n": len(rows), "exact": float(np.mean([correct(Question(q, " " + r["truth"], "yes/no"), r["answer"])
                                                           for r in rows])),
                  "yes": len(yes), "yes_found": float(np.mean([parse_answer(r["answer"]).anomalous is True for r in yes]))
                  if yes else float("nan")}
    report["per_question"] = per
    desc = [r for r in asked if r["kind"] == "describe"]
    report["describe"] = {"n": len(desc), **bleu([r["truth"] for r in desc], [r["answer"] for r in desc])}
    return report


def table(report: dict) -> str:
    c, y, d = report["count"], report["yes/no"], report["describe"]
    lines = ["| question kind | n | exact match % [95 % CI] | always \"no\" % | balanced accuracy % |",
             "|---|---:|---:|---:|---:|",
             f"| counts | {c['n']} | {100 * c['exact']:.1f} [{100 * c['ci'][0]:.1f}–{100 * c['ci'][1]:.1f}] | | |",
             f"| yes / no | {y['n']} | {100 * y['exact']:.1f} [{100 * y['ci'][0]:.1f}–{100 * y['ci'][1]:.1f}] | "
             f"{100 * y['always_no']:.1f} | {100 * y['balanced']:.1f} |", "",
             "| yes / no question | n | exact % | yes answers | of them answered yes % |", "|---|---:|---:|---:|---:|"]
    for q, r in report["per_question"].items():
        lines.append(f"| {q} | {r['n']} | {100 * r['exact']:.1f} | {r['yes']} | {100 * r['yes_found']:.1f} |")
    lines += ["", f"descriptions (n = {d['n']}): BLEU-1 {d['bleu1']:.3f}, BLEU-2 {d['bleu2']:.3f}, "
                  f"BLEU-3 {d['bleu3']:.3f}, BLEU-4 {d['bleu4']:.3f}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = Parser("python -m training.qa", __doc__)
    ap.add_argument("--model", type=Path, help="a model directory (without it: only write the split's questions)")
    ap.add_argument("--features", type=Path, default=Path("data/bench"), help="extracted features")
    ap.add_argument("--gt", type=Path, default=Path("data/bench/gt.json"), help="ground truth")
    ap.add_argument("--subset", default="test", help="the split asked about")
    ap.add_argument("--windows", type=int, default=200, help="windows asked about, drawn at random (0: all)")
    ap.add_argument("--seed", type=int, default=0, help="the draw of windows")
    ap.add_argument("--threads", type=int, default=None, help="torch threads")
    ap.add_argument("--out", type=Path, help="write qa_<subset>.json, answers.json and report.json here")
    args = ap.parse_args(argv)
    try:
        items = list(split_windows(args.features, args.gt, args.subset))
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not items:
        print(f"error: no {args.subset} videos with features under {args.features}", file=sys.stderr)
        return 2
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"qa_{args.subset}.json").write_text(json.dumps(hawk_records(items), indent=1) + "\n")
    if args.model is None:
        print(f"{len(items)} windows' questions written to {args.out}" if args.out else
              f"{len(items)} windows, {sum(len(q) for _, _, q in items)} questions")
        return 0
    from stream.llm.hawkeye import load_model
    if args.threads:
        torch.set_num_threads(args.threads)
    drawn = items if not args.windows or args.windows >= len(items) else \
        random.Random(args.seed).sample(items, args.windows)
    asked = ask(load_model(args.model, merge_lora=True), drawn)
    report = score(asked)
    print(f"chat on {len(drawn)} {args.subset} windows of {args.features}:\n{table(report)}")
    if args.out:
        (args.out / "answers.json").write_text(json.dumps(asked, indent=1) + "\n")
        (args.out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
