"""How much a trained model's representations can tell, whatever reads them: linear probes fitted
on one split's seconds and scored on another's.

    python -m training.probe --model models/hawkeye --features data/real --features data/bench \
        [--train train --eval val test]

Every distinct second is read as the detector reads it, and four representations are probed:
- `cues`: the 14 hand-read cues of training/cues.py (what the scene graph says outright);
- `embedding`: the scene embedding (the mean of the video tokens the LM reads; the category head's input);
- `LM state`: the LM's last hidden state after the category prompt (what its answer is read from);
- `LM answers`: the log-probabilities of its own answers (P(" Yes") and the category words).
For each, a class-balanced multinomial logistic regression (scikit-learn) is fitted on the train
split's seconds of every feature set given, and scored on each set's eval splits: the per-second ROC-AUC
of anomalous against normal (1 - P(normal)), and how often it names an anomalous second's category
(balanced over the categories present; falls and fights apart). The LM's own reading, as the
detector scores it (P(" Yes"), the category prompt's most likely category), is the first row.
A representation no probe reads an anomaly from is one the model cannot be calibrated into finding.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from engines.cli import Parser
from stream.llm.features import collate
from stream.llm.hawkeye import HawkeyeModel, load_model
from stream.llm.prompts import CATEGORY, DISCOVERY, answer_category
from training.cues import cues, distinct_clips
from training.data import read_ground_truth, second_label
from training.features import read_video
from training.metrics import roc_auc

KINDS = ("cues", "embedding", "LM state", "LM answers")
C = 0.03             # the probes' inverse L2 strength (standardised inputs)


@torch.inference_mode()
def read_seconds(model: HawkeyeModel, features: Path, subsets: set[str], progress: bool = True) -> dict:
    """Every distinct second of the subsets' videos -> {"label", "subset": (N,), "yes": (N,), "asked":
    (N, C) the category prompt's distribution, kind: (N, D) for each of KINDS}."""
    gt = read_ground_truth(features / "gt.json")
    cfg, cats = model.cfg, list(model.cfg.categories)
    ids = [model.first_token(answer_category(c)) for c in cats]
    yes_id = model.first_token(cfg.answer_yes)
    rows: dict[str, list] = {k: [] for k in ("label", "subset", "yes", "asked", "cues", "embedding", "LM state")}
    names = [v for v, e in gt.items() if e["subset"] in subsets]
    for v in tqdm(names, desc=f"reading {features}", unit="video", disable=not progress, file=sys.stderr):
        clips = distinct_clips(read_video(features, v).scene_graphs(), cfg)
        for i in range(0, len(clips), 16):
            part = clips[i:i + 16]
            n = len(part)
            b = collate(part, cfg)
            encoded = model.encoder(b)
            states = []
            for prompt in (DISCOVERY, CATEGORY):
                embeds, mask, _ = model.embed([prompt] * n, b, [[j] for j in range(n)], encoded=encoded)
                out = model.lm(inputs_embeds=embeds, attention_mask=mask, output_hidden_states=True)
                states.append((out.hidden_states[-1][:, -1].float(), out.logits[:, -1].float().softmax(-1)))
            rows["embedding"].append(model.scene_embeddings(encoded).numpy())
            rows["LM state"].append(states[1][0].numpy())
            rows["yes"].append(states[0][1][:, yes_id].numpy())
            rows["asked"].append(states[1][1][:, ids].numpy())
            rows["cues"].append(np.array([cues(c) for c in part]))
            rows["label"] += [second_label(gt[v]["segments"], c.start, c.end) for c in part]
            rows["subset"] += [gt[v]["subset"]] * n
    out = {k: np.concatenate(x) if k not in ("label", "subset") else np.array(x) for k, x in rows.items() if len(x)}
    out["LM answers"] = np.log(np.c_[out["yes"], out["asked"]] + 1e-6)
    out["set"] = np.full(len(out["label"]), features.name)
    return out


def naming(labels: np.ndarray, named: np.ndarray) -> dict[str, float]:
    """On anomalous seconds: the share named right, balanced over the categories present, and for falls and fights."""
    keep = labels != "normal"
    present = sorted(set(labels[keep]))
    out = {"balanced": float(np.mean([(named[labels == c] == c).mean() for c in present])) if present else float("nan")}
    for c in ("fall", "scuffle"):
        out[c] = float((named[labels == c] == c).mean()) if (labels == c).any() else float("nan")
    return out


