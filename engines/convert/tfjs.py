"""Read a TensorFlow.js graph model (`model.json` + its weight shards) as TensorFlow nodes, for
engines/convert/tf_graph.py to convert to ONNX, without TensorFlow or node.

A graph model is a GraphDef written as JSON (`modelTopology.node`: name, op, input, attr), with
the constants' values taken out into binary shards (`weightsManifest`: groups of shard files,
concatenated in order, each weight a name, shape and dtype, optionally quantized to float16 or
to 8/16-bit integers with a scale and a minimum).
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engines.convert.graph import ConversionError

_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
_QUANTIZED = {"float16": np.float16, "uint8": np.uint8, "uint16": np.uint16}


def _attr_value(value: dict):
    """A JSON AttrValue: {"s": base64}, {"i": "3"}, {"f": 0.1}, {"b": true}, {"type": "DT_FLOAT"},
    {"list": {"i": [...], "s": [...], "f": [...]}}, {"shape": ...}, {"tensor": ...}."""
    if "list" in value:
        items = value["list"]
        if "s" in items:
            return [base64.b64decode(x).decode() for x in items["s"]]
        if "f" in items:
            return [float(x) for x in items["f"]]
        return [int(x) for x in items.get("i", [])]
    if "s" in value:
        return base64.b64decode(value["s"]).decode()
    if "i" in value:
        return int(value["i"])
    if "f" in value:
        return float(value["f"])
    if "b" in value:
        return bool(value["b"])
    if "type" in value:
        return value["type"]
    return value


@dataclass
class TfjsNode:
    name: str
    op: str
    inputs: list[str] = field(default_factory=list)
    attrs: dict = field(default_factory=dict)
    weight: np.ndarray | None = None        # a constant's value, from the weight shards

    def attr(self, key: str, default=None):
        if key == "value" and self.op == "Const":
            if self.weight is None:
                raise ConversionError(f"constant {self.name!r} has no weights in the shards")
            return self.weight
        return _attr_value(self.attrs[key]) if key in self.attrs else default


def read_weights(model_json: Path, manifest: list[dict]) -> dict[str, np.ndarray]:
    """Every weight of the manifest, dequantized to its original dtype."""
    weights: dict[str, np.ndarray] = {}
    for group in manifest:
        data = b"".join((model_json.parent / p).read_bytes() for p in group["paths"])
        offset = 0
        for w in group["weights"]:
            shape = [int(d) for d in w["shape"]]
            count = int(np.prod(shape)) if shape else 1
            quant = w.get("quantization")
            if quant:
                stored = _QUANTIZED.get(quant["dtype"])
                if stored is None:
                    raise ConversionError(f"{w['name']}: unsupported quantization {quant['dtype']!r}")
                raw = np.frombuffer(data, stored, count, offset)
                offset += raw.nbytes
                if quant["dtype"] == "float16":
                    array = raw.astype(np.float32)
                else:  # affine: value = min + q * scale
                    array = (quant["min"] + raw.astype(np.float32) * quant["scale"]).astype(np.float32)
                array = array.astype(_DTYPES[quant.get("original_dtype", w["dtype"])])
            else:
                dtype = _DTYPES.get(w["dtype"])
                if dtype is None:
                    raise ConversionError(f"{w['name']}: unsupported weight dtype {w['dtype']!r}")
                array = np.frombuffer(data, dtype, count, offset).copy()
                offset += array.nbytes
            weights[w["name"]] = array.reshape(shape)
        if offset != len(data):
            raise ConversionError(f"{model_json.name}: the shards hold {len(data)} bytes, the manifest "
                                  f"describes {offset}")
    return weights


@dataclass
class TfjsGraph:
    nodes: dict[str, TfjsNode]          # by name, constants carrying their weights
    inputs: dict[str, list[int]]        # the signature's tensors ("input_1:0") and their shapes (-1: any)
    outputs: dict[str, list[int]]
    keys: dict[str, str] = field(default_factory=dict)   # the signature's keys ("ld_3d") -> their tensors


def _signature(tensors: dict) -> dict[str, list[int]]:
    return {t.get("name", key): [int(d.get("size", -1)) for d in t.get("tensorShape", {}).get("dim", [])]
            for key, t in tensors.items()}


def read_tfjs(model_json: str | Path) -> TfjsGraph:
    model_json = Path(model_json)
    model = json.loads(model_json.read_text())
    if model.get("format") != "graph-model":
        raise ConversionError(f"{model_json.name} is a {model.get('format')!r}, not a TensorFlow.js graph model")
    weights = read_weights(model_json, model["weightsManifest"])
    nodes = {}
    for n in model["modelTopology"]["node"]:
        nodes[n["name"]] = TfjsNode(n["name"], n["op"], list(n.get("input", [])), n.get("attr", {}),
                                    weights.get(n["name"]))
    signature = model.get("signature", {})
    keys = {key: t.get("name", key) for part in ("inputs", "outputs") for key, t in signature.get(part, {}).items()}
    return TfjsGraph(nodes, _signature(signature.get("inputs", {})), _signature(signature.get("outputs", {})), keys)
