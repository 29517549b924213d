"""SSD anchors and box decoding, appended to a converted SSD core so the engine returns boxes.

Frozen TF Object Detection API graphs compute their anchors with ops at run time; we generate
the same anchors here (the API's `create_ssd_anchors` + `MultipleGridAnchorGenerator` rules)
and bake the decoding (FasterRCNN box coder) into the ONNX graph, so every backend returns
normalised `boxes (N, A, 4)` as (ymin, xmin, ymax, xmax) and sigmoid `scores (N, A)`.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def ssd_anchors(feature_maps=(19, 10, 5, 3, 2, 1), min_scale=0.2, max_scale=0.95,
                aspect_ratios=(1.0, 2.0, 0.5, 3.0, 1.0 / 3.0), interpolated_scale_aspect_ratio=1.0,
                reduce_boxes_in_lowest_layer=True) -> np.ndarray:
    """Anchors (A, 4) as (ycenter, xcenter, height, width), normalised, in predictor order."""
    n = len(feature_maps)
    scales = [min_scale + (max_scale - min_scale) * i / (n - 1) for i in range(n)] + [1.0]
    out = []
    for layer, size in enumerate(feature_maps):
        scale, scale_next = scales[layer], scales[layer + 1]
        if layer == 0 and reduce_boxes_in_lowest_layer:
            specs = [(0.1, 1.0), (scale, 2.0), (scale, 0.5)]
        else:
            specs = [(scale, ar) for ar in aspect_ratios]
            if interpolated_scale_aspect_ratio > 0:
                specs.append((np.sqrt(scale * scale_next), interpolated_scale_aspect_ratio))
        s = np.array([sp[0] for sp in specs])
        r = np.sqrt(np.array([sp[1] for sp in specs]))
        heights, widths = s / r, s * r
        centers = (np.arange(size) + 0.5) / size
        cy, cx = np.meshgrid(centers, centers, indexing="ij")  # (size, size), row-major like TF
        grid = np.stack(np.broadcast_arrays(cy[..., None], cx[..., None], heights, widths), axis=-1)
        out.append(grid.reshape(-1, 4))
    return np.concatenate(out).astype(np.float32)


def append_ssd_decoding(model: onnx.ModelProto, anchors: np.ndarray, *, encodings: str, logits: str,
                        class_index: int, coder_scales=(10.0, 10.0, 5.0, 5.0)) -> onnx.ModelProto:
    """Replace the outputs `encodings (N,A,1,4)` / `logits (N,A,C)` by `boxes (N,A,4)` / `scores (N,A)`."""
    g = model.graph
    consts = {
        "ssd_anchor_center": anchors[:, :2], "ssd_anchor_size": anchors[:, 2:],
        "ssd_center_scale": np.array(coder_scales[:2], np.float32),
        "ssd_size_scale": np.array(coder_scales[2:], np.float32),
        "ssd_half": np.array(0.5, np.float32),
        "ssd_enc_shape": np.array([0, anchors.shape[0], 4], np.int64),
        "ssd_split": np.array([2, 2], np.int64),
        "ssd_class": np.array([class_index], np.int64), "ssd_axis2": np.array([2], np.int64),
        "ssd_class_end": np.array([class_index + 1], np.int64),
    }
    g.initializer.extend(numpy_helper.from_array(np.ascontiguousarray(v, np.float32 if v.dtype.kind == "f" else None), k)
                         for k, v in consts.items())
    n = helper.make_node
    g.node.extend([
        n("Reshape", [encodings, "ssd_enc_shape"], ["ssd_enc"]),
        n("Split", ["ssd_enc", "ssd_split"], ["ssd_t_center", "ssd_t_size"], axis=2),
        # center = t / scale * anchor_size + anchor_center; size = exp(t / scale) * anchor_size
        n("Div", ["ssd_t_center", "ssd_center_scale"], ["ssd_c0"]),
        n("Mul", ["ssd_c0", "ssd_anchor_size"], ["ssd_c1"]),
        n("Add", ["ssd_c1", "ssd_anchor_center"], ["ssd_center"]),
        n("Div", ["ssd_t_size", "ssd_size_scale"], ["ssd_s0"]),
        n("Exp", ["ssd_s0"], ["ssd_s1"]),
        n("Mul", ["ssd_s1", "ssd_anchor_size"], ["ssd_size"]),
        n("Mul", ["ssd_size", "ssd_half"], ["ssd_half_size"]),
        n("Sub", ["ssd_center", "ssd_half_size"], ["ssd_min"]),
        n("Add", ["ssd_center", "ssd_half_size"], ["ssd_max"]),
        n("Concat", ["ssd_min", "ssd_max"], ["boxes"], axis=2),
        n("Slice", [logits, "ssd_class", "ssd_class_end", "ssd_axis2"], ["ssd_logit"]),
        n("Squeeze", ["ssd_logit", "ssd_axis2"], ["ssd_logit_sq"]),
        n("Sigmoid", ["ssd_logit_sq"], ["scores"]),
    ])
    del g.output[:]
    g.output.extend([helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["batch", anchors.shape[0], 4]),
                     helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", anchors.shape[0]])])
    onnx.checker.check_model(model)
    return model
