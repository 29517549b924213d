"""Convert a TensorFlow Lite flatbuffer to ONNX without TensorFlow.

Covers the ops of the float (fp16-stored) vision models Hawkwatch ships, e.g. MediaPipe's BlazePose
landmark model: CONV_2D, DEPTHWISE_CONV_2D, ADD, PAD, MAX_POOL_2D, RESIZE_BILINEAR, RESHAPE,
CONCATENATION, LOGISTIC and DEQUANTIZE of fp16 constants. Anything else is a ConversionError
naming the op. The batch dimension becomes dynamic so that crops from many cameras run in one call.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import tflite

from engines.convert.graph import ConversionError, GraphBuilder, same_padding

_OP_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
_ACTIVATIONS = {0: "none", 1: "relu", 2: "relu_n1_to_1", 3: "relu6", 4: "tanh"}
_DTYPES = {tflite.TensorType.FLOAT32: np.float32, tflite.TensorType.FLOAT16: np.float16,
           tflite.TensorType.INT32: np.int32, tflite.TensorType.INT64: np.int64}


def _options(op, cls):
    table = op.BuiltinOptions()
    opts = cls()
    opts.Init(table.Bytes, table.Pos)
    return opts


class _TfliteGraph:
    """Reads tensors, constants and operators of subgraph 0."""

    def __init__(self, data: bytes):
        self.model = tflite.Model.GetRootAsModel(data, 0)
        if self.model.SubgraphsLength() != 1:
            raise ConversionError("only single-subgraph tflite models are supported")
        self.g = self.model.Subgraphs(0)

    def tensor(self, i: int):
        return self.g.Tensors(i)

    def name(self, i: int) -> str:
        return self.tensor(i).Name().decode()

    def shape(self, i: int) -> list[int]:
        return [int(d) for d in self.tensor(i).ShapeAsNumpy()]

    def constant(self, i: int) -> np.ndarray | None:
        t = self.tensor(i)
        raw = self.model.Buffers(t.Buffer()).DataAsNumpy()
        if isinstance(raw, int) or raw.size == 0:
            return None
        if t.Type() not in _DTYPES:
            raise ConversionError(f"tensor {self.name(i)!r} has unsupported type {t.Type()}")
        return raw.view(_DTYPES[t.Type()]).reshape(self.shape(i))

    def ops(self):
        for k in range(self.g.OperatorsLength()):
            op = self.g.Operators(k)
            code = self.model.OperatorCodes(op.OpcodeIndex())
            opcode = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            yield _OP_NAMES.get(opcode, str(opcode)), op, list(op.InputsAsNumpy()), list(op.OutputsAsNumpy())


def convert_tflite(path: str | Path) -> onnx.ModelProto:
    src = _TfliteGraph(Path(path).read_bytes())
    b = GraphBuilder(Path(path).stem)
    consts: dict[int, np.ndarray] = {}
    names: dict[int, str] = {}

    def const_of(i: int) -> np.ndarray:
        if i not in consts:
            c = src.constant(i)
            if c is None:
                raise ConversionError(f"tensor {src.name(i)!r} should be a constant")
            consts[i] = c
        return consts[i]

    def value(i: int) -> str:
        if i in names:
            return names[i]
        c = consts.get(i) if i in consts else src.constant(i)
        if c is None:
            raise ConversionError(f"tensor {src.name(i)!r} is used before it is produced")
        names[i] = b.const(c.astype(np.float32) if c.dtype == np.float16 else c, "c")
        return names[i]

    graph_inputs = [int(i) for i in src.g.InputsAsNumpy()]
    graph_outputs = [int(i) for i in src.g.OutputsAsNumpy()]
    for i in graph_inputs:
        names[i] = src.name(i)
    out_names = {i: src.name(i) for i in graph_outputs}

    for opname, op, ins, outs in src.ops():
        out = outs[0]
        oname = out_names.get(out)
        if opname == "DEQUANTIZE":
            c = src.constant(ins[0])
            if c is None or c.dtype != np.float16:
                raise ConversionError("DEQUANTIZE is supported for fp16 constants only")
            consts[out] = c.astype(np.float32)
            continue
        if opname in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            depthwise = opname == "DEPTHWISE_CONV_2D"
            o = _options(op, tflite.DepthwiseConv2DOptions if depthwise else tflite.Conv2DOptions)
            w = const_of(ins[1]).astype(np.float32)
            bias = const_of(ins[2]).astype(np.float32) if len(ins) > 2 and ins[2] >= 0 else None
            in_shape = src.shape(ins[0])
            strides = (o.StrideH(), o.StrideW())
            dil = (o.DilationHFactor(), o.DilationWFactor())
            kh, kw = w.shape[1], w.shape[2]
            if o.Padding() == tflite.Padding.SAME:
                (pt, pb), (pl, pr) = (same_padding(in_shape[1], kh, strides[0], dil[0]),
                                      same_padding(in_shape[2], kw, strides[1], dil[1]))
            else:
                pt = pb = pl = pr = 0
            if depthwise:  # (1, H, W, C*M) -> (C*M, 1, H, W), one group per input channel
                w_oihw, group = w.transpose(3, 0, 1, 2), in_shape[3]
            else:  # (O, H, W, I) -> (O, I, H, W)
                w_oihw, group = w.transpose(0, 3, 1, 2), 1
            act = _ACTIVATIONS[o.FusedActivationFunction()]
            y = b.conv_nhwc(value(ins[0]), w_oihw, bias, strides=strides, pads=(pt, pl, pb, pr),
                            dilations=dil, group=group)
            names[out] = b.activation(y, act, oname)
        elif opname == "ADD":
            act = _ACTIVATIONS[_options(op, tflite.AddOptions).FusedActivationFunction()]
            names[out] = b.activation(b.node("Add", [value(ins[0]), value(ins[1])]), act, oname)
        elif opname == "PAD":
            pads = const_of(ins[1]).astype(np.int64)  # (rank, 2): before, after
            names[out] = b.node("Pad", [value(ins[0]), b.const(np.concatenate([pads[:, 0], pads[:, 1]]))],
                                oname, mode="constant")
        elif opname == "MAX_POOL_2D":
            o = _options(op, tflite.Pool2DOptions)
            in_shape = src.shape(ins[0])
            k, s = (o.FilterHeight(), o.FilterWidth()), (o.StrideH(), o.StrideW())
            if o.Padding() == tflite.Padding.SAME:
                (pt, pb), (pl, pr) = same_padding(in_shape[1], k[0], s[0]), same_padding(in_shape[2], k[1], s[1])
            else:
                pt = pb = pl = pr = 0
            act = _ACTIVATIONS[o.FusedActivationFunction()]
            y = b.maxpool_nhwc(value(ins[0]), kernel=k, strides=s, pads=(pt, pl, pb, pr))
            names[out] = b.activation(y, act, oname)
        elif opname == "RESIZE_BILINEAR":
            o = _options(op, tflite.ResizeBilinearOptions)
            ih, iw = src.shape(ins[0])[1:3]
            oh, ow = src.shape(out)[1:3]
            mode = ("align_corners" if o.AlignCorners() else
                    "half_pixel" if o.HalfPixelCenters() else "asymmetric")
            names[out] = b.resize_nhwc(value(ins[0]), (oh / ih, ow / iw), mode, oname)
        elif opname == "RESHAPE":
            target = [int(d) for d in src.shape(out)]
            if src.shape(ins[0])[0] == 1 and target and target[0] == 1:
                target[0] = 0  # keep the (now dynamic) batch dimension
            names[out] = b.node("Reshape", [value(ins[0]), b.const(np.array(target, np.int64))], oname)
        elif opname == "CONCATENATION":
            o = _options(op, tflite.ConcatenationOptions)
            act = _ACTIVATIONS[o.FusedActivationFunction()]
            names[out] = b.activation(b.node("Concat", [value(i) for i in ins], axis=o.Axis()), act, oname)
        elif opname == "LOGISTIC":
            names[out] = b.node("Sigmoid", [value(ins[0])], oname)
        else:
            raise ConversionError(f"tflite op {opname} is not supported by the converter")

    for i in graph_outputs:
        if names.get(i) != out_names[i]:  # an output that is a plain alias of another tensor
            b.node("Identity", [value(i)], out_names[i])
    inputs = [(src.name(i), [None, *src.shape(i)[1:]]) for i in graph_inputs]
    return b.build(inputs, [out_names[i] for i in graph_outputs],
                   doc=f"converted from {Path(path).name} by engines.convert.tflite")
