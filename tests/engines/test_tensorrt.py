"""The TensorRT backend: everything around TensorRT (keys, profiles, cache, errors, fallback) runs
here; building and running a plan needs an NVIDIA GPU with the tensorrt package and skips without."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from engines import BackendUnavailable, create_engine
from engines.tensorrt_backend import (BuildSpec, EngineBuildError, PlanCache, Profile, file_sha256, plan_key,
                                      profile_from_onnx)

ROOT = Path(__file__).resolve().parents[2]


def _have_tensorrt() -> str | None:
    if not Path("/dev/nvidiactl").exists():
        return "no NVIDIA GPU on this machine"
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "the tensorrt package is not installed"
    return None


needs_tensorrt = pytest.mark.skipif(_have_tensorrt() is not None, reason=f"TensorRT cannot run here: {_have_tensorrt()}")


def test_profiles_come_from_the_onnx_inputs_with_the_batch_range(models_dir):
    prof = profile_from_onnx(models_dir / "pose_landmark_full.onnx", BuildSpec(opt_batch=4, max_batch=32))
    assert prof.shapes == {"input_1": ((1, 256, 256, 3), (4, 256, 256, 3), (32, 256, 256, 3))}
    det = profile_from_onnx(models_dir / "ssdlite_person.onnx", BuildSpec())
    assert det.shapes["image"][2] == (16, 300, 300, 3)


def test_a_dynamic_dimension_other_than_batch_is_an_error_naming_the_input(tmp_path):
    x = helper.make_tensor_value_info("frames", TensorProto.FLOAT, ["batch", "height", 64, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["frames"], ["y"])], "g", [x], [y]))
    onnx.save(model, tmp_path / "m.onnx")
    with pytest.raises(EngineBuildError, match=r"m.onnx: input 'frames' dimension 1 is dynamic \(height\)"):
        profile_from_onnx(tmp_path / "m.onnx", BuildSpec())


def test_the_plan_key_changes_with_everything_a_plan_depends_on(models_dir):
    onnx_sha = file_sha256(models_dir / "pose_landmark_full.onnx")
    spec = BuildSpec()
    prof = profile_from_onnx(models_dir / "pose_landmark_full.onnx", spec)
    base = plan_key(onnx_sha, "NVIDIA H100 80GB HBM3", "10.9.0", spec, prof)
    assert base == plan_key(onnx_sha, "NVIDIA H100 80GB HBM3", "10.9.0", BuildSpec(), prof)     # stable
    variants = [
        plan_key(file_sha256(models_dir / "ssdlite_person.onnx"), "NVIDIA H100 80GB HBM3", "10.9.0", spec, prof),
        plan_key(onnx_sha, "NVIDIA H200", "10.9.0", spec, prof),
        plan_key(onnx_sha, "NVIDIA H100 80GB HBM3", "10.10.0", spec, prof),
        plan_key(onnx_sha, "NVIDIA H100 80GB HBM3", "10.9.0", BuildSpec(precision="fp32"), prof),
        plan_key(onnx_sha, "NVIDIA H100 80GB HBM3", "10.9.0", spec,
                 profile_from_onnx(models_dir / "pose_landmark_full.onnx", BuildSpec(max_batch=32))),
    ]
    assert len({base, *variants}) == 6


def test_int8_keys_depend_on_the_calibration(tmp_path):
    a, b = tmp_path / "a.cache", tmp_path / "b.cache"
    a.write_bytes(b"TRT-1001-EntropyCalibration2\ninput_1: 3c010a14\n")
    b.write_bytes(b"TRT-1001-EntropyCalibration2\ninput_1: 3c010a15\n")
    prof = Profile({"x": ((1, 3), (8, 3), (16, 3))})
    keys = {plan_key("abc", "gpu", "10.9", BuildSpec(precision="int8", calibration_cache=c), prof) for c in (a, b)}
    assert len(keys) == 2


@pytest.mark.parametrize("kwargs,message", [
    ({"precision": "bf8"}, "precision must be fp32, fp16 or int8"),
    ({"opt_batch": 32, "max_batch": 16}, "min_batch <= opt_batch <= max_batch"),
    ({"precision": "int8"}, "int8 needs a calibration_cache"),
])
def test_build_specs_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BuildSpec(**kwargs)


def test_plan_cache_round_trips_atomically_and_ignores_a_mismatched_sidecar(tmp_path):
    cache = PlanCache(tmp_path / "plans")
    key = "ab" * 32
    assert cache.load("pose", "fp16", key) is None
    path = cache.save("pose", "fp16", key, b"\x00plan-bytes", {"gpu": "NVIDIA H100"})
    assert path.name == f"pose-fp16-{key[:16]}.plan" and cache.load("pose", "fp16", key) == b"\x00plan-bytes"
    assert json.loads(path.with_suffix(".json").read_text()) == {"key": key, "gpu": "NVIDIA H100"}
    assert not list((tmp_path / "plans").glob(".tmp-*"))            # no temporary files left behind
    other = key[:16] + "cd" * 24                                    # same file name, different key
    assert cache.load("pose", "fp16", other) is None


def test_tensorrt_here_is_a_clear_error_naming_the_alternatives_unless_a_fallback_is_allowed(models_dir, caplog):
    if _have_tensorrt() is None:
        pytest.skip("TensorRT can run here")
    with pytest.raises(BackendUnavailable, match="tensorrt: .*Choose another backend \\(onnxruntime.*models.fallback"):
        create_engine("tensorrt", models_dir / "pose_landmark_full.onnx")
    with caplog.at_level(logging.WARNING, logger="engines"):
        engine = create_engine("tensorrt", models_dir / "pose_landmark_full.onnx", fallback=["onnxruntime"])
    assert engine.backend == "onnxruntime"
    assert "using the onnxruntime backend (tensorrt:" in caplog.text


def test_build_command_fails_with_one_line_where_tensorrt_cannot_run(models_dir):
    if _have_tensorrt() is None:
        pytest.skip("TensorRT can run here")
    done = subprocess.run([sys.executable, "-m", "engines.build", str(models_dir / "pose_landmark_full.onnx")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1 and len(lines) == 1 and lines[0].startswith("engines.build: tensorrt"), done.stderr


def test_a_configs_plans_are_built_by_hawkwatch_with_its_settings_and_a_bad_config_says_why(tmp_path):
    if _have_tensorrt() is None:
        pytest.skip("TensorRT can run here")
    done = subprocess.run([sys.executable, "run_pipeline.py", "build-engines", "configs/demo.yaml"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert lines[0].startswith("hawkwatch build-engines: tensorrt"), done.stderr
    (tmp_path / "bad.yaml").write_text("version: 1\ncamreas: {}\n")
    done = subprocess.run([sys.executable, "run_pipeline.py", "build-engines", str(tmp_path / "bad.yaml")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "hawkwatch build-engines: config error" in done.stderr, done.stderr


@needs_tensorrt
def test_a_built_plan_reproduces_onnxruntime_and_is_cached(models_dir, vtest_frames, tmp_path):
    import cv2
    crops = np.stack([cv2.resize(f[100:400, 300:600], (256, 256)) for f in vtest_frames[:5]]).astype(np.float32) / 255
    ref = create_engine("onnxruntime", models_dir / "pose_landmark_full.onnx").run({"input_1": crops})
    opts = {"tensorrt": {"precision": "fp32", "max_batch": 4, "opt_batch": 2, "cache_dir": tmp_path}}
    trt = create_engine("tensorrt", models_dir / "pose_landmark_full.onnx", options=opts)
    out = trt.run({"input_1": crops})                              # 5 > max_batch 4: two calls
    assert np.abs(out["Identity"] - ref["Identity"]).max() < 1e-2
    assert len(list(tmp_path.glob("*.plan"))) == 1
    again = create_engine("tensorrt", models_dir / "pose_landmark_full.onnx", options=opts)
    assert again.plan_path == trt.plan_path                         # loaded from the cache, not rebuilt
