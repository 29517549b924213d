"""The Hawkeye model as the pipeline's detector (the runner of the scheduler's plans).

One model call per batch of windows from any cameras: every second of every window gets the
discovery prompt (P(" Yes") at the first answer token). Which category it is comes from the
model's category head over the second's scene embedding, or, in a model without one, from the
category prompt (the category words' first-token probabilities). A second's score is P(" Yes")
mapped (in log-odds) so that the threshold training calibrated on val is 0.5, or, where higher, a
category's P(" Yes")·P(category | anomalous) mapped by that category's own val threshold (for the
categories training found it for); an alert carries the category that crossed. Explanations and
chat answers are generated text, asked for only when an event opens or a user asks, off the
scoring path: they share the model through a `ModelGate`, one token at a time, and a scoring batch
that waits goes in before the next token, so a question never holds the cameras' verdicts back.
"""
from __future__ import annotations

import hashlib
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import torch

from stream.llm.features import clips_of, collate
from stream.llm.hawkeye import HawkeyeModel
from stream.llm.prompts import CATEGORIES, CATEGORY, CHAT, DISCOVERY, EXPLAIN, answer_category, explanation_lead, parse_answer
from stream.types import SceneGraph, SecondScore, Verdict


class ModelGate:
    """One model, two kinds of users: scoring batches, which go first, and text generation, which
    takes the model one token step at a time and only while no batch waits."""

    def __init__(self):
        self._cond = threading.Condition()
        self._busy = False
        self._scoring_waits = 0

    @contextmanager
    def scoring(self) -> Iterator[None]:
        with self._cond:
            self._scoring_waits += 1
            self._cond.wait_for(lambda: not self._busy)
            self._scoring_waits -= 1
            self._busy = True
        try:
            yield
        finally:
            self._release()

    @contextmanager
    def step(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._busy and not self._scoring_waits)
            self._busy = True
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        with self._cond:
            self._busy = False
            self._cond.notify_all()


def calibrated(p, threshold):
    """P(" Yes") (a float or a tensor) mapped so the model's own threshold (calibrated on val by
    training) is 0.5, where the event tracker's scale is centred: a shift in log-odds,
    sigmoid(logit(p) - logit(threshold)). The order of scores (AUC, AP) is kept, and the tracker's
    hysteresis reads as odds against the threshold's: 0.6 opens at 1.5 times them, 0.4 closes under
    2/3, whether the threshold is 0.5 or 0.02."""
    t = min(max(float(threshold), 1e-6), 1 - 1e-6)
    return p * (1 - t) / (p * (1 - t) + t * (1 - p) + 1e-12)


def second_scores(yes: torch.Tensor, category: torch.Tensor, categories: tuple[str, ...], threshold: float,
                  category_thresholds: tuple[float, ...]) -> tuple[list[float], dict]:
    """Per second: P(" Yes") (N,) and the category words' first-token probabilities (N, C) -> each
    second's score and {"top": its category (index, never normal), "probabilities": (N, C) the
    category distribution}. The score is the highest of P(" Yes") against the model's threshold
    and, for each category with a threshold of its own (below 1: training found it better than
    discovery on val), P(" Yes")·P(category | anomalous) against that one; the category is the one
    that scored it, or, where discovery did, the category most likely given an anomaly."""
    q = category / category.sum(-1, keepdim=True).clamp(min=1e-12)
    anomalous = [i for i, c in enumerate(categories) if c != "normal"]
    given = q[:, anomalous] / q[:, anomalous].sum(-1, keepdim=True).clamp(min=1e-12)    # P(c | anomalous)
    score = calibrated(yes, threshold)
    top = given.argmax(-1)
    own = [k for k, i in enumerate(anomalous) if len(category_thresholds) == len(categories) and category_thresholds[i] < 1.0]
    if own:
        z = torch.stack([calibrated(yes * given[:, k], category_thresholds[anomalous[k]]) for k in own], -1)
        best, which = z.max(-1)
        wins = best > score
        score = torch.where(wins, best, score)
        top = torch.where(wins, torch.tensor(own)[which], top)
    return score.tolist(), {"top": [anomalous[i] for i in top.tolist()], "probabilities": q.cpu().numpy()}


