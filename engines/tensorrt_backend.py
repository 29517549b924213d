"""The TensorRT backend (TensorRT 10 Python API): a plan built from the same ONNX file the other
backends run, cached on disk, loaded and run with torch-owned CUDA buffers.

    engine = create_engine("tensorrt", "models/pose_landmark_full.onnx",
                           options={"precision": "fp16", "max_batch": 16})

Building takes minutes, so plans are cached under a key that changes whenever the plan would:
the ONNX file's sha256, the GPU's name, the TensorRT version, the precision and the optimisation
profile (min/opt/max shape of every input). `python -m engines.build` builds ahead of time, with
progress. Everything that does not need TensorRT itself (keys, profiles, the cache, the errors)
is plain Python and tested on any machine.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Literal

import numpy as np

from engines.registry import BackendUnavailable, file_sha256, register_backend

DEFAULT_CACHE = Path(os.environ.get("HAWKWATCH_TRT_CACHE", Path.home() / ".cache" / "hawkwatch" / "tensorrt"))


class EngineBuildError(RuntimeError):
    """TensorRT could not parse or build the model; the message carries TensorRT's own errors."""


@dataclass(frozen=True)
class BuildSpec:
    precision: Literal["fp32", "fp16", "int8"] = "fp16"
    min_batch: int = 1
    opt_batch: int = 8
    max_batch: int = 16
    workspace_mb: int = 2048
    calibration_cache: Path | None = None     # int8: a TensorRT calibration cache file

    def __post_init__(self):
        if self.precision not in ("fp32", "fp16", "int8"):
            raise ValueError(f"precision must be fp32, fp16 or int8, not {self.precision!r}")
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ValueError(f"need 1 <= min_batch <= opt_batch <= max_batch, got "
                             f"{self.min_batch}/{self.opt_batch}/{self.max_batch}")
        if self.precision == "int8" and self.calibration_cache is None:
            raise ValueError("int8 needs a calibration_cache: a TensorRT calibration cache file (e.g. written by "
                             "`polygraphy convert --int8 --calibration-cache` on representative frames)")


@dataclass(frozen=True)
class Profile:
    """One optimisation profile: per input, the (min, opt, max) shapes; only the batch dimension varies."""
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)

    def as_key(self) -> str:
        return ";".join(f"{n}:{'x'.join(map(str, lo))}/{'x'.join(map(str, op))}/{'x'.join(map(str, hi))}"
                        for n, (lo, op, hi) in sorted(self.shapes.items()))


