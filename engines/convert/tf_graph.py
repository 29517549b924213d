"""Convert a TensorFlow graph (a frozen GraphDef .pb, or a TensorFlow.js graph model through
engines/convert/tfjs.py) to ONNX without TensorFlow.

The GraphDef is read with a minimal protobuf wire-format reader (the schema is tiny and stable),
so neither tensorflow nor its generated protos are needed. Covers the ops of MobileNet/SSD-style
detector cores, of NanoDet and of BlazePose: Conv2D, DepthwiseConv2dNative, FusedBatchNorm(V3)
(folded into the convolution), the fused convolutions _FusedConv2D and FusedDepthwiseConv2dNative
(BiasAdd or FusedBatchNorm, then Relu/Relu6/LeakyRelu/Elu/Sigmoid/Tanh/Prelu), BiasAdd,
Relu/Relu6/LeakyRelu/Sigmoid, Add/AddV2/Mul/Sub, ConcatV2, Identity, Transpose, Pad/PadV2, MaxPool,
ResizeBilinear, SplitV, and Reshape whose target shape is constant or packs the batch size read
from Shape (the usual `[batch, -1, ...]` pattern). Constant
subgraphs an exporter left behind (SparseToDense, Cast, arithmetic on constants) are evaluated
during conversion.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from engines.convert.graph import ConversionError, GraphBuilder, same_padding

_TF_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64}


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, i


def _fields(buf: bytes):
    """Yield (field number, wire type, value) of one protobuf message."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        elif wire == 2:
            length, i = _varint(buf, i)
            value, i = buf[i:i + length], i + length
        else:
            raise ConversionError(f"unsupported protobuf wire type {wire}")
        yield num, wire, value


def _packed_ints(wire: int, value) -> list[int]:
    if wire == 0:
        return [value]
    out, i = [], 0
    while i < len(value):
        v, i = _varint(value, i)
        out.append(v)
    return out


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _tensor(buf: bytes) -> np.ndarray:
    """TensorProto: dtype=1, tensor_shape=2, tensor_content=4, float_val=5, int_val=7, int64_val=10."""
    dtype, dims, content, floats, ints = 1, [], None, [], []
    for num, wire, value in _fields(buf):
        if num == 1:
            dtype = value
        elif num == 2:
            dims = [_signed(dict((n, v) for n, _, v in _fields(d)).get(1, 0))
                    for n, _, d in _fields(value) if n == 2]
        elif num == 4:
            content = value
        elif num == 5:
            floats += ([struct.unpack("<f", value)[0]] if wire == 5 else
                       list(np.frombuffer(value, "<f4")))
        elif num in (7, 10):
            ints += [_signed(v) for v in _packed_ints(wire, value)]
    if dtype not in _TF_DTYPES:
        raise ConversionError(f"unsupported TensorFlow dtype {dtype}")
    np_type = _TF_DTYPES[dtype]
    count = int(np.prod(dims)) if dims else 1
    if content is not None:
        return np.frombuffer(content, np_type).reshape(dims).copy()
    values = np.array(floats if floats else ints, np_type)
    if values.size == count:
        return values.reshape(dims)
    return np.full(dims, values[0] if values.size else 0, np_type)  # TF stores splats once


def _attr(buf: bytes):
    """AttrValue: list=1, s=2, i=3, f=4, b=5, type=6, tensor=8."""
    for num, wire, value in _fields(buf):
        if num == 1:
            items = []
            for n, w, v in _fields(value):
                if n == 2:
                    items.append(v.decode())
                elif n == 3:
                    items += [_signed(x) for x in _packed_ints(w, v)]
                elif n == 4:
                    items += list(np.frombuffer(v, "<f4")) if w == 2 else [struct.unpack("<f", v)[0]]
            return items
        if num == 2:
            return value.decode()
        if num in (3, 6):
            return _signed(value)
        if num == 4:
            return struct.unpack("<f", value)[0]
        if num == 5:
            return bool(value)
        if num == 8:
            return _tensor(value)
    return None


@dataclass
class _Node:
    name: str
    op: str = ""
    inputs: list[str] = field(default_factory=list)
    raw_attrs: dict[str, bytes] = field(default_factory=dict)

    def attr(self, key: str, default=None):
        """Attributes are decoded on use: nodes outside the converted subgraph may hold types
        (strings, resources) that the converter has no reason to understand."""
        return _attr(self.raw_attrs[key]) if key in self.raw_attrs else default


