"""The project's converters against the original TensorFlow / TFLite / TensorFlow.js runtimes'
recorded outputs."""
import base64
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from engines import create_engine
from engines.convert.blazepose import convert_blazepose_tfjs
from engines.convert.graph import ConversionError, same_padding
from engines.convert.ssd import ssd_anchors
from engines.convert.tf_graph import _fields, _varint, convert_nodes
from engines.convert.tfjs import read_tfjs
from tests.conftest import FIXTURES


def test_same_padding_matches_tensorflow_rules():
    assert same_padding(256, 3, 2) == (0, 1)      # TF puts the odd pixel at the end
    assert same_padding(300, 3, 2) == (0, 1)
    assert same_padding(19, 3, 1) == (1, 1)
    assert same_padding(10, 1, 1) == (0, 0)
    assert same_padding(8, 5, 1, dilation=2) == (4, 4)


def test_generated_ssd_anchors_match_the_anchors_tensorflow_computes(reference):
    tf = reference["ssd_anchors"]   # (ymin, xmin, ymax, xmax)
    tf_centre = np.stack([(tf[:, 0] + tf[:, 2]) / 2, (tf[:, 1] + tf[:, 3]) / 2,
                          tf[:, 2] - tf[:, 0], tf[:, 3] - tf[:, 1]], axis=1)
    np.testing.assert_allclose(ssd_anchors(), tf_centre, atol=2e-4)


@pytest.mark.parametrize("k", [0, 1])
def test_converted_person_detector_reproduces_tensorflow_on_real_frames(models_dir, reference, k):
    engine = create_engine("onnxruntime", models_dir / "ssdlite_person.onnx")
    out = engine.run({"image": reference[f"ssd_input_{k}"][None].astype(np.float32)})
    # decode TensorFlow's raw core outputs with the same (independently checked) anchors
    a, t = ssd_anchors(), reference[f"ssd_box_encodings_{k}"][:, 0]
    yc, xc = t[:, 0] / 10 * a[:, 2] + a[:, 0], t[:, 1] / 10 * a[:, 3] + a[:, 1]
    h, w = np.exp(t[:, 2] / 5) * a[:, 2], np.exp(t[:, 3] / 5) * a[:, 3]
    boxes = np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=1)
    scores = 1 / (1 + np.exp(-reference[f"ssd_class_logits_{k}"][:, 1]))
    np.testing.assert_allclose(out["boxes"][0], boxes, atol=1e-4)
    np.testing.assert_allclose(out["scores"][0], scores, atol=1e-4)
    assert (scores > 0.5).sum() >= 2   # the frame really has people in it


def test_converted_pose_landmarks_reproduce_tflite_on_a_real_crop(models_dir, reference):
    engine = create_engine("onnxruntime", models_dir / "pose_landmark_full.onnx")
    out = engine.run({"input_1": reference["lm_input"][None].astype(np.float32) / 255.0})
    lm, ref = out["Identity"][0].reshape(39, 5), reference["lm_landmarks"].reshape(39, 5)
    assert np.abs(lm[:, :2] - ref[:, :2]).max() < 0.05          # crop pixels, of 256
    np.testing.assert_allclose(out["Identity_1"][0], reference["lm_presence"], atol=1e-4)
    np.testing.assert_allclose(out["Identity_4"][0], reference["lm_world"], atol=1e-3)
    assert reference["lm_presence"][0] > 0.5


