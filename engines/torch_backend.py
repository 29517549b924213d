"""The torch backend: an ONNX graph run as a torch module, on CUDA when torch sees a GPU.

    engine = create_engine("torch", "models/pose_landmark_full.onnx")

The bundled models exist as ONNX files only (converted at set-up from the TFLite / TF files in
their wheels), so this backend builds the torch module from the same ONNX file: every initializer
becomes a buffer and every node a torch operation, executed in the graph's order. It covers the
operators the project's models use and names any other one. Why not onnx2torch: it is not
maintained for current torch and pulls in torchvision, which has no CPU wheel here.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from engines.registry import BackendUnavailable, register_backend


class UnsupportedOperator(ValueError):
    """The ONNX graph uses an operator this backend does not implement."""


def _attrs(node) -> dict:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _conv(F, x, w, b=None, *, pads=(0, 0, 0, 0), strides=(1, 1), dilations=(1, 1), group=1, **_):
    top, left, bottom, right = pads
    if (top, left) != (bottom, right):         # ONNX allows asymmetric padding, torch's conv does not
        x = F.pad(x, (left, right, top, bottom))
        top = left = 0
    return F.conv2d(x, w, b, stride=tuple(strides), padding=(top, left), dilation=tuple(dilations), groups=group)


def _pad(F, x, pads, value=None, *, mode=b"constant", **_):
    n = x.dim()
    pads = [int(p) for p in pads.tolist()]
    pairs = []
    for d in reversed(range(n)):                # torch wants (last begin, last end, ..., first begin, first end)
        pairs += [pads[d], pads[d + n]]
    fill = float(value.item()) if value is not None else 0.0
    return F.pad(x, pairs, mode=mode.decode() if mode != b"edge" else "replicate", value=fill)


def _resize(F, x, roi=None, scales=None, sizes=None, *, mode=b"nearest", coordinate_transformation_mode=b"half_pixel",
            **_):
    if sizes is not None and sizes.numel():
        size = [int(s) for s in sizes.tolist()[2:]]
    else:
        size = [int(np.floor(x.shape[2 + i] * float(s))) for i, s in enumerate(scales.tolist()[2:])]
    if mode == b"linear":
        if coordinate_transformation_mode not in (b"half_pixel", b"pytorch_half_pixel", b"align_corners"):
            raise UnsupportedOperator(f"Resize with coordinate_transformation_mode {coordinate_transformation_mode!r}")
        return F.interpolate(x, size=size, mode="bilinear",
                             align_corners=coordinate_transformation_mode == b"align_corners")
    return F.interpolate(x, size=size, mode="nearest")


def _slice(x, starts, ends, axes=None, steps=None):
    axes = axes.tolist() if axes is not None else list(range(len(starts)))
    index = [slice(None)] * x.dim()
    for i, a in enumerate(axes):
        step = int(steps[i]) if steps is not None else 1
        index[a] = slice(int(starts[i]), min(int(ends[i]), x.shape[a]), step)
    return x[tuple(index)]


def _reduce(fn, x, axes_input=None, *, axes=None, keepdims=1, **_):
    dims = axes if axes is not None else (axes_input.tolist() if axes_input is not None else list(range(x.dim())))
    return fn(x, dims, bool(keepdims))


def _gemm(a, b, c=None, *, alpha=1.0, beta=1.0, transA=0, transB=0):
    y = alpha * ((a.T if transA else a) @ (b.T if transB else b))
    return y if c is None else y + beta * c


def _ops(torch):
    F = torch.nn.functional
    return {
        "Add": lambda a, b: a + b, "Sub": lambda a, b: a - b, "Mul": lambda a, b: a * b, "Div": lambda a, b: a / b,
        "Exp": torch.exp, "Sigmoid": torch.sigmoid, "Relu": torch.relu, "Identity": lambda x: x,
        "Clip": lambda x, lo=None, hi=None: torch.clamp(x, None if lo is None else lo.item(),
                                                        None if hi is None else hi.item()),
        "Transpose": lambda x, *, perm: x.permute(*perm),
        "Reshape": lambda x, shape, **_: x.reshape([x.shape[i] if s == 0 else int(s)
                                                    for i, s in enumerate(shape.tolist())]),
        "Concat": lambda *xs, axis: torch.cat(xs, dim=axis),
        "Split": lambda x, split, *, axis=0: torch.split(x, [int(s) for s in split.tolist()], dim=axis),
        "Squeeze": lambda x, axes=None: x.squeeze() if axes is None else x.squeeze(tuple(axes.tolist())),
        "Slice": _slice,
        "Conv": lambda x, w, b=None, **a: _conv(F, x, w, b, **a),
        "MaxPool": lambda x, *, kernel_shape, strides=(1, 1), pads=(0, 0, 0, 0), **_: F.max_pool2d(
            F.pad(x, (pads[1], pads[3], pads[0], pads[2]), value=float("-inf")) if any(pads) else x,
            tuple(kernel_shape), tuple(strides)),
        "Pad": lambda x, pads, value=None, **a: _pad(F, x, pads, value, **a),
        "Gemm": _gemm, "MatMul": torch.matmul,
        "ReduceMean": lambda *xs, **a: _reduce(lambda t, d, k: t.mean(dim=d, keepdim=k), *xs, **a),
        "ReduceL2": lambda *xs, **a: _reduce(lambda t, d, k: t.norm(dim=d, keepdim=k), *xs, **a),
        "Resize": lambda x, roi=None, scales=None, sizes=None, **a: _resize(F, x, roi, scales, sizes, **a),
    }


class OnnxGraphModule:
    """An ONNX graph as a callable torch computation (inputs and outputs by name)."""

    def __init__(self, path: Path, device):
        import onnx
        import torch
        from onnx import numpy_helper

        model = onnx.load(str(path))
        self.torch, self.device = torch, device
        self.ops = _ops(torch)
        missing = sorted({n.op_type for n in model.graph.node} - set(self.ops))
        if missing:
            raise UnsupportedOperator(f"{Path(path).name}: the torch backend has no {', '.join(missing)}; "
                                      "use the onnxruntime backend for this model")
        self.consts = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()).to(device)
                       for i in model.graph.initializer}
        self.nodes = [(n.op_type, list(n.input), list(n.output), _attrs(n)) for n in model.graph.node]
        self.input_names = [i.name for i in model.graph.input if i.name not in self.consts]
        self.output_names = [o.name for o in model.graph.output]

    def __call__(self, feeds: dict) -> dict:
        env = dict(self.consts)
        env.update(feeds)
        for op, inputs, outputs, attrs in self.nodes:
            args = [env[i] if i else None for i in inputs]
            while args and args[-1] is None:
                args.pop()
            result = self.ops[op](*args, **attrs)
            if isinstance(result, (tuple, list)):
                env.update(zip(outputs, result))
            else:
                env[outputs[0]] = result
        return {name: env[name] for name in self.output_names}


class TorchEngine:
    backend = "torch"

    def __init__(self, path: Path, *, threads: int | None = None, device: str | None = None):
        try:
            import torch
        except ImportError:
            raise BackendUnavailable("torch is not installed (pip install torch==2.13.0)") from None
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable("the torch backend was asked for CUDA, and torch sees no GPU")
        if threads and device == "cpu":
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        self.graph = OnnxGraphModule(path, self.device)
        self.input_names, self.output_names = self.graph.input_names, self.graph.output_names
        self._torch = torch

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            x = {k: torch.from_numpy(np.ascontiguousarray(v)).to(self.device, non_blocking=True)
                 for k, v in feeds.items()}
            return {k: v.cpu().numpy() for k, v in self.graph(x).items()}


@register_backend("torch")
def _create(path: Path, *, threads: int | None = None, device: str | None = None) -> TorchEngine:
    return TorchEngine(path, threads=threads, device=device)
