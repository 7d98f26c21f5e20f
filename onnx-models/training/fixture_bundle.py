"""Test fixture only: a tiny bundle with RANDOM weights (never committed, never a model) so the loader, the
sessions and the ONNX parity of the service's pooling can be tested without a trained bundle or a cohort.

Usage: python3 fixture_bundle.py OUT_DIR   (writes tokenizer.json, text-encoder.onnx, image-t2.onnx,
image-*.onnx (five), manifest.json and parity fixtures in OUT_DIR/parity)
"""
import hashlib
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nt_image  # noqa: E402
import nt_text  # noqa: E402
import nt_tokenizer  # noqa: E402
from queries import DEFAULT_QUERIES, NORMAL_QUERY  # noqa: E402

CORPUS = [
    "FINDINGS: There is an acute infarct in the left MCA territory. IMPRESSION: Acute left MCA infarct.",
    "FINDINGS: The ventricles are enlarged. IMPRESSION: Hydrocephalus.",
    "FINDINGS: Normal appearances. No haemorrhage. IMPRESSION: Normal MRI brain.",
    "FINDINGS: A mass with surrounding oedema and mass effect. IMPRESSION: Intracranial mass.",
]
SHAPE = (8, 12, 12)
DIM = 32


def main(out):
    torch.manual_seed(0)
    os.makedirs(os.path.join(out, "parity"), exist_ok=True)
    vocab = nt_tokenizer.train_wordpiece(CORPUS * 3 + [q["text"] for q in DEFAULT_QUERIES], 400)
    with open(os.path.join(out, "tokenizer.json"), "w") as f:
        json.dump(nt_tokenizer.tokenizer_json(vocab), f)
    tok = nt_tokenizer.Tokenizer(vocab)
    text = nt_text.TextEncoder(tok.size, dim=DIM, layers=1, heads=2, ffn=64, max_len=64).eval()
    nt_text.export(text, os.path.join(out, "text-encoder.onnx"))
    ids, mask = nt_text.batch(tok, CORPUS, 64)
    with torch.no_grad():
        hidden = text(ids, mask).numpy()
        pooled = nt_text.mean_pool(text(ids, mask), mask).numpy()
    hidden.astype(np.float32).tofile(os.path.join(out, "parity", "text.f32"))
    meta = {"text": {"ids": ids.tolist(), "mask": mask.tolist(), "shape": list(hidden.shape), "sentences": CORPUS, "pooled": pooled.tolist()}, "images": {}}
    encoders = {}
    # All five sequences: the manifest schema currently requires every key (see notes/manifest-requests.md).
    for seq in ["T1", "T2", "FLAIR", "DWI", "ADC"]:
        m = nt_image.ImageEncoder(DIM, width=2).eval()
        path = os.path.join(out, f"image-{seq.lower()}.onnx")
        nt_image.export(m, path, SHAPE)
        x = np.random.default_rng(1).standard_normal((2,) + SHAPE).astype(np.float32)
        x.tofile(os.path.join(out, "parity", f"{seq}-in.f32"))
        nt_image.predict(m, x).astype(np.float32).tofile(os.path.join(out, "parity", f"{seq}-out.f32"))
        meta["images"][seq] = {"n": 2, "dim": DIM}
        encoders[seq] = {"id": f"fixture-{seq}", "file": os.path.basename(path),
                         "input": {"name": "volume", "dtype": "float32", "shape": ["batch", 1, *SHAPE]},
                         "output": {"name": "embedding", "dtype": "float32", "shape": ["batch", DIM]}}
    with open(os.path.join(out, "parity", "meta.json"), "w") as f:
        json.dump(meta, f)
    files = {}
    for name in ["tokenizer.json", "text-encoder.onnx"] + [e["file"] for e in encoders.values()]:
        with open(os.path.join(out, name), "rb") as f:
            files[name] = hashlib.sha256(f.read()).hexdigest()
    manifest = {
        "schemaVersion": 1, "bundleId": "test-fixture-random-weights", "version": "0", "createdAt": "1970-01-01T00:00:00Z",
        "embeddingDim": DIM,
        "textEncoder": {"id": "fixture-text", "file": "text-encoder.onnx", "tokenizer": "tokenizer.json", "maxLength": 64,
                        "inputs": [{"name": "input_ids", "dtype": "int64", "shape": ["batch", "sequence"]},
                                   {"name": "attention_mask", "dtype": "int64", "shape": ["batch", "sequence"]}],
                        "output": {"name": "last_hidden_state", "dtype": "float32", "shape": ["batch", "sequence", DIM]},
                        "pooling": "mean", "normalize": True},
        "imageEncoders": encoders,
        "preprocessing": {"orientation": "LPS", "spacingMm": [3, 3, 3], "shape": list(SHAPE), "centre": "volume-centre",
                          "interpolation": "trilinear", "intensity": {"method": "zscore-foreground", "clip": [-5, 5]}},
        "combination": "mean-embedding",
        "queries": DEFAULT_QUERIES,
        "normalQuery": NORMAL_QUERY,
        "trainedOn": {"description": "random weights: test fixture", "studies": 0},
        "files": files,
    }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)


if __name__ == "__main__":
    main(sys.argv[1])
