"""Hawkeye's LoRA fine-tuning: `python -m training.train --config configs/train/<recipe>.yaml`.

LoRA adapters (peft) on the LM; the graph encoders, the MoE router and the projector trained fully,
as in Hawkeye. Loss = LM loss on the answers + λ·L_bc. Each step takes `batch_windows` windows
(positive windows drawn to `positive_share`) and asks their questions (training/data.py):
discovery for every second, the category of every window, and grounding and an explanation for
anomalous windows. AdamW, linear warm-up then cosine decay, gradient clipping; bf16 autocast
where the GPU has it. A checkpoint every `checkpoint_every` steps (`--resume` continues from the
last one, exactly); a progress bar with the running loss. The output is a model directory the
pipeline loads by path (`detector.hawkeye.model`), with the LoRA adapters in lora/.

The embedded LM starts untrained, so its recipe first teaches it the project's language
(`lm_pretrain_steps`, full training on the prompt and answer corpus), then fine-tunes as above:
the stand-in for the pre-trained LLM that Hawkeye adapts. A recipe naming `model.lm` (a local
Hugging Face checkpoint such as a Vicuna) skips that. Between the two, `encoder_warmup_epochs`
aligns the scene encoder alone on the per-second labels (as Hawk and LLaVA-style models align
their visual side before the joint stage): the embedded recipe needs it, see `warm_up_encoder`.
"""
from __future__ import annotations

import dataclasses
import json
import math
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from tqdm import tqdm

from engines.cli import Parser, set_dotted
from stream.llm.features import collate
from stream.llm.hawkeye import CategoryHead, HawkeyeConfig, HawkeyeModel, add_lora, load_model, resolve_device
from stream.llm.lm import new_model
from stream.scene.appearance import DIM
from stream.llm.prompts import CATEGORIES, CATEGORY, DISCOVERY, answer_category, corpus
from training.data import (WindowSample, category_counts, conversation_samples, hawk_samples, read_conversations,
                           read_ground_truth, read_hawk, window_samples)
from training.features import has_appearance, read_video, videos


# -- the recipe ----------------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceRecipe(_Strict):
    features: Path = Field(description="Root of the extracted features (meta/, pose_feat/, ...).")
    ground_truth: Path = Field(description="ActivityNet-style ground truth (gt.json).")
    repeat: int = Field(1, ge=1, le=100, description="Train on its windows this many times an epoch (a small "
                                                      "real set beside a large synthetic one).")


class DataRecipe(_Strict):
    features: Path = Field(description="Root of the extracted features (meta/, pose_feat/, ...).")
    ground_truth: Path = Field(description="ActivityNet-style ground truth (gt.json).")
    also: list[SourceRecipe] = Field([], description="More data sets trained, validated and calibrated on together "
                                                     "with this one, split by split (e.g. the real-clip set).")
    train_subset: str = "train"
    val_subset: str | None = "val"
    conversations: Path | None = Field(None, description="Hawkeye conversation records to train on as well.")
    hawk: Path | None = Field(None, description="Hawk annotations to train on as well.")
    explain: bool = Field(True, description="Teach the explanation answers of anomalous windows.")
    chat: bool = Field(True, description="Teach answers to operators' questions (counts, yes/no, what happened "
                                         "when) from the ground truth and the scene graphs, a few per window.")


class LoraRecipe(_Strict):
    r: int = Field(16, ge=1, le=1024)
    alpha: int = Field(64, ge=1, le=4096)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    targets: str | list[str] = "all-linear"


class ModelRecipe(_Strict):
    init: Path | None = Field(None, description="Start from this model directory instead of a new model.")
    lm: Path | None = Field(None, description="A local Hugging Face checkpoint for the LM (else the embedded one).")
    dim: int = Field(128, ge=16, le=4096)
    max_people: int = Field(5, ge=1, le=64, description="Skeletons a clip keeps (Hawkeye: 5), most present first.")
    max_triples: int = Field(16, ge=1, le=256, description="Relation triples a frame keeps, strongest first.")
    appearance: Literal["thumbnails", "crops", "crops+frame"] = Field(
        "thumbnails", description="What the appearance expert reads: 64x48 thumbnails through a small conv net "
                                  "learnt here; with crops, also EfficientNet-Lite0's features of each person's crop; "
                                  "with crops+frame, of the whole frame too (app_feat/: extract with a config that "
                                  "has models.appearance).")
    experts: list[Literal["appearance", "motion", "action", "kinematic", "relation"]] = [
        "appearance", "motion", "action", "kinematic", "relation"]
    router: Literal["softmax", "mean"] = "softmax"
    balance_weight: float = Field(0.2, ge=0.0, le=100.0, description="λ of L_bc (0: no balancing loss).")
    lora: LoraRecipe = LoraRecipe()
    lm_pretrain_steps: int = Field(0, ge=0, le=1_000_000,
                                   description="Full training of an untrained LM on the prompt/answer corpus first.")
    lm_pretrain_lr: float = Field(5e-4, gt=0.0, le=1.0,
                                  description="Its learning rate. Too high and the LM's attention locks onto the text "
                                              "(video positions get ~1e-9 of it) and fine-tuning cannot teach it to look.")
    encoder_warmup_epochs: float = Field(0.0, ge=0.0, le=1000.0, description=(
        "Align the scene encoder first: train it alone on every training second's discovery label "
        "(a linear probe on its tokens, binary cross-entropy), then fine-tune everything through the LM."))