def probe(seconds: dict, train: str, evals: list[str], categories: list[str]) -> list[dict]:
    """One row per (representation, feature set and eval split): AUC and naming."""
    from sklearn.linear_model import LogisticRegression

    fit_on = seconds["subset"] == train
    anomalous = [c for c in categories if c != "normal"]
    rows = []
    splits = [(f"{name} {split}", (seconds["set"] == name) & (seconds["subset"] == split))
              for name in dict.fromkeys(seconds["set"]) for split in evals]
    splits = [(split, sel) for split, sel in splits if len(set(seconds["label"][sel])) > 1]
    for split, sel in splits:
        labels = seconds["label"][sel]
        asked = seconds["asked"][sel][:, [categories.index(c) for c in anomalous]]
        rows.append({"representation": "the LM itself", "split": split,
                     "auc": roc_auc(labels != "normal", seconds["yes"][sel]),
                     **naming(labels, np.array(anomalous)[asked.argmax(1)])})
    for kind in KINDS:
        x = seconds[kind]
        mean, scale = x[fit_on].mean(0), x[fit_on].std(0) + 1e-6
        fit = LogisticRegression(C=C, max_iter=3000, class_weight="balanced").fit((x[fit_on] - mean) / scale,
                                                                                 seconds["label"][fit_on])
        classes = list(fit.classes_)
        for split, sel in splits:
            p = fit.predict_proba((x[sel] - mean) / scale)
            normal = p[:, classes.index("normal")].copy() if "normal" in classes else np.zeros(len(p))
            p[:, [i for i, c in enumerate(classes) if c == "normal"]] = -1.0
            rows.append({"representation": kind, "split": split, "auc": roc_auc(seconds["label"][sel] != "normal", 1 - normal),
                         **naming(seconds["label"][sel], np.array(classes)[p.argmax(1)])})
    return rows


def render(rows: list[dict], counts: dict[str, dict[str, int]]) -> str:
    lines = ["| representation | split | per-second AUC | names anomalous seconds (balanced) | falls named | fights named |",
             "|---|---|---|---|---|---|"]
    pct = lambda v: "n/a" if v != v else f"{100 * v:.0f}"    # noqa: E731
    for r in rows:
        lines.append(f"| {r['representation']} | {r['split']} | {pct(r['auc'])} | {pct(r['balanced'])} | "
                     f"{pct(r['fall'])} | {pct(r['scuffle'])} |")
    seconds = "; ".join(f"{s}: {c.get('normal', 0)} normal, {sum(v for k, v in c.items() if k != 'normal')} anomalous"
                        for s, c in counts.items())
    return "\n".join(lines) + f"\n\n(seconds: {seconds})"


def main(argv: list[str] | None = None) -> int:
    p = Parser("python -m training.probe", __doc__)
    p.add_argument("--model", type=Path, default=Path("models/hawkeye"), help="a Hawkeye model directory")
    p.add_argument("--features", type=Path, action="append", required=True,
                   help="a features folder with gt.json (repeatable: probes fit on all their train seconds)")
    p.add_argument("--train", default="train", help="the split the probes are fitted on")
    p.add_argument("--eval", nargs="+", default=["val", "test"], help="the splits they are scored on")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for the model")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        model = load_model(args.model)
        parts = [read_seconds(model, f, {args.train, *args.eval}) for f in args.features]
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    seconds = {k: np.concatenate([s[k] for s in parts]) for k in parts[0]}
    counts = {f"{n} {s}": {c: int(((seconds["set"] == n) & (seconds["subset"] == s) & (seconds["label"] == c)).sum())
                           for c in set(seconds["label"])} for n in dict.fromkeys(seconds["set"]) for s in [args.train, *args.eval]}
    if not (seconds["subset"] == args.train).any() or len(set(seconds["label"][seconds["subset"] == args.train])) < 2:
        print(f"error: the {args.train} split needs seconds of at least two labels", file=sys.stderr)
        return 2
    print(render(probe(seconds, args.train, args.eval, list(model.cfg.categories)), counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
