"""A small ONNX graph builder shared by the model converters (tflite, TensorFlow GraphDef).

Both source formats are NHWC. The builder keeps every tensor in NHWC and wraps the
layout-sensitive ops (Conv, MaxPool, Resize) in a Transpose pair; ONNX Runtime's transpose
optimiser cancels the pairs between consecutive ops, and TensorRT does the same, so the graph
stays a faithful op-for-op copy of the source while running in the layout the engines like.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
NHWC_TO_NCHW = [0, 3, 1, 2]
NCHW_TO_NHWC = [0, 2, 3, 1]


class ConversionError(ValueError):
    """The source model uses something the converter does not support; the message names it."""


def same_padding(in_size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's SAME padding (more on the end side when the total is odd)."""
    out = -(-in_size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - in_size, 0)
    return total // 2, total - total // 2


class GraphBuilder:
    def __init__(self, name: str):
        self.name = name
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, np.ndarray] = {}
        self._counter = 0

    def fresh(self, hint: str) -> str:
        self._counter += 1
        return f"{hint}__{self._counter}"

    def const(self, array: np.ndarray, hint: str = "const") -> str:
        name = self.fresh(hint)
        self.initializers[name] = np.ascontiguousarray(array)
        return name

    def node(self, op: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        output = output or self.fresh(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [output], name=self.fresh(op), **attrs))
        return output

    def activation(self, x: str, kind: str, output: str | None = None) -> str:
        """Apply a fused activation by its name (none, relu, relu6, relu_n1_to_1, tanh); `output`
        names the result (for "none" through an Identity, only needed for a graph output)."""
        if kind == "none":
            return self.node("Identity", [x], output) if output else x
        if kind == "relu":
            return self.node("Relu", [x], output)
        if kind in ("relu6", "relu_n1_to_1"):
            lo, hi = (0.0, 6.0) if kind == "relu6" else (-1.0, 1.0)
            return self.node("Clip", [x, self.const(np.float32(lo)), self.const(np.float32(hi))], output)
        if kind == "tanh":
            return self.node("Tanh", [x], output)
        raise ConversionError(f"unsupported fused activation {kind!r}")

    def _nchw(self, op: str, x: str, extra: list[str], output: str | None, **attrs) -> str:
        t = self.node("Transpose", [x], perm=NHWC_TO_NCHW)
        y = self.node(op, [t, *extra], **attrs)
        return self.node("Transpose", [y], output, perm=NCHW_TO_NHWC)

    def conv_nhwc(self, x: str, weight_oihw: np.ndarray, bias: np.ndarray | None, *, strides, pads,
                  dilations=(1, 1), group: int = 1, output: str | None = None) -> str:
        """pads: (top, left, bottom, right)."""
        inputs = [self.const(weight_oihw.astype(np.float32), "w")]
        if bias is not None:
            inputs.append(self.const(bias.astype(np.float32), "b"))
        return self._nchw("Conv", x, inputs, output, strides=list(strides), pads=list(pads),
                          dilations=list(dilations), group=group,
                          kernel_shape=list(weight_oihw.shape[2:]))

    def maxpool_nhwc(self, x: str, *, kernel, strides, pads, output: str | None = None) -> str:
        return self._nchw("MaxPool", x, [], output, kernel_shape=list(kernel), strides=list(strides),
                          pads=list(pads))

    def resize_nhwc(self, x: str, scale_hw: tuple[float, float], mode: str, output: str | None = None) -> str:
        scales = self.const(np.array([1.0, 1.0, *scale_hw], np.float32), "scales")
        return self._nchw("Resize", x, ["", scales], output, mode="linear",
                          coordinate_transformation_mode=mode)

    def resize_to_nhwc(self, x: str, size_hw: list[int], mode: str, output: str | None = None) -> str:
        """Bilinear resize to a fixed (height, width); the batch and channels are read from the
        tensor at run time (opset 17 has no `axes`, so the 4-D `sizes` is built in the graph)."""
        t = self.node("Transpose", [x], perm=NHWC_TO_NCHW)
        lead = self.node("Slice", [self.node("Shape", [t]), self.const(np.array([0], np.int64)),
                                   self.const(np.array([2], np.int64))])
        sizes = self.node("Concat", [lead, self.const(np.array(size_hw, np.int64))], axis=0)
        y = self.node("Resize", [t, "", "", sizes], mode="linear", coordinate_transformation_mode=mode)
        return self.node("Transpose", [y], output, perm=NCHW_TO_NHWC)

    def build(self, inputs: list[tuple[str, list]], outputs: list[str], doc: str = "") -> onnx.ModelProto:
        """inputs: (name, shape) with None for the dynamic batch dimension; all float32."""
        graph_inputs = [
            helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch" if d is None else d for d in shape])
            for n, shape in inputs]
        graph_outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs]
        used = {i for n in self.nodes for i in n.input}
        inits = [numpy_helper.from_array(a, n) for n, a in self.initializers.items() if n in used]
        graph = helper.make_graph(self.nodes, self.name, graph_inputs, graph_outputs, inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="hawkwatch.engines.convert", doc_string=doc)
        model.ir_version = 8  # readable by every ONNX Runtime and TensorRT 10 parser in use
        model = onnx.shape_inference.infer_shapes(model)
        onnx.checker.check_model(model)
        return model
