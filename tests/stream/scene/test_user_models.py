"""Users' own pose models, declared in the config: input size, layout, channel order, normalisation
and decoder, for top-down and bottom-up models.

The models here are small real ONNX exports of torch modules that find the centroid of the pixels
whose first input channel, after normalisation, exceeds 0.5, and report all 17 keypoints there in
each decoder's output format. A frame has a red square and a blue square on grey: which square
is found, and where it lands in the frame, shows whether channel order, normalisation, layout,
resize and the way back to frame pixels are all right."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from engines.export import export_onnx
from stream.config import ConfigError, load_config
from stream.scene.graph import scene_from_config
from stream.scene.pose import TopDown

RED, BLUE = (420.0, 120.0), (120.0, 220.0)      # square centres in frame pixels (continuous coordinates)


def frame(w: int = 640, h: int = 360) -> np.ndarray:
    img = np.full((h, w, 3), 100, np.uint8)
    img[100:140, 400:440] = (0, 0, 255)          # BGR red
    img[200:240, 100:140] = (255, 0, 0)          # BGR blue
    return img


def centroid(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, H, W) -> centre x, y (N,) of the bright pixels of channel 0, in input pixels."""
    w = torch.relu(x[:, 0] - 0.5)
    H, W = w.shape[-2:]
    ys = torch.arange(H, dtype=torch.float32).view(1, H, 1) + 0.5
    xs = torch.arange(W, dtype=torch.float32).view(1, 1, W) + 0.5
    total = w.sum(dim=(1, 2)) + 1e-6
    return (w * xs).sum(dim=(1, 2)) / total, (w * ys).sum(dim=(1, 2)) / total


class YoloPose(torch.nn.Module):
    """(N, 3, H, W) -> (N, 56, 2): one person at the centroid, one empty anchor."""

    def forward(self, x):
        cx, cy = centroid(x)
        one = torch.ones_like(cx)
        kp = torch.stack([cx, cy, 0.9 * one], dim=1).repeat(1, 17)                 # (N, 51)
        person = torch.cat([torch.stack([cx, cy, 20 * one, 20 * one, 0.9 * one], dim=1), kp], dim=1)
        return torch.stack([person, torch.zeros_like(person)], dim=2)


class SimCC(torch.nn.Module):
    """(N, H, W, 3) NHWC crops -> simcc_x (N, 17, 2W), simcc_y (N, 17, 2H), peaked at the centroid."""

    def forward(self, x):
        x = x.permute(0, 3, 1, 2)
        cx, cy = centroid(x)
        H, W = x.shape[-2:]
        bx = torch.arange(2 * W, dtype=torch.float32) / 2
        by = torch.arange(2 * H, dtype=torch.float32) / 2
        sx = torch.exp(-(bx.view(1, 1, -1) - cx.view(-1, 1, 1)).abs()).repeat(1, 17, 1)
        sy = torch.exp(-(by.view(1, 1, -1) - cy.view(-1, 1, 1)).abs()).repeat(1, 17, 1)
        return sx, sy


class HeatmapsTags(torch.nn.Module):
    """(N, 3, H, W) -> (N, 34, H/4, W/4): 17 Gaussian heatmaps peaked at the centroid, then 17 flat tags."""

    def forward(self, x):
        cx, cy = centroid(x)
        h, w = x.shape[2] // 4, x.shape[3] // 4
        gy = (torch.arange(h, dtype=torch.float32).view(1, h, 1) + 0.5) * 4
        gx = (torch.arange(w, dtype=torch.float32).view(1, 1, w) + 0.5) * 4
        hm = torch.exp(-((gx - cx.view(-1, 1, 1)) ** 2 + (gy - cy.view(-1, 1, 1)) ** 2) / 128.0).unsqueeze(1)
        return torch.cat([hm.repeat(1, 17, 1, 1), torch.zeros_like(hm).repeat(1, 17, 1, 1)], dim=1)


def export(module, shape, path, outputs):
    return export_onnx(module, {"image": torch.rand(*shape)}, path, outputs)


def config(tmp_path, models_dir, pose: dict, detector: bool = False):
    models = {"threads": 1, "pose": pose}
    if detector:
        models["person_detector"] = {"path": str(models_dir / "ssdlite_person.onnx")}
    path = tmp_path / "hawkwatch.yaml"
    path.write_text(yaml.safe_dump({"cameras": {"cam": {"path": str(path)}}, "models": models}))
    return load_config(path)