def model_fingerprint(model: HawkeyeModel) -> str:
    """A short hash of the scene encoder's weights: embeddings of two models compare only when it is equal."""
    h = hashlib.sha256()
    for name, t in sorted(model.encoder.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu", torch.float32).numpy().tobytes())
    return h.hexdigest()[:12]


class HawkeyeDetector:
    name, talks = "hawkeye", True       # `explains` as configured

    def __init__(self, model: HawkeyeModel, *, threads: int | None = None, max_batch: int = 16,
                 max_wait_s: float = 0.05, explain: bool = True):
        if threads:
            torch.set_num_threads(threads)
        self.model, self.max_batch, self.max_wait_s, self.explains = model.eval(), max_batch, max_wait_s, explain
        self.device = next(model.parameters()).device
        self.gate = ModelGate()            # scoring, explanations and chat share the model
        # the categories this model was taught to name (one trained before a category existed never names it)
        self.categories = tuple(model.cfg.categories) if len(model.cfg.categories) > 1 else CATEGORIES
        self._category_ids = [model.first_token(answer_category(c)) for c in self.categories]
        self._yes = model.first_token(model.cfg.answer_yes)
        self.space = f"hawkeye:{model_fingerprint(model)}"   # whose scene embeddings the verdicts carry

    def __call__(self, scene: SceneGraph) -> Verdict:
        return self.batch([scene])[0]

    def batch(self, scenes: list[SceneGraph]) -> list[Verdict]:
        t0 = time.perf_counter()
        cfg = self.model.cfg
        per_scene = [clips_of(s, cfg) for s in scenes]
        clips = [c for cs in per_scene for c in cs]
        n = len(clips)
        head = self.model.category_head is not None
        prompts = [DISCOVERY] * n + ([] if head else [CATEGORY] * n)     # the category prompt only without a head
        spans = [[i] for i in range(n)] * (1 if head else 2)
        with self.gate.scoring(), torch.inference_mode():
            batch = collate(clips, cfg).to(self.device)
            encoded = self.model.encoder(batch)
            embedded = self.model.scene_embeddings(encoded)
            probs = self.model.next_token_logits(prompts, batch, spans, encoded=encoded).float().softmax(-1)
            yes = probs[:n, self._yes]
            category = self.model.head_categories(yes, embedded) if head else probs[n:][:, self._category_ids]
            embeddings = embedded.cpu().numpy()
        scores, cats = second_scores(yes, category, self.categories, cfg.threshold, cfg.category_thresholds)
        ms = (time.perf_counter() - t0) * 1000.0
        out, k = [], 0
        for scene, cs in zip(scenes, per_scene):
            part = slice(k, k + len(cs))
            seconds = tuple(SecondScore(c.start, c.end, sc, cat if sc >= 0.5 else "normal")
                            for c, sc, cat in zip(cs, scores[part], [self.categories[i] for i in cats["top"][part]]))
            mean = cats["probabilities"][part].mean(0) if len(cs) else [0.0] * len(self.categories)
            k += len(cs)
            out.append(Verdict(
                camera=scene.camera, window_id=scene.window_id, start=scene.start, end=scene.end,
                wall_start=scene.wall_start, wall_end=scene.wall_end, gaps=scene.gaps,
                score=max((s.score for s in seconds), default=0.0), seconds=seconds,
                categories={c: float(p) for c, p in zip(self.categories, mean)},
                explanation="", detector=self.name, people=len(scene.tracks),
                latency_ms={**scene.latency_ms, "detector": ms}, final=scene.final,
                embeddings=embeddings[part], embedding_space=self.space))
        return out

    def _generate(self, prompt: str, scenes: list[SceneGraph], max_new_tokens: int) -> str:
        cfg = self.model.cfg
        clips = [c for s in scenes for c in clips_of(s, cfg)]
        return self.model.generate([prompt], collate(clips, cfg).to(self.device), [list(range(len(clips)))],
                                   max_new_tokens=max_new_tokens, step=self.gate.step)[0]

    def explain(self, scene: SceneGraph, category: str, start: float, end: float) -> str:
        """What the event of `category` over stream seconds [start, end] is, in the model's words: its
        answer to the explanation prompt, led by the category's own sentence (so it can only talk
        about that category), the time it grounds in the window kept inside the event's span."""
        lead = explanation_lead(category)
        answer = parse_answer(lead + self._generate(EXPLAIN + lead, [scene], 16), window_s=scene.end - scene.start)
        a, b = answer.span if answer.span else (start - scene.start, end - scene.start)
        a, b = min(max(a + scene.start, start), end), min(max(b + scene.start, start), end)
        if b - a < 0.5:                  # grounded outside the event, or on an instant: the event's own span
            a, b = start, end
        return f"{lead.strip()} from {a:.1f} to {b:.1f} seconds."

    def chat(self, scenes: list[SceneGraph], question: str, max_new_tokens: int = 64) -> str:
        """A free question about a camera's recent windows (Hawkeye's chat paradigm)."""
        return parse_answer(self._generate(CHAT.format(question=question.strip()[:500]), scenes, max_new_tokens)).text