class CalibrationRecipe(_Strict):
    normal_seconds_over: float | None = Field(0.02, gt=0.0, lt=1.0, description=(
        "At most this share of val's normal seconds may score over the discovery threshold: the best-F2 threshold "
        "is raised until it holds (F2 alone weighs a miss four times a false alarm, and alarms on everything). "
        "null: best F2 alone."))
    joint: bool = Field(False, description=(
        "Hold normal_seconds_over for the detector's score, the highest of discovery and every category with a "
        "threshold of its own, rather than for each threshold alone (which lets several times the share through "
        "together)."))
    category_head: bool = Field(False, description=(
        "Fit the category head after training: which anomaly a second is, read from its scene embedding by a "
        "logistic regression on the train split's anomalous seconds, kept where it names val's better than the "
        "LM's category prompt. false: the prompt names categories (and a model's head, if it has one, is kept)."))


class OptimRecipe(_Strict):
    lr: float = Field(2e-5, gt=0.0, le=1.0, description="Peak learning rate (Hawkeye: 2e-5).")
    encoder_lr: float | None = Field(None, gt=0.0, le=1.0, description="For the encoders, MoE and projector (default: lr).")
    weight_decay: float = Field(0.0, ge=0.0, le=1.0)
    warmup_ratio: float = Field(0.03, ge=0.0, le=0.5)
    epochs: float = Field(3.0, gt=0.0, le=10_000.0)
    batch_windows: int = Field(8, ge=1, le=4096)
    positive_share: float | None = Field(0.5, ge=0.0, le=1.0, description="Share of anomalous windows drawn (null: as they come).")
    class_balanced: bool = Field(True, description="Draw the anomalous windows of every category equally often "
                                                   "(the rarer repeated); with positive_share set.")
    grad_clip: float = Field(1.0, gt=0.0)
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="auto: bf16 autocast on a GPU that has it.")


class Recipe(_Strict):
    data: DataRecipe
    model: ModelRecipe = ModelRecipe()
    optim: OptimRecipe = OptimRecipe()
    calibration: CalibrationRecipe = CalibrationRecipe()
    out: Path = Field(description="The model directory to write.")
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(None, ge=1, le=256)
    checkpoint_every: int = Field(200, ge=1)

    @model_validator(mode="after")
    def _lm_or_pretrain(self) -> Recipe:
        if self.model.lm is not None and self.model.lm_pretrain_steps:
            raise ValueError("model.lm_pretrain_steps is for the embedded LM; a checkpoint named in model.lm is already trained")
        return self


