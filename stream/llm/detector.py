"""The Hawkeye model as the pipeline's detector (the runner of the scheduler's plans).

One model call per batch of windows from any cameras: every second of every window gets the
discovery prompt (its fast score is P(" Yes") at the first answer token), and every window the
category prompt (the category words' first-token probabilities). Explanations and chat answers
are generated text, asked for only when an event opens or a user asks, off the scoring path:
they share the model through a `ModelGate`, one token at a time, and a scoring batch that waits
goes in before the next token, so a question never holds the cameras' verdicts back.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

import torch

from stream.llm.features import clips_of, collate
from stream.llm.hawkeye import HawkeyeModel
from stream.llm.prompts import CATEGORIES, CATEGORY, CHAT, DISCOVERY, EXPLAIN, answer_category, parse_answer
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


def calibrated(p: float, threshold: float) -> float:
    """P(" Yes") mapped so the model's own threshold (calibrated on val by training) is 0.5, where
    the event tracker opens alerts; piecewise linear, so the order of scores (AUC, AP) is kept."""
    t = min(max(threshold, 1e-6), 1 - 1e-6)
    return 0.5 * p / t if p < t else 0.5 + 0.5 * (p - t) / (1 - t)


class HawkeyeDetector:
    name = "hawkeye"

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

    def __call__(self, scene: SceneGraph) -> Verdict:
        return self.batch([scene])[0]

    def batch(self, scenes: list[SceneGraph]) -> list[Verdict]:
        t0 = time.perf_counter()
        cfg = self.model.cfg
        per_scene = [clips_of(s, cfg) for s in scenes]
        clips = [c for cs in per_scene for c in cs]
        # every second: the discovery prompt on its clip; then every window: the category prompt on all its clips
        prompts = [DISCOVERY] * len(clips) + [CATEGORY] * len(scenes)
        spans = [[i] for i in range(len(clips))]
        first = 0
        for cs in per_scene:
            spans.append(list(range(first, first + len(cs))))
            first += len(cs)
        with self.gate.scoring(), torch.inference_mode():
            probs = self.model.next_token_logits(prompts, collate(clips, cfg).to(self.device), spans).float().softmax(-1)
        yes = [calibrated(p, self.model.cfg.threshold) for p in probs[:len(clips), self._yes].tolist()]
        cats = probs[len(clips):][:, self._category_ids]
        cats = (cats / cats.sum(-1, keepdim=True).clamp(min=1e-12)).tolist()
        ms = (time.perf_counter() - t0) * 1000.0
        out, k = [], 0
        for scene, cs, cat in zip(scenes, per_scene, cats):
            categories = dict(zip(self.categories, cat))
            top = max((c for c in self.categories if c != "normal"), key=categories.get)
            seconds = tuple(SecondScore(c.start, c.end, yes[k + i], top if yes[k + i] >= 0.5 else "normal")
                            for i, c in enumerate(cs))
            k += len(cs)
            out.append(Verdict(
                camera=scene.camera, window_id=scene.window_id, start=scene.start, end=scene.end,
                wall_start=scene.wall_start, wall_end=scene.wall_end, gaps=scene.gaps,
                score=max((s.score for s in seconds), default=0.0), seconds=seconds, categories=categories,
                explanation="", detector=self.name, people=len(scene.tracks),
                latency_ms={**scene.latency_ms, "detector": ms}, final=scene.final))
        return out

    def _generate(self, prompt: str, scenes: list[SceneGraph], max_new_tokens: int) -> str:
        cfg = self.model.cfg
        clips = [c for s in scenes for c in clips_of(s, cfg)]
        return self.model.generate([prompt], collate(clips, cfg).to(self.device), [list(range(len(clips)))],
                                   max_new_tokens=max_new_tokens, step=self.gate.step)[0]

    def explain(self, scene: SceneGraph) -> str:
        """What is anomalous in the window and when, in the model's words (generated)."""
        answer = parse_answer(self._generate(EXPLAIN, [scene], 40), window_s=scene.end - scene.start)
        return answer.text

    def chat(self, scenes: list[SceneGraph], question: str, max_new_tokens: int = 64) -> str:
        """A free question about a camera's recent windows (Hawkeye's chat paradigm)."""
        return parse_answer(self._generate(CHAT.format(question=question.strip()[:500]), scenes, max_new_tokens)).text