def test_converted_pose_lite_reproduces_tensorflow_js_on_a_real_crop(models_dir, reference):
    """tests/fixtures/make_blazepose_lite_reference.py ran BlazePose lite's TensorFlow.js graph model
    with TensorFlow.js (4.22, pure JS) on the crop the full model's tflite reference was made on."""
    ref = dict(np.load(FIXTURES / "blazepose_lite_reference.npz"))
    out = create_engine("onnxruntime", models_dir / "pose_landmark_lite.onnx").run(
        {"input_1": reference["lm_input"][None].astype(np.float32) / 255.0})
    lm, want = out["Identity"][0].reshape(39, 5), ref["landmarks"].reshape(39, 5)
    assert np.abs(lm[:, :2] - want[:, :2]).max() < 0.01                                  # crop pixels, of 256
    np.testing.assert_allclose(lm[:, 3:], want[:, 3:], atol=1e-3)                        # visibility, presence logits
    np.testing.assert_allclose(out["Identity_1"][0], ref["presence"], atol=1e-4)        # a probability, as full's
    np.testing.assert_allclose(out["Identity_4"][0], ref["world"], atol=1e-4)
    assert ref["presence"][0] > 0.5


def test_pose_lite_is_a_drop_in_for_the_full_model(models_dir, reference):
    """Same input, same outputs in the same order and shapes, and on the same real crop the same
    person: the scene stage's `blazepose` decoder reads either."""
    lite = create_engine("onnxruntime", models_dir / "pose_landmark_lite.onnx")
    full = create_engine("onnxruntime", models_dir / "pose_landmark_full.onnx")
    assert (lite.input_names, lite.output_names) == (full.input_names, full.output_names) == \
        (["input_1"], ["Identity", "Identity_1", "Identity_4"])
    x = {"input_1": reference["lm_input"][None].astype(np.float32) / 255.0}
    a, b = lite.run(x), full.run(x)
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    torso = [11, 12, 23, 24]                                            # shoulders and hips
    d = np.linalg.norm(a["Identity"].reshape(39, 5)[torso, :2] - b["Identity"].reshape(39, 5)[torso, :2], axis=1)
    assert d.max() < 8 and a["Identity_1"][0, 0] > 0.5                  # crop pixels; the person is ~170 tall


def test_blazepose_converter_refuses_a_graph_without_blazepose_heads(tmp_path):
    path, _, _ = _tfjs_model(tmp_path)
    spec = json.loads(path.read_text())
    spec["signature"] = {"inputs": {"x": {"name": "x:0", "tensorShape": {"dim": [{"size": "-1"}, {"size": "256"},
                                                                                 {"size": "256"}, {"size": "3"}]}}},
                         "outputs": {"flat": {"name": "flat:0", "tensorShape": {"dim": [{"size": "-1"}, {"size": "25"}]}}}}
    path.write_text(json.dumps(spec))
    with pytest.raises(ConversionError, match=r"has no \[N, 195\] output 'ld_3d'"):
        convert_blazepose_tfjs(path)


