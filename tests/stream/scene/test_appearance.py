"""The pretrained appearance encoder: EfficientNet-Lite0 converted from its wheel names what two
real photographs show (ImageNet classes), and encodes frames and person crops of real footage."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from engines import create_engine
from stream.scene.appearance import DIM, AppearanceEncoder
from tests.conftest import ROOT, _need


@pytest.fixture(scope="module")
def encoder(models_dir):
    return AppearanceEncoder(create_engine("onnxruntime", models_dir / "efficientnet_lite0.onnx", threads=2))


def test_the_converted_network_names_real_photographs(encoder):
    images = [cv2.imread(str(_need(ROOT / "data" / f"{n}.jpg", "make data"))) for n in ("baboon", "orange")]
    p = encoder.classify(images)
    assert p.argmax(1).tolist() == [372, 950] and (p.max(1) > 0.5).all()     # baboon, orange


def test_frames_and_person_crops_become_pooled_features(encoder, vtest_frames):
    frames = encoder.frames(vtest_frames[:3])
    assert frames.shape == (3, DIM) and np.isfinite(frames).all() and (frames >= 0).all()   # ReLU6, pooled
    assert not np.allclose(frames[0], frames[2])
    boxes = np.array([[100, 100, 140, 200], [0, 0, 10, 10], [760, 560, 800, 600]], np.float32)   # one past the edge
    crops = encoder.crops(vtest_frames[0], boxes)
    assert crops.shape == (3, DIM) and np.isfinite(crops).all()
    assert encoder.crops(vtest_frames[0], np.zeros((0, 4))).shape == (0, DIM)


def test_describe_batches_frames_and_their_people_as_frames_and_crops_do(encoder, vtest_frames):
    boxes = [np.array([[100, 100, 140, 200], [300, 50, 360, 220]], np.float32), np.zeros((0, 4), np.float32)]
    both = encoder.describe(vtest_frames[:2], boxes)
    assert [a.shape for a in both] == [(3, DIM), (1, DIM)] and both[0].dtype == np.float16
    np.testing.assert_allclose(both[0][0], encoder.frames(vtest_frames[:1])[0], atol=2e-2)
    np.testing.assert_allclose(both[0][1:], encoder.crops(vtest_frames[0], boxes[0]), atol=2e-2)
    assert [a.shape for a in encoder.describe(vtest_frames[:2])] == [(1, DIM), (1, DIM)]
    assert encoder.describe([]) == []


def test_the_appearance_config_builds_a_scene_stage_that_encodes_frames_and_people(models_dir):
    from stream.config import load_config
    from stream.scene.graph import scene_from_config

    cfg = load_config(ROOT / "configs" / "appearance.yaml")
    assert cfg.models.appearance.path.name == "efficientnet_lite0.onnx" and cfg.models.appearance.crops
    builder = scene_from_config(cfg)
    assert isinstance(builder.appearance, AppearanceEncoder) and builder.appearance_crops
