"""A tiny benchmark, built once per session by the real generator and extractor: 4 videos of 8 s
(one per split, one more for training) composed into vtest.avi, and their features."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream.config import load_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def detector(models_dir):
    from training.extract import person_detector
    return person_detector(models_dir)


@pytest.fixture(scope="session")
def segmenter(models_dir):
    from training.synth import person_segmenter
    return person_segmenter(models_dir)


@pytest.fixture(scope="session")
def bank(vtest, detector, segmenter):
    from training.synth import build_bank, read_video
    frames, fps = read_video(vtest)
    return build_bank(frames, fps, detector, segmenter, progress=lambda m: None), frames, fps


@pytest.fixture(scope="session")
def tiny_bench(vtest, bank, tmp_path_factory) -> Path:
    from training.extract import extract
    from training.synth import generate
    out = tmp_path_factory.mktemp("bench")
    generate(vtest, out, seed=3, counts={"train": 2, "val": 1, "test": 1}, seconds=8.0, bank=bank[0],
             progress=lambda m: None)
    extract(sorted((out / "videos").glob("*.mp4")), out, load_config(ROOT / "configs" / "demo.yaml"), progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_gt(tiny_bench) -> dict:
    return json.loads((tiny_bench / "gt.json").read_text())