def test_converted_nanodet_reproduces_tensorflow_js_on_a_real_frame(models_dir):
    """tests/fixtures/make_nanodet_reference.py ran the TensorFlow.js graph model with TensorFlow.js
    (4.22, pure JS) on vtest frame 100; the converted graph bakes in NanoDet's preprocessing and the
    GFL decoding, checked here against a decoding of TensorFlow.js's raw distributions."""
    ref = dict(np.load(FIXTURES / "nanodet_reference.npz"))
    out = create_engine("onnxruntime", models_dir / "nanodet.onnx").run({"image": ref["pixels"][None].astype(np.float32)})
    cells = ref["cells"]
    np.testing.assert_allclose(out["scores"][0][cells], ref["scores"], atol=1e-4)
    d = ref["distributions"].reshape(-1, 4, 11)
    p = np.exp(d - d.max(-1, keepdims=True))
    ltrb = (p / p.sum(-1, keepdims=True)) @ np.arange(11)                      # in strides
    stride = np.where(cells < 52 * 52, 8, np.where(cells < 52 * 52 + 26 * 26, 16, 32))
    local = cells - np.where(stride == 8, 0, np.where(stride == 16, 52 * 52, 52 * 52 + 26 * 26))
    side = 416 // stride
    cx, cy = (local % side + 0.5) * stride, (local // side + 0.5) * stride
    x0, y0 = cx - ltrb[:, 0] * stride, cy - ltrb[:, 1] * stride
    x1, y1 = cx + ltrb[:, 2] * stride, cy + ltrb[:, 3] * stride
    want = np.clip(np.stack([y0, x0, y1, x1], 1) / 416, 0, 1)
    np.testing.assert_allclose(out["boxes"][0][cells], want, atol=1e-4)
    best = cells[np.argmax(ref["scores"][:, 0])]
    y0, x0, y1, x1 = out["boxes"][0][best] * 416
    assert ref["scores"][:, 0].max() > 0.7 and 1.5 < (y1 - y0) / (x1 - x0) < 4    # a standing person


def _tfjs_model(tmp_path):
    """A small TensorFlow.js graph model: Pad -> Conv2D (float16-quantized weights) -> LeakyRelu ->
    SplitV -> Sigmoid | Transpose, with a shape computed by SparseToDense left in the graph."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 3, 2, 4)).astype(np.float16)
    bias = rng.normal(size=4).astype(np.float32)
    i32 = lambda a: np.asarray(a, np.int32)  # noqa: E731
    weights = [("w", w, "float16"), ("bias", bias, None), ("pads", i32([[0, 0], [1, 1], [1, 1], [0, 0]]), None),
               ("sizes", i32([1, 3]), None), ("axis", i32(3), None), ("perm", i32([0, 3, 1, 2]), None),
               ("idx", i32(np.zeros((0, 1))), None), ("dense_shape", i32([4]), None),
               ("dense_values", i32(np.zeros(0)), None), ("zero", i32(0), None), ("target", i32([1, -1, 5, 5]), None)]
    const = lambda n: {"name": n, "op": "Const", "attr": {}}  # noqa: E731
    s = _b64
    nodes = [{"name": "x", "op": "Placeholder", "attr": {}}, *(const(n) for n, *_ in weights),
             {"name": "pad", "op": "Pad", "input": ["x", "pads"]},
             {"name": "conv", "op": "Conv2D", "input": ["pad", "w"],
              "attr": {"padding": {"s": s("VALID")}, "data_format": {"s": s("NHWC")},
                       "strides": {"list": {"i": ["1", "1", "1", "1"]}}}},
             {"name": "biased", "op": "BiasAdd", "input": ["conv", "bias"]},
             {"name": "act", "op": "LeakyRelu", "input": ["biased"], "attr": {"alpha": {"f": 0.1}}},
             {"name": "split", "op": "SplitV", "input": ["act", "sizes", "axis"], "attr": {"num_split": {"i": "2"}}},
             {"name": "sig", "op": "Sigmoid", "input": ["split"]},
             {"name": "std", "op": "SparseToDense", "input": ["idx", "dense_shape", "dense_values", "zero"]},
             {"name": "shape", "op": "AddV2", "input": ["target", "std"]},
             {"name": "flat", "op": "Reshape", "input": ["sig", "shape"]},
             {"name": "chw", "op": "Transpose", "input": ["split:1", "perm"]}]
    return _write_graph_model(tmp_path, nodes, weights), w.astype(np.float32), bias


def _write_graph_model(folder: Path, nodes: list[dict], weights: list[tuple]) -> Path:
    """A TensorFlow.js graph model (model.json + w.bin) of `nodes`; weights are (name, array,
    quantization or None), stored in order as the converter from TensorFlow writes them."""
    blob, specs = b"", []
    for name, value, quant in weights:
        spec = {"name": name, "shape": list(value.shape), "dtype": "float32" if value.dtype.kind == "f" else "int32"}
        if quant:
            spec["quantization"] = {"dtype": quant, "original_dtype": "float32"}
        specs.append(spec)
        blob += value.tobytes()
    (folder / "w.bin").write_bytes(blob)
    (folder / "model.json").write_text(json.dumps({
        "format": "graph-model", "modelTopology": {"node": nodes},
        "weightsManifest": [{"paths": ["w.bin"], "weights": specs}]}))
    return folder / "model.json"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _conv_reference(x, w, stride: int, padding: str, depthwise: bool):
    """TensorFlow's NHWC convolution in numpy: w (kh, kw, cin, cout) or depthwise (kh, kw, c, 1)."""
    kh, kw = w.shape[:2]
    if padding == "SAME":
        (pt, pb), (pl, pr) = same_padding(x.shape[1], kh, stride), same_padding(x.shape[2], kw, stride)
        x = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), (1, 2))[:, ::stride, ::stride]  # n h w c kh kw
    if depthwise:
        return np.einsum("nhwcij,ijc->nhwc", win, w[..., 0])
    return np.einsum("nhwcij,ijco->nhwo", win, w)


