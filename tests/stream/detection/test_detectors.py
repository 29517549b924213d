"""The detector registry: every name the config accepts builds, and nothing else is guessed."""
from __future__ import annotations

import pytest

from stream.config import ConfigError, DetectorConfig, load_config
from stream.detection.registry import DETECTORS, build_detector, register_detector
from stream.detection.baseline import BaselineDetector
from tests.harness import ROOT


def test_the_registry_holds_the_shipped_detectors_and_an_unknown_name_is_a_config_error_naming_them():
    assert list(DETECTORS) == ["baseline", "hawkeye"]
    cfg = load_config(ROOT / "configs" / "demo.yaml")
    with pytest.raises(ConfigError, match="detector.name: no detector 'hawkeyes'; choose one of baseline, hawkeye"):
        build_detector(cfg.model_copy(update={"detector": DetectorConfig(name="hawkeyes")}))


def test_a_detector_is_one_builder_away():
    """What adding a detector takes: its class, and a builder registered by name."""
    @register_detector("quiet")
    def _quiet(cfg):
        return BaselineDetector(cfg.detector.baseline)
    try:
        cfg = load_config(ROOT / "configs" / "demo.yaml")
        assert isinstance(build_detector(cfg.model_copy(update={"detector": DetectorConfig(name="quiet")})),
                          BaselineDetector)
    finally:
        DETECTORS.pop("quiet", None)


def test_a_config_naming_the_baseline_builds_it_with_its_rules():
    cfg = load_config(ROOT / "configs" / "demo.yaml")
    cfg = cfg.model_copy(update={"detector": DetectorConfig(name="baseline")})
    detector = build_detector(cfg)
    assert isinstance(detector, BaselineDetector) and detector.max_batch >= 1
