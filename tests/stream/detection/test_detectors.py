"""The detector registry: every name the config accepts builds, and nothing else is guessed."""
from __future__ import annotations

import typing

from stream.config import DetectorConfig, load_config
from stream.detection.registry import DETECTORS, build_detector
from stream.detection.baseline import BaselineDetector
from tests.harness import ROOT


def test_the_registry_holds_exactly_the_names_the_config_accepts():
    assert set(DETECTORS) == set(typing.get_args(DetectorConfig.model_fields["name"].annotation))


def test_a_config_naming_the_baseline_builds_it_with_its_rules():
    cfg = load_config(ROOT / "configs" / "demo.yaml")
    cfg = cfg.model_copy(update={"detector": DetectorConfig(name="baseline")})
    detector = build_detector(cfg)
    assert isinstance(detector, BaselineDetector) and detector.max_batch >= 1