def _fused_conv_nodes(op: str, fused: list[str], args: list[str], padding: str, stride: int, **extra) -> list[dict]:
    attrs = {"padding": {"s": _b64(padding)}, "data_format": {"s": _b64("NHWC")},
             "strides": {"list": {"i": ["1", str(stride), str(stride), "1"]}},
             "fused_ops": {"list": {"s": [_b64(f) for f in fused]}}, "num_args": {"i": str(len(args))}, **extra}
    return [{"name": "x", "op": "Placeholder", "attr": {}},
            *({"name": n, "op": "Const", "attr": {}} for n in ("w", *args)),
            {"name": "y", "op": op, "input": ["x", "w", *args], "attr": attrs}]


def _run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})


_ACTIVATIONS = {
    "none": lambda v, a: v, "Relu": lambda v, a: np.maximum(v, 0), "Relu6": lambda v, a: np.clip(v, 0, 6),
    "LeakyRelu": lambda v, a: np.where(v > 0, v, 0.3 * v), "Prelu": lambda v, a: np.where(v > 0, v, a * v),
    "Elu": lambda v, a: np.where(v > 0, v, np.expm1(np.minimum(v, 0))), "Sigmoid": lambda v, a: 1 / (1 + np.exp(-v)),
    "Tanh": lambda v, a: np.tanh(v)}


@pytest.mark.parametrize("op", ["_FusedConv2D", "FusedDepthwiseConv2dNative"])
@pytest.mark.parametrize("first", ["BiasAdd", "FusedBatchNorm"])
@pytest.mark.parametrize("activation", list(_ACTIVATIONS))
def test_fused_convolutions_apply_their_bias_or_batch_norm_then_their_activation(tmp_path, op, first, activation):
    """TensorFlow's grappler fuses conv + BiasAdd/FusedBatchNorm + activation into one node, as every
    convolution of the BlazePose TensorFlow.js graphs is."""
    rng = np.random.default_rng(2)
    depthwise = op == "FusedDepthwiseConv2dNative"
    w = rng.normal(size=(3, 3, 4, 1 if depthwise else 6)).astype(np.float16)     # stored as float16
    c = 4 if depthwise else 6
    bias, scale, mean = (rng.normal(size=c).astype(np.float32) for _ in range(3))
    var, slope = rng.uniform(0.5, 2, c).astype(np.float32), rng.uniform(0, 0.5, (1, 1, c)).astype(np.float32)
    args = [("bias", bias)] if first == "BiasAdd" else [("scale", scale), ("offset", bias), ("mean", mean), ("var", var)]
    if activation == "Prelu":
        args.append(("slope", slope))
    fused = [first] + ([activation] if activation != "none" else [])
    nodes = _fused_conv_nodes(op, fused, [n for n, _ in args], "SAME", 2, epsilon={"f": 0.001},
                              leakyrelu_alpha={"f": 0.3})
    path = _write_graph_model(tmp_path, nodes, [("w", w, "float16"), *((n, v, None) for n, v in args)])
    model = convert_nodes(read_tfjs(path).nodes, "model.json", {"x": ("x", [None, 9, 9, 4])}, {"y": "y"})
    x = rng.normal(size=(2, 9, 9, 4)).astype(np.float32) * 3
    conv = _conv_reference(x, w.astype(np.float32), 2, "SAME", depthwise)
    if first == "BiasAdd":
        pre = conv + bias
    else:
        pre = (conv - mean) / np.sqrt(var + 0.001) * scale + bias
    want = _ACTIVATIONS[activation](pre, slope)
    assert want.shape == (2, 5, 5, c)
    np.testing.assert_allclose(_run(model, x)[0], want, atol=1e-4)


