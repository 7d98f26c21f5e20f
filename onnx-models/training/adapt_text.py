#!/usr/bin/env python3
"""A retrained text encoder in the space of an existing bundle's image encoders, without retraining the CNNs.

The CNNs of a bundle regress onto the report vectors of the text encoder they were trained with. A better text
encoder (train.py --text-only) speaks another space. When retraining the CNNs is out of reach (they need a GPU or
hours of CPU), this script fits a linear map from the new encoder's pooled vectors to the old encoder's, on
sentences and report bodies of the training corpus only (ridge regression), appends it to the new encoder as a
per-token projection (mean pooling commutes with it, so the service still mean-pools and L2-normalises the output),
and writes a bundle: the new tokenizer, the projected text encoder, the old bundle's image encoders, the language
block (known words, sentence bank, off-topic closeness) in the projected space, checksums; then the service's own
calibration (calibrate.js) on a calibration cohort. No label is used before calibration.

  /usr/bin/python3 onnx-models/training/adapt_text.py --bundle onnx-models --text-encoder var/models-train/text-encoder.pt \
      --corpus var/models-train/corpus-n40000-s11.jsonl --heldout-corpus var/models-train/corpus-heldout-n300-s21.jsonl \
      --calib var/models-train/calib-n300-s2 --out OUT
"""
import argparse
import json
import os
import shutil
import sys
import types

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import nt_text  # noqa: E402
import nt_tokenizer  # noqa: E402
import train  # noqa: E402

CLI = os.path.join(ROOT, "dist", "shared", "models", "cli")


class Projected(torch.nn.Module):
    """The text encoder followed by a linear map of each token's hidden state (no bias)."""

    def __init__(self, base, w):
        super().__init__()
        self.base = base
        self.proj = torch.nn.Linear(w.shape[0], w.shape[1], bias=False)
        with torch.no_grad():
            self.proj.weight.copy_(torch.from_numpy(w.T))
        self.cfg = dict(base.cfg)

    def forward(self, ids, mask):
        return self.proj(self.base(ids, mask))


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True, help="the bundle whose image encoders are kept")
    ap.add_argument("--text-encoder", required=True, help="train.py --text-only output (text-encoder.pt)")
    ap.add_argument("--corpus", required=True, help="the training corpus (jsonl: text, kind)")
    ap.add_argument("--heldout-corpus", required=True, help="held-out wording corpus (sets the off-topic closeness)")
    ap.add_argument("--calib", required=True, help="calibration cohort folder (vol/, labels.jsonl, reports.jsonl)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--sentences", type=int, default=8000)
    ap.add_argument("--bodies", type=int, default=4000)
    ap.add_argument("--ridge", type=float, default=1e-2)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--version", required=True, help="bundle version to write")
    ap.add_argument("--training-log", help="the text encoder's training-log.json (its loss curve, for the model card)")
    args = ap.parse_args()
    torch.set_num_threads(2)

    corpus = [(r["text"], r["kind"]) for r in read_jsonl(args.corpus)]
    reports = [t for t, k in corpus if k == "report"]
    rng = np.random.default_rng(args.seed)
    sentences = list(dict.fromkeys(s for t in reports[:15000] for s in nt_text.sentences(nt_text.report_body(t))))
    sentences = [sentences[i] for i in rng.permutation(len(sentences))[: args.sentences]]
    bodies = [nt_text.report_body(reports[i]) for i in rng.permutation(len(reports))[: args.bodies]]
    texts = sentences + bodies

    old = train.embed_with_bundle(CLI, args.bundle, texts)

    vocab, tok, base = train.load_text_encoder(args.text_encoder)
    with torch.no_grad():
        new = nt_text.embed(base, tok, texts, 256)
    held = rng.permutation(len(texts))[: len(texts) // 10]
    fit = np.setdiff1d(np.arange(len(texts)), held)
    solve = lambda idx: np.linalg.solve(new[idx].T @ new[idx] + args.ridge * np.eye(new.shape[1]), new[idx].T @ old[idx])  # noqa: E731
    check = new[held] @ solve(fit)
    check /= np.linalg.norm(check, axis=1, keepdims=True)
    agreement = float((check * old[held]).sum(1).mean())
    train.log(f"projection {new.shape[1]} -> {old.shape[1]}: held-out texts' cosine with the image space's text vectors {agreement:.3f}")
    w = solve(np.arange(len(texts))).astype(np.float32)

    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    model = Projected(base, w).eval()
    nt_text.export(model, os.path.join(args.out, "text-encoder.onnx"))
    with open(os.path.join(args.out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(nt_tokenizer.tokenizer_json(vocab), f, ensure_ascii=False)
    heldout = [r["text"] for r in read_jsonl(args.heldout_corpus) if r["kind"] == "report"]
    with torch.no_grad():
        language = train.write_language(types.SimpleNamespace(out=args.out, seed=1, bank_size=4096), tok, model, corpus, heldout, 256)

    with open(os.path.join(args.bundle, "manifest.json")) as f:
        manifest = json.load(f)
    for name in os.listdir(args.bundle):
        if name.startswith("image-") and name.endswith(".onnx"):
            shutil.copy(os.path.join(args.bundle, name), args.out)
    cfg = base.cfg
    manifest["version"] = args.version
    manifest["textEncoder"]["id"] = f"neurotriage-minibert-{len(vocab)}v-{cfg['layers']}l-{cfg['dim']}d-projected-{old.shape[1]}d"
    manifest["language"] = language
    trained = train.amend_description(manifest, "text encoder retrained and projected (adapt_text.py)", args.calib)
    trained["textEncoder"] = (
        f"retrained on {len(reports)} lexicon-generated reports (WordPiece {len(vocab)}, {cfg['layers']} layers, {cfg['dim']}-d); "
        f"a linear map fitted on {len(sentences)} corpus sentences and {len(bodies)} report bodies (ridge {args.ridge}, held-out "
        f"cosine {agreement:.3f}) projects it into the {old.shape[1]}-d space the image encoders were trained in (adapt_text.py)")
    if args.training_log:
        with open(args.training_log) as f:
            text_log = json.load(f)["textEncoder"]
        with open(os.path.join(args.out, "training-log.json"), "w") as f:
            json.dump({"textEncoder": text_log}, f)
    manifest["files"] = {name: train.sha256(os.path.join(args.out, name))
                         for name in sorted(os.listdir(args.out)) if name != "manifest.json"}
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    train.calibrate_bundle(CLI, args.out, args.calib)
    train.log(f"bundle written to {args.out}")


if __name__ == "__main__":
    main()
