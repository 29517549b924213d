import pytest

from engines import backend_names, create_engine


def test_unknown_backend_names_the_choices(models_dir):
    with pytest.raises(ValueError, match="unknown engine backend 'tensorflow'; choose one of .*onnxruntime"):
        create_engine("tensorflow", models_dir / "ssdlite_person.onnx")


def test_missing_model_file_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="make models"):
        create_engine("onnxruntime", tmp_path / "nope.onnx")


def test_onnxruntime_engine_reports_its_inputs_and_outputs(models_dir):
    assert "onnxruntime" in backend_names()
    e = create_engine("onnxruntime", models_dir / "ssdlite_person.onnx", threads=1)
    assert e.input_names == ["image"] and e.output_names == ["boxes", "scores"]
    assert e.providers[-1] == "CPUExecutionProvider"
    # idle pool threads must not spin: they would take the cores from the other engines and decoders
    assert e.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_bundled_pose_model_keeps_only_the_heads_the_scene_stage_reads(models_dir):
    e = create_engine("onnxruntime", models_dir / "pose_landmark_full.onnx", threads=1)
    assert e.output_names == ["Identity", "Identity_1", "Identity_4"]   # no segmentation or heatmap heads
