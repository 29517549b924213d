"""The torch backend reproduces ONNX Runtime on the bundled models, and the project's own torch
modules export to ONNX with a dynamic batch that ONNX Runtime reproduces."""
from __future__ import annotations

import cv2
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from engines import BackendUnavailable, create_engine
from engines.export import ExportMismatch, check_onnx, export_onnx
from engines.torch_backend import UnsupportedOperator


@pytest.fixture(scope="module")
def inputs(vtest_frames):
    rgb = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in vtest_frames[:4]]
    return {"ssdlite_person": {"image": np.stack([cv2.resize(f, (300, 300)) for f in rgb]).astype(np.float32)},
            "pose_landmark_full": {"input_1": np.stack([cv2.resize(f[100:400, 300:600], (256, 256))
                                                        for f in rgb]).astype(np.float32) / 255}}


@pytest.mark.parametrize("model,tolerances", [
    ("ssdlite_person", {"boxes": 1e-5, "scores": 1e-5}),
    ("pose_landmark_full", {"Identity": 0.01, "Identity_1": 1e-4, "Identity_4": 1e-4}),   # landmarks: crop px
])
def test_torch_backend_reproduces_onnxruntime_on_real_frames(models_dir, inputs, model, tolerances):
    feeds = inputs[model]
    ref = create_engine("onnxruntime", models_dir / f"{model}.onnx", threads=2).run(feeds)
    engine = create_engine("torch", models_dir / f"{model}.onnx", threads=2)
    out = engine.run(feeds)
    assert engine.backend == "torch" and engine.output_names == list(ref)
    for name, tol in tolerances.items():
        assert out[name].shape == ref[name].shape
        assert np.abs(out[name] - ref[name]).max() < tol, name


def test_an_operator_the_torch_backend_lacks_is_named(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node("Gelu", ["x"], ["y"], domain="")], "g", [x], [y])
    onnx.save(helper.make_model(graph), tmp_path / "gelu.onnx")
    with pytest.raises(UnsupportedOperator, match="gelu.onnx: the torch backend has no Gelu; use the onnxruntime"):
        create_engine("torch", tmp_path / "gelu.onnx")


def test_asking_the_torch_backend_for_cuda_without_a_gpu_is_a_clear_error(models_dir):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(BackendUnavailable, match="asked for CUDA, and torch sees no GPU"):
        create_engine("torch", models_dir / "ssdlite_person.onnx", options={"torch": {"device": "cuda"}})


class TinyMotionNet(torch.nn.Module):
    """A stand-in for the project's own models (the Hawkeye model arrives with issue 5)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 8, 3, stride=2, padding=1)
        self.head = torch.nn.Linear(8, 5)

    def forward(self, flow):
        h = torch.relu(self.conv(flow)).mean(dim=(2, 3))
        return self.head(h), h.norm(dim=1)


def test_export_gives_a_dynamic_batch_that_onnxruntime_and_every_backend_reproduce(tmp_path):
    torch.manual_seed(0)
    net = TinyMotionNet()
    path = export_onnx(net, {"flow": torch.randn(2, 2, 32, 32)}, tmp_path / "motion.onnx", ["logits", "energy"])
    worst = check_onnx(net, path, {"flow": torch.randn(7, 2, 32, 32)})     # another batch size than exported
    assert worst < 1e-5
    x = torch.randn(3, 2, 32, 32)
    expected = net(x)[0].detach().numpy()
    for backend in ("onnxruntime", "torch"):
        out = create_engine(backend, path).run({"flow": x.numpy()})
        assert np.allclose(out["logits"], expected, atol=1e-5), backend


def test_a_drifting_export_is_caught_naming_the_output(tmp_path):
    torch.manual_seed(0)
    net = TinyMotionNet()
    path = export_onnx(net, {"flow": torch.randn(2, 2, 32, 32)}, tmp_path / "motion.onnx", ["logits", "energy"])
    model = onnx.load(str(path))
    for init in model.graph.initializer:                   # corrupt the head's bias, as a bad export would
        if init.name.endswith("head.bias"):
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + 0.1, init.name))
    onnx.save(model, str(path))
    with pytest.raises(ExportMismatch, match="motion.onnx: output 'logits' differs from torch by up to 0.1"):
        check_onnx(net, path, {"flow": torch.randn(4, 2, 32, 32)})