@pytest.mark.parametrize("channels, expected", [("rgb", RED), ("bgr", BLUE)])
def test_yolo_pose_model_finds_its_person_in_frame_pixels(tmp_path, models_dir, channels, expected):
    onnx_path = export(YoloPose(), (1, 3, 320, 320), tmp_path / "yolo.onnx", ["output0"])
    cfg = config(tmp_path, models_dir, {"path": str(onnx_path), "decoder": "yolo_pose", "input_size": [320, 320],
                                        "channels": channels})
    people = scene_from_config(cfg).people.find([frame(), frame()])
    for p in people:                              # letterboxed 640x360 -> 320x180 at y 70: and back
        assert p.keypoints.shape == (1, 17, 3)
        np.testing.assert_allclose(p.keypoints[0, :, :2], np.tile(expected, (17, 1)), atol=1.5)
        np.testing.assert_allclose(p.boxes[0], [expected[0] - 20, expected[1] - 20, expected[0] + 20, expected[1] + 20],
                                   atol=1.5)        # 20 input px = 40 frame px


def test_normalisation_from_the_config_is_applied(tmp_path, models_dir):
    """Grey 100 is dark at /255 (0.39 < 0.5) but bright in raw pixel units: the wrong normalisation
    finds the whole frame's centre instead of the red square."""
    onnx_path = export(YoloPose(), (1, 3, 320, 320), tmp_path / "yolo.onnx", ["output0"])
    raw = config(tmp_path, models_dir, {"path": str(onnx_path), "decoder": "yolo_pose", "mean": [0, 0, 0],
                                        "std": [1, 1, 1]})
    kp = scene_from_config(raw).people.find([frame()])[0].keypoints[0, 0, :2]
    assert np.linalg.norm(kp - RED) > 50


def test_heatmaps_and_tags_model_bottom_up(tmp_path, models_dir):
    onnx_path = export(HeatmapsTags(), (1, 3, 256, 384), tmp_path / "hrnet.onnx", ["heatmaps_tags"])
    cfg = config(tmp_path, models_dir, {"path": str(onnx_path), "decoder": "heatmaps_tags",
                                        "input_size": [384, 256]})
    p = scene_from_config(cfg).people.find([frame()])[0]
    assert len(p.scores) == 1                     # 17 joints, one tag: one person
    np.testing.assert_allclose(p.keypoints[0, :, :2], np.tile(RED, (17, 1)), atol=5.0)   # a 4x coarser grid


def test_simcc_model_top_down_on_person_boxes(tmp_path, models_dir):
    onnx_path = export(SimCC(), (1, 256, 192, 3), tmp_path / "rtmpose.onnx", ["simcc_x", "simcc_y"])
    cfg = config(tmp_path, models_dir, {"path": str(onnx_path), "decoder": "simcc", "input_size": [192, 256],
                                        "mean": [0, 0, 0], "std": [255, 255, 255], "crop_scale": 1.5},
                 detector=True)
    people = scene_from_config(cfg).people
    assert isinstance(people, TopDown) and people.pose.spec.layout == "nhwc"     # read from the model
    box = np.array([[400, 80, 460, 160]], np.float32)     # a person box around the red square, off centre
    kp = people.pose.estimate([frame()], [box])[0]
    np.testing.assert_allclose(kp[0, :, :2], np.tile(RED, (17, 1)), atol=1.0)
    assert np.all(kp[0, :, 2] > 0.5)


def test_a_model_that_contradicts_the_config_is_a_clear_error(tmp_path, models_dir):
    onnx_path = export(YoloPose(), (1, 3, 320, 320), tmp_path / "yolo.onnx", ["output0"])
    onnx_fixed = tmp_path / "fixed.onnx"
    import onnx
    m = onnx.load(str(onnx_path))
    for d, v in zip(m.graph.input[0].type.tensor_type.shape.dim, [1, 3, 320, 320]):
        d.dim_value = v                                       # a static input, as many exports have
    onnx.save(m, str(onnx_fixed))
    cfg = config(tmp_path, models_dir, {"path": str(onnx_fixed), "decoder": "yolo_pose", "input_size": [640, 640]})
    with pytest.raises(ConfigError, match=r"models.pose: .*input_size \[640, 640\].*320x320"):
        scene_from_config(cfg)
    cfg = config(tmp_path, models_dir, {"path": str(onnx_fixed), "decoder": "yolo_pose", "layout": "nhwc"})
    with pytest.raises(ConfigError, match="layout nhwc but the model's input .* is nchw"):
        scene_from_config(cfg)


def test_a_top_down_decoder_without_a_person_detector_is_a_config_error(tmp_path, models_dir):
    with pytest.raises(ConfigError, match="pose decoder simcc is top-down and needs person_detector"):
        config(tmp_path, models_dir, {"path": str(models_dir / "pose_landmark_full.onnx"), "decoder": "simcc"})
