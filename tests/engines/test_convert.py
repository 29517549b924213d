"""The project's converters against the original TensorFlow / TFLite runtimes' recorded outputs."""
import numpy as np
import onnx
import pytest

from engines import create_engine
from engines.convert.graph import ConversionError, same_padding
from engines.convert.ssd import ssd_anchors
from engines.convert.tf_graph import _fields, _varint


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


@pytest.mark.parametrize("name,feed", [("ssdlite_person", ("image", (300, 300, 3))),
                                       ("pose_landmark_full", ("input_1", (256, 256, 3)))])
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