def read_graphdef(data: bytes) -> dict[str, _Node]:
    """GraphDef: node=1; NodeDef: name=1, op=2, input=3, attr=5 (map entries key=1, value=2)."""
    nodes = {}
    for num, _, value in _fields(data):
        if num != 1:
            continue
        node = _Node("")
        for n, _, v in _fields(value):
            if n == 1:
                node.name = v.decode()
            elif n == 2:
                node.op = v.decode()
            elif n == 3:
                node.inputs.append(v.decode())
            elif n == 5:
                entry = {k: x for k, _, x in _fields(v)}
                node.raw_attrs[entry[1].decode()] = entry.get(2, b"")
        nodes[node.name] = node
    return nodes


def _node_name(tensor: str) -> str:
    """The node a tensor reference names: "x", "x:0", "x:1" and "^x" (a control input) are all node x."""
    return tensor.lstrip("^").split(":")[0]


def _tensor_key(tensor: str) -> str:
    """The key of a tensor among the converted values: a node's first output is the node's name,
    its others "node:k" (SplitV)."""
    name = tensor.lstrip("^")
    return name[:-2] if name.endswith(":0") else name


_BATCH = 0  # in an ONNX Reshape target, 0 copies the input's dimension: the dynamic batch

# Constant subgraphs (shape arithmetic an exporter left in the graph) are evaluated at conversion.
def _sparse_to_dense(indices, shape, values, default) -> np.ndarray:
    out = np.full(np.atleast_1d(shape).astype(np.int64), default, np.asarray(default).dtype)
    idx = np.asarray(indices, np.int64).reshape(len(indices), -1) if np.size(indices) else np.zeros((0, out.ndim), np.int64)
    out[tuple(idx.T)] = values
    return out


_FOLD = {
    "Identity": lambda x: x,
    "Cast": lambda x: x,
    "Add": np.add, "AddV2": np.add, "Sub": np.subtract, "Mul": np.multiply,
    "SparseToDense": _sparse_to_dense,
}


# convolution op -> depthwise?; TensorFlow's grappler (and so TensorFlow.js graph models) fuses the
# bias or batch norm and the activation that follow a convolution into _FusedConv2D and
# FusedDepthwiseConv2dNative, listing them in `fused_ops` with their arguments after the weights.
_CONVOLUTIONS = {"Conv2D": False, "DepthwiseConv2dNative": True,
                 "_FusedConv2D": False, "FusedDepthwiseConv2dNative": True}
_FUSED = ("_FusedConv2D", "FusedDepthwiseConv2dNative")
_FUSED_ACTIVATIONS = ("Relu", "Relu6", "LeakyRelu", "Elu", "Sigmoid", "Tanh", "Prelu")


def _fold_batch_norm(w_oihw: np.ndarray, gamma, beta, mean, var, epsilon: float):
    """The weights and bias of conv followed by y = (x - mean) / sqrt(var + eps) * gamma + beta."""
    gamma, beta, mean, var = (np.asarray(a, np.float32) for a in (gamma, beta, mean, var))
    scale = gamma / np.sqrt(var + epsilon)
    return w_oihw * scale[:, None, None, None], beta - mean * scale


def _fused_epilogue(node, fused: list[str], args: list[np.ndarray], w_oihw: np.ndarray):
    """(weights, bias, (activation, its parameter)) of a fused convolution: `fused_ops` is
    [BiasAdd | FusedBatchNorm] then at most one activation; `args` are the node's inputs after the
    weights (bias; or scale, offset, mean, variance), then Prelu's slopes."""
    first, rest = fused[0], fused[1:]
    if first == "BiasAdd":
        bias, args = np.asarray(args[0], np.float32), args[1:]
    elif first == "FusedBatchNorm":
        w_oihw, bias = _fold_batch_norm(w_oihw, *args[:4], node.attr("epsilon", 1e-3))
        args = args[4:]
    else:
        raise ConversionError(f"{node.name}: fused op {first} is not supported (fused_ops {fused})")
    if len(rest) > 1 or (rest and rest[0] not in _FUSED_ACTIVATIONS):
        raise ConversionError(f"{node.name}: fused_ops {fused} are not supported")
    kind = rest[0] if rest else "none"
    if kind == "Prelu":
        if not args:
            raise ConversionError(f"{node.name}: fused Prelu without its slopes")
        return w_oihw, bias, (kind, np.asarray(args[0], np.float32))
    return w_oihw, bias, (kind, node.attr("leakyrelu_alpha", 0.2))


