"""ONNX export for the project's own torch models, with the check that ONNX Runtime reproduces them.

    path = export_onnx(model, {"frames": example}, "models/motion.onnx", output_names=["features"])
    worst = check_onnx(model, path, {"frames": other_batch})      # raises ExportMismatch if it drifts

Every input and output gets a dynamic batch dimension (dimension 0), so the exported model runs
batched across cameras on every backend, TensorRT's optimisation profiles included.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

OPSET = 17


class ExportMismatch(AssertionError):
    """ONNX Runtime's outputs differ from torch's beyond the tolerance; the message names the output."""


def export_onnx(module, inputs: dict, path: str | Path, output_names: list[str], *, opset: int = OPSET) -> Path:
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = module.eval()
    names = list(inputs)
    dynamic = {n: {0: "batch"} for n in [*names, *output_names]}
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=DeprecationWarning)
        torch.onnx.export(module, tuple(inputs[n] for n in names), str(path), input_names=names,
                          output_names=output_names, dynamic_axes=dynamic, opset_version=opset, dynamo=False)
    return path


def check_onnx(module, path: str | Path, inputs: dict, *, atol: float = 1e-4, rtol: float = 1e-3) -> float:
    """Run the module and the ONNX file (ONNX Runtime, CPU) on the same inputs; returns the largest
    absolute difference, or raises ExportMismatch naming the output that drifts."""
    import onnxruntime as ort
    import torch

    with torch.inference_mode():
        expected = module.eval()(*inputs.values())
    expected = expected if isinstance(expected, (tuple, list)) else (expected,)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {k: v.numpy() for k, v in inputs.items()})
    worst = 0.0
    for out, e, g in zip(session.get_outputs(), expected, got):
        e = e.numpy()
        if e.shape != g.shape:
            raise ExportMismatch(f"{Path(path).name}: output {out.name!r} has shape {g.shape}, torch gives {e.shape}")
        err = float(np.max(np.abs(e - g))) if e.size else 0.0
        if not np.allclose(g, e, atol=atol, rtol=rtol):
            raise ExportMismatch(f"{Path(path).name}: output {out.name!r} differs from torch by up to {err:.3g} "
                                 f"(atol {atol:g}, rtol {rtol:g})")
        worst = max(worst, err)
    return worst
