"""Writes a tiny, untrained model bundle that satisfies the manifest contract, for the worker's integration tests
(queue behaviour, failure handling, kill-and-retry) when the reference bundle is not needed. Real ONNX models,
real tokenizer.json (learnt by the training recipe's own tokenizer code); random fixed weights, so scores mean
nothing. Usage: python3 make_tiny_bundle.py OUT_DIR D H W < corpus.json   (tokenizer.json must already be in OUT_DIR)
"""
import hashlib
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DIM = 16


def save(model, path):
    onnx.checker.check_model(model)
    onnx.save(model, path)


def text_encoder(vocab, path, rng):
    emb = numpy_helper.from_array(rng.standard_normal((vocab, DIM)).astype(np.float32), "embedding")
    nodes = [
        helper.make_node("Gather", ["embedding", "input_ids"], ["tok"]),
        helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["maskf", "axis"], ["mask3"]),
        helper.make_node("Mul", ["tok", "mask3"], ["last_hidden_state"]),
    ]
    axis = numpy_helper.from_array(np.array([2], dtype=np.int64), "axis")
    graph = helper.make_graph(
        nodes, "tiny_text",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", DIM])],
        [emb, axis])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def image_encoder(shape, path, rng):
    d, h, w = shape
    k = (max(1, d // 4), max(1, h // 4), max(1, w // 4))
    feats = (d // k[0]) * (h // k[1]) * (w // k[2])
    weight = numpy_helper.from_array(rng.standard_normal((feats, DIM)).astype(np.float32) / np.sqrt(feats), "weight")
    nodes = [
        helper.make_node("AveragePool", ["volume"], ["pooled"], kernel_shape=list(k), strides=list(k)),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "weight"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_image",
        [helper.make_tensor_value_info("volume", TensorProto.FLOAT, ["batch", 1, d, h, w])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", DIM])],
        [weight])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    out, d, h, w = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    rng = np.random.default_rng(7)
    with open(os.path.join(out, "tokenizer.json")) as f:
        vocab = len(json.load(f)["model"]["vocab"])
    text_encoder(vocab, os.path.join(out, "text.onnx"), rng)
    encoders = {}
    for seq in ["T1", "T2", "FLAIR", "DWI", "ADC"]:
        image_encoder((d, h, w), os.path.join(out, f"image-{seq}.onnx"), rng)
        encoders[seq] = {"id": f"tiny-{seq}", "file": f"image-{seq}.onnx",
                         "input": {"name": "volume", "dtype": "float32", "shape": ["batch", 1, d, h, w]},
                         "output": {"name": "embedding", "dtype": "float32", "shape": ["batch", DIM]}}
    files = ["tokenizer.json", "text.onnx"] + [e["file"] for e in encoders.values()]
    cal = {"a": 8.0, "b": -2.0, "threshold": 0.3, "targetSensitivity": 0.9}
    manifest = {
        "schemaVersion": 1, "bundleId": "tiny-test", "version": "0.0.1", "createdAt": "2026-01-01T00:00:00Z",
        "embeddingDim": DIM,
        "textEncoder": {"id": "tiny-text", "file": "text.onnx", "tokenizer": "tokenizer.json", "maxLength": 64,
                        "inputs": [{"name": "input_ids", "dtype": "int64", "shape": ["batch", "sequence"]},
                                   {"name": "attention_mask", "dtype": "int64", "shape": ["batch", "sequence"]}],
                        "output": {"name": "last_hidden_state", "dtype": "float32", "shape": ["batch", "sequence", DIM]},
                        "pooling": "mean", "normalize": True},
        "imageEncoders": encoders,
        "preprocessing": json.loads(sys.stdin.read()),
        "combination": "mean-score",
        "queries": [
            {"id": "acute_infarct", "text": "acute infarct with restricted diffusion", "priority": "STAT", "calibration": cal},
            {"id": "hydrocephalus", "text": "enlarged ventricles hydrocephalus", "priority": "URGENT", "calibration": cal},
        ],
        "normalQuery": {"id": "normal", "text": "normal brain", "priority": "ROUTINE", "calibration": cal},
        "trainedOn": {"description": "nothing: random weights for tests", "studies": 0, "seed": 7},
        "files": {f: sha256(os.path.join(out, f)) for f in files},
    }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)


if __name__ == "__main__":
    main()