def profile_from_onnx(onnx_path: Path, spec: BuildSpec) -> Profile:
    """The profile for an ONNX file whose inputs are (batch, fixed...): the batch dimension from the
    spec, every other dimension as the file declares it. Any other dynamic dimension is an error
    naming the input, because a plan needs its range."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}
    shapes = {}
    for inp in model.graph.input:
        if inp.name in initializers:
            continue
        dims = inp.type.tensor_type.shape.dim
        rest = []
        for k, d in enumerate(dims[1:], start=1):
            if not d.HasField("dim_value") or d.dim_value <= 0:
                raise EngineBuildError(f"{onnx_path.name}: input {inp.name!r} dimension {k} is dynamic "
                                       f"({d.dim_param or '?'}); only the batch dimension may be")
            rest.append(d.dim_value)
        if not dims:
            raise EngineBuildError(f"{onnx_path.name}: input {inp.name!r} is a scalar; expected (batch, ...)")
        shapes[inp.name] = tuple((b, *rest) for b in (spec.min_batch, spec.opt_batch, spec.max_batch))
    return Profile(shapes)


def plan_key(onnx_sha256: str, gpu_name: str, trt_version: str, spec: BuildSpec, profile: Profile) -> str:
    """What a plan depends on, hashed: a plan is valid only for this model, GPU, TensorRT, precision
    and profile (and, for int8, this calibration)."""
    calib = file_sha256(spec.calibration_cache) if spec.precision == "int8" and spec.calibration_cache else ""
    parts = [onnx_sha256, gpu_name, trt_version, spec.precision, profile.as_key(), str(spec.workspace_mb), calib]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


class PlanCache:
    """Plans on disk: `<model>-<precision>-<key16>.plan` with a `.json` beside it that says what
    the key was made of. Writes are atomic (a crash never leaves half a plan under a valid name)."""

    def __init__(self, root: Path = DEFAULT_CACHE):
        self.root = Path(root)

    def path(self, model: str, precision: str, key: str) -> Path:
        return self.root / f"{model}-{precision}-{key[:16]}.plan"

    def load(self, model: str, precision: str, key: str) -> bytes | None:
        p = self.path(model, precision, key)
        meta = p.with_suffix(".json")
        if not (p.is_file() and meta.is_file()):
            return None
        try:
            if json.loads(meta.read_text()).get("key") != key:
                return None              # a 16-hex-digit prefix collision, or a hand-edited file
        except (OSError, ValueError):
            return None
        return p.read_bytes()

    def save(self, model: str, precision: str, key: str, plan: bytes, info: dict) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        p = self.path(model, precision, key)
        for target, data in ((p, plan), (p.with_suffix(".json"),
                                         json.dumps({"key": key, **info}, indent=2, default=str).encode())):
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
        return p


# -- TensorRT itself (needs an NVIDIA GPU and the tensorrt package) ----------------------------------
def _tensorrt():
    if not Path("/dev/nvidiactl").exists():
        raise BackendUnavailable("tensorrt needs an NVIDIA GPU, and this machine has none")
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendUnavailable("tensorrt is not installed (pip install tensorrt; it needs an NVIDIA GPU)") from None
    if int(trt.__version__.split(".")[0]) < 10:
        raise BackendUnavailable(f"tensorrt {trt.__version__} is too old: Hawkwatch uses the TensorRT 10 API")
    return trt


def _gpu_name() -> str:
    import torch
    if not torch.cuda.is_available():
        raise BackendUnavailable("tensorrt needs CUDA through torch for its buffers, and torch sees no GPU")
    return torch.cuda.get_device_name(0)


def build_plan(onnx_path: Path, spec: BuildSpec, profile: Profile,
               progress: Callable[[str], None] | None = None) -> bytes:
    """Parse the ONNX file and build a serialized plan (TensorRT 10: explicit batch, one profile)."""
    trt = _tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)          # TensorRT 10: networks are always explicit-batch
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT cannot parse {Path(onnx_path).name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, spec.workspace_mb << 20)
    if spec.precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)    # int8 falls back to fp16 where a layer has no int8 kernel
    if spec.precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = _cache_calibrator(trt, spec.calibration_cache)
    opt = builder.create_optimization_profile()
    for name, (lo, mid, hi) in profile.shapes.items():
        opt.set_shape(name, lo, mid, hi)
    config.add_optimization_profile(opt)
    if progress is not None:
        config.progress_monitor = _progress_monitor(trt, progress)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineBuildError(f"TensorRT could not build {Path(onnx_path).name} ({spec.precision}); "
                               "see its log above")
    return bytes(plan)


def _progress_monitor(trt, report: Callable[[str], None]):
    class Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self.steps: dict[str, int] = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            self.steps[phase_name] = num_steps
            report(f"{'  ' if parent_phase else ''}{phase_name} (0/{num_steps})")

        def step_complete(self, phase_name, step):
            report(f"{phase_name} ({step + 1}/{self.steps.get(phase_name, '?')})")
            return True                          # False would cancel the build

        def phase_finish(self, phase_name):
            self.steps.pop(phase_name, None)
    return Monitor()


def _cache_calibrator(trt, cache: Path):
    """An int8 calibrator that replays an existing calibration cache: no calibration data is fed."""
    class FromCache(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)

        def get_batch_size(self):
            return 1

        def get_batch(self, names):
            return None                          # no data: everything comes from the cache

        def read_calibration_cache(self):
            return Path(cache).read_bytes()

        def write_calibration_cache(self, data):
            pass
    return FromCache()


class TensorRTEngine:
    backend = "tensorrt"

    def __init__(self, path: Path, *, threads: int | None = None, spec: BuildSpec | None = None,
                 cache: PlanCache | None = None, progress: Callable[[str], None] | None = None):
        trt = _tensorrt()
        import torch

        self.spec = spec or BuildSpec()
        self.plan_path, plan = ensure_plan(path, self.spec, cache or PlanCache(), progress)
        self._torch = torch
        self._logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(self._logger).deserialize_cuda_engine(plan)
        if self.engine is None:
            raise EngineBuildError(f"TensorRT could not load the cached plan {self.plan_path}; delete it to rebuild")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_names = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.output_names = [n for n in names if n not in self.input_names]
        self._dtypes = {n: torch.from_numpy(np.empty(0, trt.nptype(self.engine.get_tensor_dtype(n)))).dtype
                        for n in self.output_names}
        self._stream = torch.cuda.Stream()

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Runs in chunks of at most max_batch (the profile's limit), like the other backends' one call."""
        n = len(next(iter(feeds.values())))
        if n <= self.spec.max_batch:
            return self._run(feeds)
        parts = [self._run({k: v[i:i + self.spec.max_batch] for k, v in feeds.items()})
                 for i in range(0, n, self.spec.max_batch)]
        return {k: np.concatenate([p[k] for p in parts]) for k in self.output_names}

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        keep = []
        with torch.cuda.stream(self._stream):
            for name in self.input_names:
                x = torch.from_numpy(np.ascontiguousarray(feeds[name])).cuda(non_blocking=True)
                self.context.set_input_shape(name, tuple(x.shape))
                self.context.set_tensor_address(name, x.data_ptr())
                keep.append(x)
            outputs = {}
            for name in self.output_names:
                out = torch.empty(tuple(self.context.get_tensor_shape(name)), dtype=self._dtypes[name], device="cuda")
                self.context.set_tensor_address(name, out.data_ptr())
                outputs[name] = out
            if not self.context.execute_async_v3(self._stream.cuda_stream):
                raise RuntimeError("TensorRT execution failed")
        self._stream.synchronize()
        return {k: v.cpu().numpy() for k, v in outputs.items()}