def test_fused_convolutions_refuse_what_they_cannot_fuse(tmp_path):
    nodes = _fused_conv_nodes("_FusedConv2D", ["BiasAdd", "Relu", "Relu6"], ["bias"], "VALID", 1)
    path = _write_graph_model(tmp_path, nodes, [("w", np.ones((1, 1, 2, 2), np.float32), None),
                                                ("bias", np.zeros(2, np.float32), None)])
    with pytest.raises(ConversionError, match=r"y: fused_ops \['BiasAdd', 'Relu', 'Relu6'\] are not supported"):
        convert_nodes(read_tfjs(path).nodes, "model.json", {"x": ("x", [None, 4, 4, 2])}, {"y": "y"})


def test_same_convolutions_after_a_pool_or_a_resize_know_their_input_size(tmp_path):
    """SAME padding depends on the input's size, so MaxPool and ResizeBilinear (BlazePose's encoder
    and decoder) must pass theirs on: 8 -> pool 4 -> SAME conv stride 2 -> 2 -> resize 5 -> SAME conv."""
    rng = np.random.default_rng(3)
    w1, w2 = rng.normal(size=(3, 3, 2, 1)).astype(np.float32), rng.normal(size=(3, 3, 2, 3)).astype(np.float32)
    b1, b2 = np.zeros(2, np.float32), rng.normal(size=3).astype(np.float32)
    conv = lambda name, op, src, w, b, stride: {  # noqa: E731
        "name": name, "op": op, "input": [src, w, b],
        "attr": {"padding": {"s": _b64("SAME")}, "strides": {"list": {"i": ["1", str(stride), str(stride), "1"]}},
                 "fused_ops": {"list": {"s": [_b64("BiasAdd")]}}, "num_args": {"i": "1"}}}
    nodes = [{"name": "x", "op": "Placeholder"}, *({"name": n, "op": "Const"} for n in ("w1", "b1", "w2", "b2", "size")),
             {"name": "pool", "op": "MaxPool", "input": ["x"],
              "attr": {"ksize": {"list": {"i": ["1", "2", "2", "1"]}}, "strides": {"list": {"i": ["1", "2", "2", "1"]}},
                       "padding": {"s": _b64("VALID")}, "data_format": {"s": _b64("NHWC")}}},
             conv("dw", "FusedDepthwiseConv2dNative", "pool", "w1", "b1", 2),
             {"name": "up", "op": "ResizeBilinear", "input": ["dw", "size"],
              "attr": {"align_corners": {"b": False}, "half_pixel_centers": {"b": True}}},
             conv("y", "_FusedConv2D", "up", "w2", "b2", 1)]
    path = _write_graph_model(tmp_path, nodes, [("w1", w1, None), ("b1", b1, None), ("w2", w2, None),
                                                ("b2", b2, None), ("size", np.array([5, 5], np.int32), None)])
    model = convert_nodes(read_tfjs(path).nodes, "model.json", {"x": ("x", [None, 8, 8, 2])}, {"y": "y"})
    x = rng.normal(size=(1, 8, 8, 2)).astype(np.float32)
    pooled = x.reshape(1, 4, 2, 4, 2, 2).max(axis=(2, 4))
    dw = _conv_reference(pooled, w1, 2, "SAME", True)                                     # (1, 2, 2, 2)
    src = np.clip((np.arange(5) + 0.5) * 2 / 5 - 0.5, 0, 1)           # half-pixel centres, edges clamped
    lo, frac = np.floor(src).astype(int), src - np.floor(src)
    hi = np.minimum(lo + 1, 1)
    rows = dw[:, lo] * (1 - frac)[None, :, None, None] + dw[:, hi] * frac[None, :, None, None]
    up = rows[:, :, lo] * (1 - frac)[None, None, :, None] + rows[:, :, hi] * frac[None, None, :, None]
    np.testing.assert_allclose(_run(model, x)[0], _conv_reference(up, w2, 1, "SAME", False) + b2, atol=1e-4)


