"""The project's converters against the original TensorFlow / TFLite / TensorFlow.js runtimes'
recorded outputs."""
import base64
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from engines import create_engine
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
    s = lambda text: base64.b64encode(text.encode()).decode()  # noqa: E731
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
    blob, specs = b"", []
    for name, value, quant in weights:
        spec = {"name": name, "shape": list(value.shape), "dtype": "float32" if value.dtype.kind == "f" else "int32"}
        if quant:
            spec["quantization"] = {"dtype": quant, "original_dtype": "float32"}
        specs.append(spec)
        blob += value.tobytes()
    (tmp_path / "w.bin").write_bytes(blob)
    (tmp_path / "model.json").write_text(json.dumps({
        "format": "graph-model", "modelTopology": {"node": nodes},
        "weightsManifest": [{"paths": ["w.bin"], "weights": specs}]}))
    return tmp_path / "model.json", w.astype(np.float32), bias


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
