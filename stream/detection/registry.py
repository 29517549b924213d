"""The detectors a config can name (`detector.name`), built by name from one registry: what scores
each second of a window. Add one by writing its class (`batch(scenes) -> verdicts`, and what it
declares it can do) in a module of its own, and its builder here with `@register_detector`; the
builder imports the module, so a detector's dependencies load only when it is named."""
from __future__ import annotations

from typing import Callable, Protocol

from stream.config import ConfigError, HawkwatchConfig
from stream.types import SceneGraph, Verdict


class Detector(Protocol):
    """Scene graphs -> verdicts, in batches of up to max_batch (stream/llm: baseline, hawkeye). It
    declares what else it can do: `explains` (an opened event's explanation: `explain`) and `talks`
    (answers to operators' questions: `chat`); those methods are called only where declared."""
    name: str
    max_batch: int
    max_wait_s: float
    explains: bool
    talks: bool

    def batch(self, scenes: list[SceneGraph]) -> list[Verdict]: ...
    def explain(self, scene: SceneGraph, category: str, start: float, end: float) -> str: ...
    def chat(self, scenes: list[SceneGraph], question: str, max_new_tokens: int = 64) -> str: ...


DETECTORS: dict[str, Callable[[HawkwatchConfig], Detector]] = {}


def register_detector(name: str) -> Callable:
    def register(build: Callable[[HawkwatchConfig], Detector]) -> Callable[[HawkwatchConfig], Detector]:
        DETECTORS[name] = build
        return build
    return register


def check_name(cfg: HawkwatchConfig) -> None:
    """A ConfigError naming the choices when `detector.name` names no detector."""
    if cfg.detector.name not in DETECTORS:
        raise ConfigError(f"detector.name: no detector {cfg.detector.name!r}; choose one of {', '.join(DETECTORS)}")


@register_detector("baseline")
def _baseline(cfg: HawkwatchConfig) -> Detector:
    from stream.detection.baseline import BaselineDetector
    return BaselineDetector(cfg.detector.baseline)


@register_detector("hawkeye")
def _hawkeye(cfg: HawkwatchConfig) -> Detector:
    from stream.llm.detector import HawkeyeDetector
    from stream.llm.hawkeye import load_model

    h = cfg.detector.hawkeye
    try:
        model = load_model(h.model, lm_path=h.lm, merge_lora=True, device=h.device)
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(f"detector.hawkeye: {e}") from None
    if model.cfg.appearance_dim and cfg.models.appearance is None:
        raise ConfigError(f"detector.hawkeye: the model at {h.model} reads pretrained appearance features "
                          f"(appearance_dim {model.cfg.appearance_dim}); set models.appearance "
                          "(path: models/efficientnet_lite0.onnx) so the scene stage computes them")
    return HawkeyeDetector(model, threads=h.threads, max_batch=h.max_batch, max_wait_s=h.max_wait_ms / 1000.0,
                           explain=h.explain)


def build_detector(cfg: HawkwatchConfig) -> Detector:
    """The configured detector, its model loaded (ConfigError when it cannot be)."""
    check_name(cfg)
    return DETECTORS[cfg.detector.name](cfg)