def _activation(b: GraphBuilder, x: str, kind: str, alpha, output: str | None) -> str:
    """A fused convolution's activation, by its TensorFlow name."""
    if kind in ("Relu", "Relu6", "Tanh", "none"):
        return b.activation(x, kind.lower(), output)
    if kind == "LeakyRelu":
        return b.node("LeakyRelu", [x], output, alpha=float(alpha))
    if kind == "Prelu":       # slopes per channel (C,), or (1, 1, C): both broadcast over NHWC
        return b.node("PRelu", [x, b.const(np.asarray(alpha, np.float32), "slope")], output)
    return b.node(kind, [x], output)    # Elu (alpha 1, as TensorFlow's), Sigmoid


def convert_tf_graph(path: str | Path, inputs: dict[str, tuple[str, list]],
                     outputs: dict[str, str]) -> onnx.ModelProto:
    """A frozen GraphDef (.pb) to ONNX. inputs: TF tensor -> (ONNX name, NHWC shape with None for
    batch); outputs: TF tensor -> ONNX name."""
    return convert_nodes(read_graphdef(Path(path).read_bytes()), Path(path).name, inputs, outputs)


def convert_nodes(nodes: dict, source: str, inputs: dict[str, tuple[str, list]],
                  outputs: dict[str, str], *, fixed_batch: bool = False) -> onnx.ModelProto:
    """Convert the subgraph between `inputs` and `outputs` of a TensorFlow graph given as nodes
    (name -> object with .name, .op, .inputs and .attr(key, default)): a GraphDef's, or a
    TensorFlow.js graph model's (engines/convert/tfjs.py). `fixed_batch`: the graph was frozen at
    batch 1, so a Reshape target that starts with 1 keeps the input's batch instead."""
    in_map = {_node_name(k): v[0] for k, v in inputs.items()}
    out_map = {_tensor_key(k): v for k, v in outputs.items()}
    for name in [*in_map, *map(_node_name, out_map)]:
        if name not in nodes:
            raise ConversionError(f"tensor {name!r} is not in {source}")

    consumers: dict[str, list[str]] = {}
    for node in nodes.values():
        for i in node.inputs:
            consumers.setdefault(_node_name(i), []).append(node.name)

    order, seen, stack = [], set(in_map), [(_node_name(n), False) for n in out_map]
    while stack:  # iterative post-order DFS from the outputs, stopping at the inputs
        name, done = stack.pop()
        if done:
            order.append(name)
            continue
        if name in seen:
            continue
        seen.add(name)
        stack.append((name, True))
        stack += [(_node_name(i), False) for i in nodes[name].inputs if not i.startswith("^")]

    b = GraphBuilder(Path(source).stem)
    names: dict[str, str] = dict(in_map)
    shapes: dict[str, list] = {_node_name(k): v[1] for k, v in inputs.items()}
    folded: dict[str, str] = {}  # batch-norm name -> the convolution it was folded into
    constants: dict[str, np.ndarray] = {}
    not_constant: set[str] = set()

    def const(name: str) -> np.ndarray:
        key = _node_name(name)
        if key in constants:
            return constants[key]
        node = nodes[key]
        if node.op == "Const":
            value_ = node.attr("value")
        elif node.op in _FOLD and key not in in_map and key not in not_constant:
            try:
                value_ = _FOLD[node.op](*(const(i) for i in node.inputs if not i.startswith("^")))
            except ConversionError:
                not_constant.add(key)
                raise
        else:
            raise ConversionError(f"{node.name!r} ({node.op}) should be a constant")
        constants[key] = np.asarray(value_)
        return constants[key]

    def is_const(name: str) -> bool:
        try:
            const(name)
            return True
        except ConversionError:
            return False

    def static_shape_value(name: str) -> list[int]:
        """A Reshape target: constants, or the batch size taken from Shape(x)[0]."""
        node = nodes[_node_name(name)]
        if node.op == "Pack":
            return [v for i in node.inputs for v in static_shape_value(i)]
        if node.op == "StridedSlice" and nodes[_node_name(node.inputs[0])].op == "Shape":
            begin, end = const(node.inputs[1]), const(node.inputs[2])
            if list(begin) == [0] and list(end) == [1]:
                return [_BATCH]
        if is_const(name):
            target = [int(v) for v in np.atleast_1d(const(name))]
            return [_BATCH, *target[1:]] if fixed_batch and target and target[0] == 1 else target
        raise ConversionError(f"cannot resolve the shape computed by {node.name!r} ({node.op})")

    def value(tensor: str) -> str:
        key = _tensor_key(tensor)
        if key not in names:
            names[key] = b.const(const(tensor), "c")
        return names[key]

    def single_bn_consumer(name: str):
        users = consumers.get(name, [])
        if len(users) == 1 and nodes[users[0]].op in ("FusedBatchNorm", "FusedBatchNormV3"):
            return nodes[users[0]]
        return None

    for name in order:
        node, out = nodes[name], out_map.get(name)
        op = node.op
        if op in ("Const", "Shape", "StridedSlice", "Pack") or (op in _FOLD and is_const(name)):
            continue  # constants are emitted on use; shape arithmetic is resolved where it is used
        src = _node_name(node.inputs[0]) if node.inputs else None
        if op == "Identity":
            if out:
                names[name] = b.node("Identity", [value(node.inputs[0])], out)
            else:
                names[name] = value(node.inputs[0])
            shapes[name] = shapes.get(src)
        elif op in _CONVOLUTIONS:
            if node.attr("data_format", "NHWC") != "NHWC":
                raise ConversionError(f"{name}: only NHWC convolutions are supported")
            w = const(node.inputs[1]).astype(np.float32)  # (H, W, I, O) or (H, W, C, M)
            kh, kw, cin, cm = w.shape
            if not _CONVOLUTIONS[op]:
                w_oihw, group = w.transpose(3, 2, 0, 1), 1
            else:
                w_oihw, group = w.reshape(kh, kw, cin * cm).transpose(2, 0, 1)[:, None], cin
            bias, activation = None, ("none", [])
            fused = node.attr("fused_ops", []) if op in _FUSED else []
            if fused:
                w_oihw, bias, activation = _fused_epilogue(node, fused, [const(i) for i in node.inputs[2:]], w_oihw)
            bn = single_bn_consumer(name) if not fused else None
            if bn is not None:  # fold y = (conv - mean) / sqrt(var + eps) * gamma + beta
                w_oihw, bias = _fold_batch_norm(w_oihw, *(const(i) for i in bn.inputs[1:5]), bn.attr("epsilon", 1e-3))
                folded[bn.name] = name
            strides = node.attr("strides", [1, 1, 1, 1])[1:3]
            dil = node.attr("dilations", [1, 1, 1, 1])[1:3]
            in_shape = shapes.get(src)
            if node.attr("padding") == "SAME":
                if in_shape is None:
                    raise ConversionError(f"{name}: input shape unknown for SAME padding")
                (pt, pb), (pl, pr) = (same_padding(in_shape[1], kh, strides[0], dil[0]),
                                      same_padding(in_shape[2], kw, strides[1], dil[1]))
            elif node.attr("padding") == "VALID":
                pt = pb = pl = pr = 0
            else:
                raise ConversionError(f"{name}: padding {node.attr('padding')!r} is not supported")
            if in_shape is not None:
                oh = (in_shape[1] + pt + pb - (kh - 1) * dil[0] - 1) // strides[0] + 1
                ow = (in_shape[2] + pl + pr - (kw - 1) * dil[1] - 1) // strides[1] + 1
                shapes[name] = [None, oh, ow, w_oihw.shape[0]]
            kind, alpha = activation
            y = b.conv_nhwc(value(node.inputs[0]), w_oihw, bias, strides=strides, pads=(pt, pl, pb, pr),
                            dilations=dil, group=group, output=out if kind == "none" else None)
            names[name] = y if kind == "none" else _activation(b, y, kind, alpha, out)
        elif op in ("FusedBatchNorm", "FusedBatchNormV3"):
            if folded.get(name) != src:
                raise ConversionError(f"{name}: batch norm not directly after a convolution")
            names[name], shapes[name] = names[src], shapes.get(src)
            if out:
                names[name] = b.node("Identity", [names[src]], out)
        elif op in ("BiasAdd", "Add", "AddV2", "Mul", "Sub"):
            onnx_op = {"BiasAdd": "Add", "AddV2": "Add"}.get(op, op)
            names[name] = b.node(onnx_op, [value(node.inputs[0]), value(node.inputs[1])], out)
            shapes[name] = next((shapes[_node_name(i)] for i in node.inputs if _node_name(i) in shapes), None)
        elif op in ("Relu", "Relu6"):
            names[name] = b.activation(value(node.inputs[0]), op.lower(), out)
            shapes[name] = shapes.get(src)
        elif op == "LeakyRelu":
            names[name] = b.node("LeakyRelu", [value(node.inputs[0])], out, alpha=float(node.attr("alpha", 0.2)))
            shapes[name] = shapes.get(src)
        elif op == "Sigmoid":
            names[name] = b.node("Sigmoid", [value(node.inputs[0])], out)
            shapes[name] = shapes.get(src)
        elif op == "ConcatV2":
            axis = int(const(node.inputs[-1]))
            names[name] = b.node("Concat", [value(i) for i in node.inputs[:-1]], out, axis=axis)
        elif op == "Reshape":
            target = np.array(static_shape_value(node.inputs[1]), np.int64)
            names[name] = b.node("Reshape", [value(node.inputs[0]), b.const(target)], out)
        elif op == "Transpose":
            perm = [int(v) for v in const(node.inputs[1])]
            names[name] = b.node("Transpose", [value(node.inputs[0])], out, perm=perm)
            if shapes.get(src) is not None:
                shapes[name] = [shapes[src][p] for p in perm]
        elif op in ("Pad", "PadV2"):
            pads = const(node.inputs[1]).astype(np.int64).reshape(-1, 2)
            fill = float(const(node.inputs[2])) if op == "PadV2" else 0.0
            names[name] = b.node("Pad", [value(node.inputs[0]), b.const(np.concatenate([pads[:, 0], pads[:, 1]])),
                                         b.const(np.array(fill, np.float32))], out, mode="constant")
            if shapes.get(src) is not None:
                shapes[name] = [None if d is None else d + int(p.sum()) for d, p in zip(shapes[src], pads)]
        elif op == "MaxPool":
            if node.attr("data_format", "NHWC") != "NHWC" or node.attr("padding") != "VALID":
                raise ConversionError(f"{name}: only NHWC MaxPool with VALID padding is supported")
            k, st = node.attr("ksize")[1:3], node.attr("strides")[1:3]
            names[name] = b.maxpool_nhwc(value(node.inputs[0]), kernel=k, strides=st, pads=(0, 0, 0, 0), output=out)
            if shapes.get(src) is not None:   # a SAME convolution after the pool needs its size
                n_, h, w_, c = shapes[src]
                shapes[name] = [n_, (h - k[0]) // st[0] + 1, (w_ - k[1]) // st[1] + 1, c]
        elif op == "ResizeBilinear":
            if node.attr("align_corners", False):
                mode = "align_corners"
            elif node.attr("half_pixel_centers", False):
                mode = "half_pixel"
            else:
                mode = "asymmetric"
            size = [int(v) for v in const(node.inputs[1])]
            names[name] = b.resize_to_nhwc(value(node.inputs[0]), size, mode, out)
            shapes[name] = [None, *size, shapes[src][3] if shapes.get(src) else None]
        elif op == "SplitV":
            sizes = const(node.inputs[1]).astype(np.int64)
            axis = int(const(node.inputs[2]))
            parts = [out_map.get(name if k == 0 else f"{name}:{k}") or b.fresh("split") for k in range(len(sizes))]
            b.nodes.append(onnx.helper.make_node("Split", [value(node.inputs[0]), b.const(sizes)], parts,
                                                 name=b.fresh("Split"), axis=axis))
            for k, part in enumerate(parts):
                names[name if k == 0 else f"{name}:{k}"] = part
        else:
            raise ConversionError(f"TensorFlow op {op} ({name}) is not supported by the converter")

    onnx_inputs = [(onnx_name, shape) for onnx_name, shape in inputs.values()]
    return b.build(onnx_inputs, list(out_map.values()),
                   doc=f"converted from {Path(source).name} by engines.convert.tf_graph")