def load_recipe(path: Path, overrides: dict | None = None) -> Recipe:
    """A recipe file; relative paths are relative to the project root (where the README's commands run)."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: no such recipe") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a recipe is a mapping")
    for key, value in (overrides or {}).items():      # dotted keys: optim.epochs=0.1
        set_dotted(raw, key, value)
    try:
        return Recipe.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        raise ValueError(f"{path}: {where}: {msg}") from None


# -- data ----------------------------------------------------------------------------------------
def load_samples(recipe: Recipe, cfg: HawkeyeConfig, subset: str, progress: bool = True) -> list[WindowSample]:
    """The `subset` windows of every data set the recipe names (each `also` set's train windows
    repeated as it says)."""
    d = recipe.data
    out, graphs_of = [], {}
    for src in [SourceRecipe(features=d.features, ground_truth=d.ground_truth), *d.also]:
        gt = read_ground_truth(src.ground_truth)
        have = set(videos(src.features))
        names = [v for v, e in gt.items() if e["subset"] == subset]
        missing = [v for v in names if v not in have]
        if missing:
            raise ValueError(f"{len(missing)} {subset} videos have no features under {src.features} (e.g. {missing[0]}); "
                             "run `python -m training.extract`")
        if cfg.appearance_dim:
            lacking = [v for v in names if not has_appearance(src.features, v)]
            if lacking:
                raise ValueError(f"model.appearance is {recipe.model.appearance}, but {len(lacking)} {subset} videos under "
                                 f"{src.features} have no app_feat (e.g. {lacking[0]}); run `python -m training.extract "
                                 "--config` with a config that has models.appearance")
        for v in tqdm(names, desc=f"loading {subset} of {src.features}", unit="video", disable=not progress,
                      file=sys.stderr):
            graphs_of[v] = read_video(src.features, v).scene_graphs()
            windows = window_samples(v, graphs_of[v], gt[v]["segments"], cfg, explain=d.explain, chat=d.chat)
            out += windows * (src.repeat if subset == d.train_subset else 1)
    if subset == d.train_subset:
        if d.conversations:
            out += conversation_samples(read_conversations(d.conversations), graphs_of, cfg, str(d.conversations))
        if d.hawk:
            out += hawk_samples(read_hawk(d.hawk), graphs_of, cfg, str(d.hawk))
    return out


def draw(samples: list[WindowSample], positive_share: float | None, rng: random.Random,
         balanced: bool = False) -> list[WindowSample]:
    """An epoch's order: every sample once, positives (or negatives) repeated to the share asked;
    `balanced`: the positives' categories drawn equally often, n_pos / categories each (a rare
    category's windows repeated, a common one's a fresh random subset every epoch)."""
    if positive_share is None:
        order = list(samples)
    else:
        pos = [s for s in samples if s.anomalous]
        neg = [s for s in samples if not s.anomalous]
        if not pos or not neg:
            order = list(samples)
        else:
            n_pos = max(len(pos), round(positive_share * len(samples)))
            n_neg = max(len(neg), round((1 - positive_share) * len(samples)))
            if balanced:
                groups: dict[str, list[WindowSample]] = {}
                for s in pos:
                    groups.setdefault(s.category, []).append(s)
                each = math.ceil(n_pos / len(groups))
                picked = []
                for _, group in sorted(groups.items()):
                    cycle = rng.sample(group, len(group))
                    picked += [cycle[i % len(cycle)] for i in range(each)]
            else:
                picked = [pos[i % len(pos)] for i in range(n_pos)]
            order = picked + [neg[i % len(neg)] for i in range(n_neg)]
    rng.shuffle(order)
    return order


def step_inputs(batch: list[WindowSample], cfg: HawkeyeConfig):
    """A training step's clips (collated) and its questions with clip indices into them."""
    clips, prompts, answers, spans = [], [], [], []
    for s in batch:
        base = len(clips)
        clips += s.clips
        for p, a, span in s.qa:
            prompts.append(p)
            answers.append(a)
            spans.append([base + i for i in span])
    return collate(clips, cfg), prompts, answers, spans


