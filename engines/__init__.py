"""Run exported models behind one interface, with the backend chosen by name from a registry.

    engine = create_engine("onnxruntime", "models/ssdlite_person.onnx", threads=2)
    outputs = engine.run({"image": batch})          # name -> array, batch first

Backends: `onnxruntime` (CPU; CUDA where a GPU and onnxruntime-gpu exist), `tensorrt` (a plan
built from the same ONNX file, cached; engines/tensorrt_backend.py). A backend that cannot run
here raises BackendUnavailable naming the alternatives, unless `fallback` lists backends to try
next.
"""
from __future__ import annotations

from engines.registry import (BackendUnavailable, Engine, backend_names, create_engine, file_sha256,  # noqa: F401
                              onnx_input_shapes, register_backend)
from engines import onnxruntime_backend, tensorrt_backend, torch_backend  # noqa: E402,F401  (they register themselves)
