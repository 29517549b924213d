"""The ONNX Runtime backend (CPU provider; CUDA provider where onnxruntime-gpu and a GPU both exist)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from engines.registry import BackendUnavailable, register_backend


def _has_nvidia_gpu() -> bool:
    # onnxruntime-gpu lists CUDAExecutionProvider even with no GPU present: ask the hardware instead
    return Path("/dev/nvidiactl").exists()


class OnnxRuntimeEngine:
    backend = "onnxruntime"

    def __init__(self, path: Path, *, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise BackendUnavailable("onnxruntime is not installed (pip install onnxruntime)") from e
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        # Idle pool threads spin by default, taking the cores from the pipeline's other engines and
        # decoders: with the detector and pose sessions on 2 cores, spinning doubled both their times.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        if _has_nvidia_gpu() and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(path), opts, providers=providers)
        self.providers = self.session.get_providers()
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self.session.run(self.output_names, feeds)))


@register_backend("onnxruntime")
def _create(path: Path, *, threads: int | None = None) -> OnnxRuntimeEngine:
    return OnnxRuntimeEngine(path, threads=threads)