def ensure_plan(onnx_path: Path, spec: BuildSpec, cache: PlanCache,
                progress: Callable[[str], None] | None = None) -> tuple[Path, bytes]:
    """The cached plan for this model on this machine, built (and cached) first if missing."""
    trt = _tensorrt()
    onnx_path = Path(onnx_path)
    profile = profile_from_onnx(onnx_path, spec)
    digest = file_sha256(onnx_path)
    gpu = _gpu_name()
    key = plan_key(digest, gpu, trt.__version__, spec, profile)
    plan = cache.load(onnx_path.stem, spec.precision, key)
    if plan is not None:
        return cache.path(onnx_path.stem, spec.precision, key), plan
    t0 = time.monotonic()
    say = progress or (lambda msg: print(f"\r[tensorrt] {onnx_path.name}: {msg:<60}", end="", file=sys.stderr,
                                         flush=True))
    say(f"building {spec.precision} plan for {gpu} (minutes; cached afterwards)")
    plan = build_plan(onnx_path, spec, profile, say)
    info = {"onnx": str(onnx_path), "onnx_sha256": digest, "gpu": gpu, "tensorrt": trt.__version__,
            "profile": profile.as_key(), "spec": asdict(spec), "build_s": round(time.monotonic() - t0, 1)}
    path = cache.save(onnx_path.stem, spec.precision, key, plan, info)
    say(f"built in {info['build_s']} s -> {path}\n")
    return path, plan


@register_backend("tensorrt")
def _create(path: Path, *, threads: int | None = None, **options) -> TensorRTEngine:
    cache = options.pop("cache_dir", None)
    return TensorRTEngine(path, threads=threads, spec=BuildSpec(**options),
                          cache=PlanCache(cache) if cache else None)