def test_tensorflow_js_graph_models_convert_op_for_op(tmp_path):
    path, w, bias = _tfjs_model(tmp_path)
    model = convert_nodes(read_tfjs(path).nodes, "model.json", {"x": ("x", [None, 5, 5, 2])},
                          {"flat": "flat", "chw": "chw"}, fixed_batch=True)
    x = np.random.default_rng(1).normal(size=(2, 5, 5, 2)).astype(np.float32)
    out = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    conv = np.einsum("nhwijc,ijco->nhwo", np.lib.stride_tricks.sliding_window_view(padded, (3, 3), (1, 2))
                     .transpose(0, 1, 2, 4, 5, 3), w) + bias
    act = np.where(conv > 0, conv, 0.1 * conv)
    np.testing.assert_allclose(out[0], (1 / (1 + np.exp(-act[..., :1]))).reshape(2, 1, 5, 5), atol=1e-5)
    np.testing.assert_allclose(out[1], act[..., 1:].transpose(0, 3, 1, 2), atol=1e-5)   # batch 2 through [1, ...]


def test_tensorflow_js_reader_refuses_what_it_cannot_read(tmp_path):
    path, _, _ = _tfjs_model(tmp_path)
    spec = json.loads(path.read_text())
    spec["weightsManifest"][0]["weights"][0]["quantization"]["dtype"] = "int4"
    path.write_text(json.dumps(spec))
    with pytest.raises(ConversionError, match="unsupported quantization 'int4'"):
        read_tfjs(path)
    spec["format"] = "layers-model"
    path.write_text(json.dumps(spec))
    with pytest.raises(ConversionError, match="not a TensorFlow.js graph model"):
        read_tfjs(path)


@pytest.mark.parametrize("name,feed", [("ssdlite_person", ("image", (300, 300, 3))),
                                       ("pose_landmark_full", ("input_1", (256, 256, 3))),
                                       ("pose_landmark_lite", ("input_1", (256, 256, 3))),
                                       ("nanodet", ("image", (416, 416, 3)))])
def test_converted_models_take_any_batch_and_batching_changes_nothing(models_dir, name, feed):
    model = onnx.load(models_dir / f"{name}.onnx")
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    engine = create_engine("onnxruntime", models_dir / f"{name}.onnx")
    x = np.random.default_rng(0).uniform(0, 1, (3, *feed[1])).astype(np.float32)
    batched = engine.run({feed[0]: x})
    for i in range(3):
        single = engine.run({feed[0]: x[i:i + 1]})
        for key in batched:
            np.testing.assert_allclose(batched[key][i], single[key][0], rtol=1e-4, atol=1e-4)


def test_protobuf_reader_decodes_varints_and_nested_fields():
    assert _varint(bytes([0x96, 0x01]), 0) == (150, 2)
    msg = bytes([0x08, 0x96, 0x01, 0x12, 0x03]) + b"abc"   # field 1 = 150, field 2 = "abc"
    assert [(n, v) for n, _, v in _fields(msg)] == [(1, 150), (2, b"abc")]
    with pytest.raises(ConversionError, match="wire type"):
        list(_fields(bytes([0x0B])))   # wire type 3 (groups) is not supported