# -- training ------------------------------------------------------------------------------------
def pretrain_lm(model: HawkeyeModel, steps: int, device: str, seed: int, lr: float = 5e-4,
                progress: bool = True) -> float:
    """Full training of the LM alone on the prompt/answer corpus (causal LM loss); returns the last loss."""
    tok = model.tokenizer
    lines = corpus()
    rng = random.Random(seed)
    lm = model.lm
    lm.train()
    opt = torch.optim.AdamW(lm.parameters(), lr=lr, weight_decay=0.01)
    loss = torch.tensor(0.0)
    bar = tqdm(range(steps), desc="teaching the LM its language", disable=not progress, file=sys.stderr)
    for _ in bar:
        text = [tok.bos_token + rng.choice(lines) + tok.eos_token for _ in range(32)]
        enc = tok(text, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        labels = enc.input_ids.masked_fill(enc.attention_mask == 0, -100)
        loss = lm(**enc, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    lm.eval()
    return float(loss.item())


def labelled_seconds(samples: list[WindowSample]) -> list[tuple]:
    """Every distinct second of the samples with the category taught for it: [(clip, category)]
    (windows overlap, so a second is asked about in several)."""
    named = {answer_category(c): c for c in CATEGORIES}
    seen = {}
    for s in samples:
        for prompt, answer, span in s.qa:
            if prompt == CATEGORY and len(span) == 1:
                seen[(s.video, round(s.clips[span[0]].start, 3))] = (s.clips[span[0]], named.get(answer, "normal"))
    return list(seen.values())


def warm_up_encoder(model: HawkeyeModel, samples: list[WindowSample], epochs: float, lr: float, device: str,
                    seed: int, batch: int = 32, progress: bool = True, log=print) -> list[float]:
    """The alignment stage: the scene encoder and projector trained alone to tell the seconds'
    categories apart, normal among them (a linear probe on the mean of a clip's video tokens,
    cross-entropy weighted by 1/sqrt of each category's share; the probe is then dropped). The
    LM learns to read the tokens faster when they already carry the differences: through the LM
    alone, the encoder's gradient is too weak for the per-second label to shape it (measured in a
    probe on the benchmark: per-second ROC-AUC on val 0.43 without this stage, 0.83 with it).
    Returns the mean loss of each epoch."""
    data = labelled_seconds(samples)
    if not data:
        raise ValueError("the encoder warm-up needs training seconds with category labels")
    cats = list(model.cfg.categories)
    index = {c: i for i, c in enumerate(cats)}
    counts = np.bincount([index.get(c, 0) for _, c in data], minlength=len(cats)).astype(float)
    weight = torch.tensor(np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1.0)), 0.0), dtype=torch.float32)
    weight = (weight / weight[counts > 0].mean()).to(device)
    enc = model.encoder
    probe = torch.nn.Linear(enc.projector[-1].out_features, len(cats)).to(device)
    opt = torch.optim.AdamW([*enc.parameters(), *probe.parameters()], lr=lr, weight_decay=0.01)
    rng = random.Random(seed)
    per_epoch = math.ceil(len(data) / batch)
    steps = max(1, round(epochs * per_epoch))
    log(f"aligning the scene encoder on {len(data)} seconds ({1 - counts[index['normal']] / len(data):.0%} anomalous), "
        f"{steps} steps")
    enc.train()
    order: list = []
    losses = []
    for _ in tqdm(range(steps), desc="aligning the encoder", unit="step", disable=not progress, file=sys.stderr):
        if len(order) < batch:
            order += rng.sample(data, len(data))
        part, order = order[:batch], order[batch:]
        tokens, mask, _, _ = enc(collate([c for c, _ in part], model.cfg).to(device))
        m = mask.unsqueeze(-1).float()
        logits = probe((tokens * m).sum(1) / m.sum(1).clamp(min=1.0))
        target = torch.tensor([index.get(c, 0) for _, c in part], device=device)
        loss = torch.nn.functional.cross_entropy(logits, target, weight=weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return [float(np.mean(losses[i:i + per_epoch])) for i in range(0, len(losses), per_epoch)]


def build_model(recipe: Recipe, device: str, progress: bool = True) -> HawkeyeModel:
    m = recipe.model
    if m.init is not None:
        return load_model(m.init, device=device, trainable_lora=True)
    cfg = HawkeyeConfig(dim=m.dim, max_people=m.max_people, max_triples=m.max_triples, experts=tuple(m.experts), router=m.router,
                        appearance_dim=DIM if m.appearance != "thumbnails" else 0,
                        appearance_frame=m.appearance == "crops+frame",
                        balance_weight=m.balance_weight, lora_r=m.lora.r, lora_alpha=m.lora.alpha, lora_dropout=m.lora.dropout,
                        lora_targets=m.lora.targets if isinstance(m.lora.targets, str) else tuple(m.lora.targets))
    model = new_model(cfg, lm_path=m.lm, lora=False, seed=recipe.seed).to(device)
    if m.lm_pretrain_steps:
        pretrain_lm(model, m.lm_pretrain_steps, device, recipe.seed, m.lm_pretrain_lr, progress)
    model.lm = add_lora(model.lm, model.cfg)
    return model


class Seconds(NamedTuple):
    """Every distinct second of some samples, as the model sees it."""
    labels: np.ndarray        # (N,) the category taught
    embeddings: np.ndarray    # (N, lm_dim) scene embeddings (the category head's input)
    yes: np.ndarray           # (N,) P(" Yes") to the discovery prompt (empty when not asked)
    asked: np.ndarray         # (N, C) the category prompt's distribution over `cfg.categories` (empty likewise)


@torch.inference_mode()
def ask_seconds(model: HawkeyeModel, samples: list[WindowSample], device: str, batch: int = 16,
                ask: bool = True) -> Seconds:
    """Every distinct second of the samples through the encoder and, with `ask`, both per-second
    questions as the detector asks them."""
    cats = list(model.cfg.categories)
    ids = [model.first_token(answer_category(c)) for c in cats]
    yes_id = model.first_token(model.cfg.answer_yes)
    rows = labelled_seconds(samples)
    yes, asked, embedded = [], [], []
    model.eval()
    for i in range(0, len(rows), batch):
        clips = [c for c, _ in rows[i:i + batch]]
        n = len(clips)
        b = collate(clips, model.cfg).to(device)
        encoded = model.encoder(b)
        embedded.append(model.scene_embeddings(encoded).cpu().numpy())
        if ask:
            p = model.next_token_logits([DISCOVERY] * n + [CATEGORY] * n, b, [[k] for k in range(n)] * 2,
                                        encoded=encoded).float().softmax(-1)
            yes += p[:n, yes_id].tolist()
            asked.append(p[n:][:, ids].cpu().numpy())
    return Seconds(np.array([c for _, c in rows]), np.concatenate(embedded) if embedded else np.zeros((0, 0)),
                   np.array(yes), np.concatenate(asked) if asked else np.zeros((0, len(cats))))


def category_distribution(model: HawkeyeModel, seconds: Seconds) -> np.ndarray:
    """(N, C) the seconds' category distribution as the detector reads it: from the model's category
    head where it has one, else the category prompt's."""
    if model.category_head is None:
        return seconds.asked
    with torch.inference_mode():
        return model.head_categories(torch.as_tensor(seconds.yes, dtype=torch.float32),
                                     torch.as_tensor(seconds.embeddings)).cpu().numpy()


HEAD_C = (0.003, 0.01, 0.03, 0.1)      # the category head's inverse L2 strengths tried; val picks one


def balanced_accuracy(labels: np.ndarray, named: np.ndarray) -> float:
    """The mean over the categories present of the share of their seconds named right."""
    present = sorted(set(labels))
    return float(np.mean([(named[labels == c] == c).mean() for c in present])) if present else float("nan")


def fit_category_head(model: HawkeyeModel, train_set: list[WindowSample], val: Seconds, device: str,
                      log=print) -> dict:
    """Fit the model's category head (stream/llm/hawkeye.py: CategoryHead) on the train split's
    anomalous seconds: a class-balanced multinomial logistic regression (scikit-learn) over their
    scene embeddings, its L2 strength the one of HEAD_C that names `val`'s anomalous seconds best
    (balanced accuracy). It is kept only where it names them better than the LM's category prompt
    does; otherwise the model has none and the prompt names categories, as before."""
    from sklearn.linear_model import LogisticRegression

    model.category_head = None
    y_train, x_train, _, _ = ask_seconds(model, train_set, device, ask=False)
    y_val, x_val, asked = val.labels, val.embeddings, val.asked
    keep, keep_val = y_train != "normal", y_val != "normal"
    anomalous = [c for c in model.cfg.categories if c != "normal"]
    taught = sorted(set(y_train[keep]))
    if len(taught) < 2 or not keep_val.any():
        log(f"no category head: the train split has {len(taught)} categories with seconds, val "
            f"{int(keep_val.sum())} anomalous seconds")
        return {"category_head": None}
    mean, scale = x_train[keep].mean(0), x_train[keep].std(0) + 1e-6
    z_train, z_val = (x_train[keep] - mean) / scale, (x_val[keep_val] - mean) / scale
    a = asked[keep_val][:, [model.cfg.categories.index(c) for c in anomalous]]
    by_prompt = balanced_accuracy(y_val[keep_val], np.array(anomalous)[a.argmax(1)])
    tried = {}
    for c in HEAD_C:
        fit = LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit(z_train, y_train[keep])
        tried[c] = (balanced_accuracy(y_val[keep_val], fit.predict(z_val)), fit)
    c = max(tried, key=lambda k: tried[k][0])
    score, fit = tried[c]
    report = {"category_head": {"c": c, "val_balanced_accuracy": round(score, 4),
                                "prompt_val_balanced_accuracy": round(by_prompt, 4),
                                "tried": {str(k): round(v[0], 4) for k, v in tried.items()}, "kept": score > by_prompt}}
    log(f"category head (C {c}): names val's anomalous seconds with balanced accuracy {score:.1%}, the category "
        f"prompt {by_prompt:.1%}: {'kept' if score > by_prompt else 'dropped'}")
    if score <= by_prompt:
        return report
    head = head_from_logistic(fit, mean, scale, anomalous)
    model.category_head = head.to(device)
    return report


def head_from_logistic(fit, mean: np.ndarray, scale: np.ndarray, categories: list[str]) -> CategoryHead:
    """A fitted scikit-learn LogisticRegression over (x - mean) / scale -> the CategoryHead over
    `categories` that gives the same probabilities; a category it was not fitted on gets none."""
    head = CategoryHead(len(mean), tuple(categories))
    coef, bias = fit.coef_, fit.intercept_
    if len(fit.classes_) == 2:           # one logit for classes_[1]: softmax over ±half of it is the same sigmoid
        coef, bias = np.vstack([-coef[0] / 2, coef[0] / 2]), np.array([-bias[0] / 2, bias[0] / 2])
    with torch.no_grad():
        head.mean.copy_(torch.as_tensor(mean))
        head.scale.copy_(torch.as_tensor(scale))
        head.linear.weight.zero_()
        head.linear.bias.fill_(-30.0)
        for j, cat in enumerate(fit.classes_):
            k = categories.index(cat)
            head.linear.weight[k] = torch.as_tensor(coef[j])
            head.linear.bias[k] = float(bias[j])
    return head


@torch.inference_mode()
def router_use(model: HawkeyeModel, samples: list[WindowSample], device: str, batch: int = 64) -> dict[str, dict[str, float]]:
    """The router's mean weight of each expert over the samples' seconds (their real frames), in
    all and per category taught: how much the fused tokens draw on each expert."""
    rows = labelled_seconds(samples)
    experts = list(model.encoder.experts)
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for i in range(0, len(rows), batch):
        part = rows[i:i + batch]
        b = collate([c for c, _ in part], model.cfg).to(device)
        _, _, router, _ = model.encoder(b)
        m = b.frame_mask.unsqueeze(-1).float()
        per_clip = ((router * m).sum(1) / m.sum(1).clamp(min=1.0)).cpu().numpy()      # (B, E)
        for (_, label), w in zip(part, per_clip):
            for key in ("all", label):
                sums[key] = sums.get(key, 0.0) + w
                counts[key] = counts.get(key, 0) + 1
    return {key: dict(zip(experts, (sums[key] / counts[key]).round(4).tolist())) for key in sums}


def calibrate(cfg: HawkeyeConfig, yes: np.ndarray, probs: np.ndarray, labels: np.ndarray,
              margin: float = 0.02, normal_over: float | None = None, joint: bool = False) -> HawkeyeConfig:
    """The detector's thresholds from val seconds (stream/llm/detector.py scores with them): the
    best-F2 P(" Yes") for any anomaly, raised where needed so that at most `normal_over` of the
    normal seconds score over it; and for each category the best-F2 P(" Yes")·P(category |
    anomalous) for that category's seconds (never under the share's bound either), kept only where
    it finds them better than discovery alone does (its F2 on them higher by `margin`): a category
    the model cannot yet tell apart gets 1.0, never crosses on its own, and is named only as the
    category model's first choice. A category val does not have gets 1.0 too. `joint`: the bound on
    normal seconds then holds for all of them together (`jointly_bounded`)."""
    from training.metrics import best_f2_threshold, f_beta

    def bounded(t: float, scores: np.ndarray) -> float:
        normal = scores[labels == "normal"]
        if normal_over is None or not len(normal):
            return t
        return max(t, float(np.quantile(normal, 1.0 - normal_over)))

    threshold = bounded(best_f2_threshold(labels != "normal", yes), yes)
    anomalous = [i for i, c in enumerate(cfg.categories) if c != "normal"]
    given = probs[:, anomalous] / np.maximum(probs[:, anomalous].sum(1, keepdims=True), 1e-12)
    per = dict(zip(anomalous, (yes[:, None] * given).T))
    named = np.array(anomalous)[given.argmax(1)] if len(given) else np.zeros(0, int)
    thresholds = []
    for i, c in enumerate(cfg.categories):
        mine = labels == c
        if i not in per or not mine.any():
            thresholds.append(1.0)
            continue
        t = bounded(best_f2_threshold(mine, per[i]), per[i])
        by_discovery = (yes >= threshold) & (named == i)        # discovery, named as the detector names it
        better = f_beta(mine, per[i] >= t) > f_beta(mine, by_discovery) + margin
        thresholds.append(t if better else 1.0)
    if joint and normal_over is not None and (labels == "normal").any():
        threshold, thresholds = jointly_bounded(threshold, thresholds, yes, per, labels == "normal", normal_over)
    return dataclasses.replace(cfg, threshold=threshold, category_thresholds=tuple(thresholds))


def _odds(p):
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return p / (1 - p)


def jointly_bounded(threshold: float, thresholds: list[float], yes: np.ndarray, per: dict[int, np.ndarray],
                    normal: np.ndarray, normal_over: float) -> tuple[float, list[float]]:
    """The detector scores a second by the highest of discovery and each category with a threshold
    of its own, so a bound met by each alone can be broken by them together (seven categories at
    5 % each). Where it is, every threshold's odds are raised by one factor, the least that brings
    the normal seconds crossing any of them back under `normal_over`."""
    ratios = [_odds(yes) / _odds(threshold)]
    ratios += [_odds(per[i]) / _odds(t) for i, t in enumerate(thresholds) if t < 1.0 and i in per]
    over = np.max(ratios, axis=0)[normal]                   # >= 1: the second crosses
    k = float(np.quantile(over, 1.0 - normal_over))
    if (over >= 1.0).mean() <= normal_over or k <= 1.0:
        return threshold, thresholds

    def raised(t: float) -> float:
        o = _odds(t) * k * (1 + 1e-6)
        return float(min(o / (1 + o), 1.0 - 1e-9))
    return raised(threshold), [raised(t) if t < 1.0 else 1.0 for t in thresholds]


@torch.inference_mode()
def validation_loss(model: HawkeyeModel, samples: list[WindowSample], device: str, batch: int = 16) -> float:
    model.eval()
    losses = []
    for i in range(0, len(samples), batch):
        clips, prompts, answers, spans = step_inputs(samples[i:i + batch], model.cfg)
        losses.append(float(model.loss(prompts, answers, clips.to(device), spans)["loss"]))
    return float(np.mean(losses)) if losses else float("nan")


def validate(model: HawkeyeModel, val_set: list[WindowSample], device: str, log=print,
             calibration: CalibrationRecipe | None = None, seconds: Seconds | None = None) -> dict:
    """Calibrate the model's thresholds on val seconds (`calibrate`) and measure it there
    (`seconds`: val's, already asked)."""
    from stream.llm.detector import second_scores
    from training.metrics import average_precision, roc_auc
    c = calibration or CalibrationRecipe(normal_seconds_over=None)
    seconds = seconds if seconds is not None else ask_seconds(model, val_set, device)
    yes, probs, labels = seconds.yes, category_distribution(model, seconds), seconds.labels
    model.cfg = calibrate(model.cfg, yes, probs, labels, normal_over=c.normal_seconds_over, joint=c.joint)
    scores, _ = second_scores(torch.as_tensor(yes), torch.as_tensor(probs), model.cfg.categories, model.cfg.threshold,
                              model.cfg.category_thresholds)
    anomalous = labels != "normal"
    named = np.array(model.cfg.categories)[np.where(np.array(model.cfg.categories) == "normal", -1.0, probs).argmax(1)]
    out = {"val_loss": validation_loss(model, val_set, device), "val_auc": roc_auc(anomalous, yes),
           "val_ap": average_precision(anomalous, yes), "threshold": model.cfg.threshold,
           "category_thresholds": dict(zip(model.cfg.categories, model.cfg.category_thresholds)),
           "val_category_accuracy": float((named == labels)[anomalous].mean()) if anomalous.any() else None,
           "val_normal_seconds_crossing": float((np.array(scores)[~anomalous] >= 0.5).mean()) if (~anomalous).any() else None,
           "router": router_use(model, val_set, device)}
    own = [c for c, t in out["category_thresholds"].items() if t < 1.0]
    log("router's mean weight per expert on val: " + ", ".join(f"{k} {v:.2f}" for k, v in out["router"]["all"].items()))
    log(f"validation: loss {out['val_loss']:.3f}, per-second ROC-AUC {out['val_auc']:.3f}, AP {out['val_ap']:.3f}, "
        f"best-F2 threshold {model.cfg.threshold:.3f}, category accuracy on anomalous seconds "
        f"{out['val_category_accuracy'] or 0:.1%}, categories with thresholds of their own: {', '.join(own) or 'none'}, "
        f"normal seconds crossing {out['val_normal_seconds_crossing'] or 0:.1%}")
    return out


def recalibrate(recipe: Recipe, log=print) -> Path:
    """Only the last stages again: the recipe's trained model's category head re-fitted (unless the
    recipe says not) and the model re-calibrated on its val split (category_head.pt, hawkeye.json
    and train_report.json rewritten), e.g. after the calibration rule changed."""
    device = resolve_device(recipe.device)
    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    if not recipe.data.val_subset:
        raise ValueError("calibration needs a val split (data.val_subset)")
    model = load_model(recipe.out, device=device)
    val_set = load_samples(recipe, model.cfg, recipe.data.val_subset)
    seconds, found = ask_seconds(model, val_set, device), {}
    if recipe.calibration.category_head:
        found = fit_category_head(model, load_samples(recipe, model.cfg, recipe.data.train_subset), seconds, device, log)
        if model.category_head is not None:
            model.category_head.save(recipe.out / "category_head.pt")
        else:
            (recipe.out / "category_head.pt").unlink(missing_ok=True)
    found.update(validate(model, val_set, device, log, recipe.calibration, seconds))
    model.cfg.save(recipe.out / "hawkeye.json")
    report_path = recipe.out / "train_report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    report_path.write_text(json.dumps({**report, **found}, indent=1) + "\n")
    log(f"re-calibrated {recipe.out}")
    return recipe.out


def _trainable(model: HawkeyeModel):
    enc = [p for p in model.encoder.parameters() if p.requires_grad]
    lora = [p for n, p in model.lm.named_parameters() if p.requires_grad]
    return enc, lora


def _save_checkpoint(path: Path, model: HawkeyeModel, opt, sched, step: int, rng: random.Random,
                     order: list[int]) -> None:
    """The model (adapters unmerged), optimiser, schedule, step, random state and this epoch's order."""
    tmp = path.with_name(path.name + ".tmp")
    model.save(tmp / "model")
    torch.save({"step": step, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "rng": rng.getstate(), "torch_rng": torch.get_rng_state(), "order": order}, tmp / "state.pt")
    if path.exists():
        shutil.rmtree(path)
    tmp.replace(path)


def train(recipe: Recipe, *, resume: bool = False, stop_after: int | None = None, progress: bool = True,
          log=print) -> Path | None:
    """Train as the recipe says; returns the model directory, or None when `stop_after` steps
    (counted from the start) ended the run early with a checkpoint to --resume from."""
    from transformers import get_cosine_schedule_with_warmup

    device = resolve_device(recipe.device)
    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    random.seed(recipe.seed)
    np.random.seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    out = recipe.out
    ckpt = out.with_name(out.name + ".checkpoint")
    resuming = resume and (ckpt / "state.pt").exists()
    if resume and not resuming:
        log(f"no checkpoint at {ckpt}: starting afresh")
    model = load_model(ckpt / "model", device=device, trainable_lora=True) if resuming else \
        build_model(recipe, device, progress)
    cfg = model.cfg
    train_set = load_samples(recipe, cfg, recipe.data.train_subset, progress)
    if not train_set:
        raise ValueError(f"no {recipe.data.train_subset} windows in {recipe.data.ground_truth}")
    val_set = load_samples(recipe, cfg, recipe.data.val_subset, progress) if recipe.data.val_subset else []
    o = recipe.optim
    if recipe.model.encoder_warmup_epochs and not resuming and recipe.model.init is None:
        losses = warm_up_encoder(model, train_set, recipe.model.encoder_warmup_epochs, o.encoder_lr or o.lr, device,
                                 recipe.seed, progress=progress, log=log)
        log(f"encoder aligned: probe loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    per_epoch = math.ceil(len(draw(train_set, o.positive_share, random.Random(0), o.class_balanced)) / o.batch_windows)
    total = max(1, round(o.epochs * per_epoch))
    enc, lora = _trainable(model)
    groups = [{"params": enc, "lr": o.encoder_lr or o.lr}, {"params": lora, "lr": o.lr}]
    opt = torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=o.weight_decay)
    sched = get_cosine_schedule_with_warmup(opt, round(o.warmup_ratio * total), total)
    rng = random.Random(recipe.seed)
    step, state = 0, {}
    if resuming:
        state = torch.load(ckpt / "state.pt", map_location="cpu", weights_only=False)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        rng.setstate(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        step = state["step"]
        log(f"resumed from {ckpt} at step {step}/{total}")
    use_bf16 = o.precision == "bf16" or (o.precision == "auto" and device == "cuda" and torch.cuda.is_bf16_supported())
    counts = category_counts(train_set)
    log(f"training on {len(train_set)} windows ({sum(s.anomalous for s in train_set)} anomalous; categories {counts}), "
        f"{total} steps of {o.batch_windows} windows, device {device}{', bf16' if use_bf16 else ''}; "
        f"trainable: encoders {sum(p.numel() for p in enc):,}, LoRA {sum(p.numel() for p in lora):,}")
    history = []
    t0 = time.time()
    index = {id(x): i for i, x in enumerate(train_set)}
    order = [train_set[i] for i in state["order"]] if resuming else draw(train_set, o.positive_share, rng, o.class_balanced)
    model.train()
    bar = tqdm(total=total, initial=step, desc="training", unit="step", disable=not progress, file=sys.stderr)
    while step < total:
        k = (step % per_epoch) * o.batch_windows
        if k == 0 and step:
            order = draw(train_set, o.positive_share, rng, o.class_balanced)       # a new epoch
        batch = order[k:k + o.batch_windows]
        clips, prompts, answers, spans = step_inputs(batch, cfg)
        with torch.autocast(device_type="cuda" if device == "cuda" else "cpu", dtype=torch.bfloat16, enabled=use_bf16):
            losses = model.loss(prompts, answers, clips.to(device), spans)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(enc + lora, o.grad_clip)
        opt.step()
        sched.step()
        step += 1
        history.append({k2: float(v.detach()) for k2, v in losses.items()})
        bar.update(1)
        recent = history[-20:]
        bar.set_postfix(loss=f"{np.mean([h['loss'] for h in recent]):.3f}",
                        bc=f"{np.mean([h['balance'] for h in recent]):.3f}")
        if (step % recipe.checkpoint_every == 0 or step == stop_after) and step < total:
            _save_checkpoint(ckpt, model, opt, sched, step, rng, [index[id(x)] for x in order])
            model.train()
        if step == stop_after and step < total:
            bar.close()
            log(f"stopped after step {step}/{total}; continue with --resume")
            return None
    bar.close()
    model.eval()
    report = {"steps": total, "seconds": round(time.time() - t0, 1), "device": device, "bf16": use_bf16,
              "train_windows": len(train_set), "categories": counts,
              "final_loss": float(np.mean([h["loss"] for h in history[-20:]])) if history else None,
              "final_balance": float(np.mean([h["balance"] for h in history[-20:]])) if history else None}
    if val_set:
        seconds = ask_seconds(model, val_set, device)
        if recipe.calibration.category_head:
            report.update(fit_category_head(model, train_set, seconds, device, log))
        report.update(validate(model, val_set, device, log, recipe.calibration, seconds))
    model.save(out)
    (out / "train_report.json").write_text(json.dumps({**report, "recipe": json.loads(recipe.model_dump_json())},
                                                      indent=1) + "\n")
    if ckpt.exists():
        shutil.rmtree(ckpt)
    log(f"wrote {out} ({report['seconds']:.0f} s)")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = Parser("python -m training.train", __doc__)
    ap.add_argument("--config", type=Path, required=True, help="a recipe (configs/train/*.yaml)")
    ap.add_argument("--resume", action="store_true", help="continue from the last checkpoint of this recipe's output")
    ap.add_argument("--calibrate", action="store_true",
                    help="only re-calibrate the recipe's trained model (out) on its val split: its thresholds")
    ap.add_argument("--stop-after", type=int, metavar="STEPS",
                    help="checkpoint and stop after this many steps (continue later with --resume)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a recipe field, e.g. --set optim.epochs=1 --set out=/tmp/m")
    args = ap.parse_args(argv)
    try:
        overrides = dict(s.split("=", 1) for s in args.set)
    except ValueError:
        print(f"error: --set takes KEY=VALUE, got {args.set}", file=sys.stderr)
        return 2
    try:
        recipe = load_recipe(args.config, overrides)
        log = lambda m: print(m, file=sys.stderr, flush=True)    # noqa: E731
        if args.calibrate:
            recalibrate(recipe, log=log)
        else:
            train(recipe, resume=args.resume, stop_after=args.stop_after, log=log)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
