#!/usr/bin/env python3
"""One image encoder of an existing bundle trained into that bundle's space, without retraining the others: a new
sequence, or (--continue) more training of an encoder the bundle has.

A bundle's image encoders all regress onto the report vectors of its text encoder. A sequence the bundle has no
encoder for (SWI, say, added to the generator after the bundle's CNNs were trained) can join it on its own: this
script embeds the training cohort's report bodies (Findings + Impression) with the bundle's own text encoder,
exactly as the service does (dist/shared/models/cli/embed.js), trains one CNN on that sequence's canonical
volumes onto those vectors (nt_image.train, the recipe's augmentation), exports it, checks ONNX parity against
torch (parity.js), lets the chosen queries read it (--reads), and calibrates the new bundle with the service's own
code (calibrate.js) on a calibration cohort. The other files are copied unchanged. No label is used before
calibration.

  /usr/bin/python3 onnx-models/training/add_encoder.py --bundle onnx-models --sequence SWI \
      --cohort var/models-train/train-n1400-s1 --cohort var/models-train/swi-n1600-s31 --calib var/models-train/calib-n300-s2 \
      --reads haemorrhage=DWI,SWI --version 2026.12.05-swi --out OUT

--continue starts from the bundle's own encoder for --sequence (its ONNX weights, nt_image.from_onnx) and replaces
it, queries unchanged: how a bundle's encoder gets the scanner-style domain randomisation it was not trained with,
at a lower learning rate, without training it again from nothing:

  /usr/bin/python3 onnx-models/training/add_encoder.py --bundle onnx-models --sequence DWI --continue \
      --cohort var/models-train/train-n1400-s1 --cohort var/models-train/swi-n1600-s31 --calib var/models-train/calib-n300-s2 \
      --epochs 6 --lr 3e-4 --domain-share 0.5 --version VERSION --out OUT

A cohort for it: `npm run synth -- --n 1600 --seed 31 --matrix 128 --swi-share 1 --out DIR` (every study with SWI),
then `npm run volumes -- DIR/dicom --out DIR/vol --spec <the bundle's preprocessing>`.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import nt_image  # noqa: E402
import nt_text  # noqa: E402
import train  # noqa: E402

CLI = os.path.join(ROOT, "dist", "shared", "models", "cli")


def report_vectors(bundle, text_sha256, cohort):
    """{StudyInstanceUID: vector} of the cohort's report bodies in the bundle's text space, cached beside the cohort
    per text encoder (its checksum names the cache)."""
    cache = os.path.join(cohort, f"report-vectors-bundle-{text_sha256[:12]}.npz")
    if os.path.exists(cache):
        with np.load(cache) as z:
            return dict(zip(z["uids"].tolist(), z["vectors"]))
    reports = train.read_jsonl(os.path.join(cohort, "reports.jsonl"))
    uids = [r["StudyInstanceUID"] for r in reports]
    vectors = train.embed_with_bundle(CLI, bundle, [nt_text.report_body(r["text"]) for r in reports])
    np.savez(cache + ".tmp.npz", uids=np.array(uids), vectors=vectors)
    os.replace(cache + ".tmp.npz", cache)
    return dict(zip(uids, vectors))


def parse_reads(items, sequence):
    """--reads QUERY=SEQ,SEQ -> {query id: [sequences]}; each list must name the new sequence."""
    out = {}
    for item in items:
        qid, _, seqs = item.partition("=")
        seqs = [s.strip() for s in seqs.split(",") if s.strip()]
        if not qid or sequence not in seqs:
            raise SystemExit(f"--reads {item}: expected QUERY=SEQ,... naming {sequence}")
        out[qid] = seqs
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True, help="the bundle that gains the encoder (read only)")
    ap.add_argument("--sequence", required=True, choices=train.SEQUENCES)
    ap.add_argument("--cohort", required=True, action="append",
                    help="training cohort folder: vol/ (canonical volumes) and reports.jsonl; repeat to train on several")
    ap.add_argument("--calib", required=True, help="calibration cohort folder: vol/, labels.jsonl, reports.jsonl")
    ap.add_argument("--continue", dest="continue_", action="store_true",
                    help="train the bundle's own --sequence encoder further and replace it (queries unchanged)")
    ap.add_argument("--reads", action="append", default=[], help="QUERY=SEQ,SEQ: the sequences a query reads from now on")
    ap.add_argument("--supplementary", action="store_true",
                    help="a sequence only some protocols include: read when present, never waited for (manifest "
                         "imageEncoders.<SEQ>.supplementary; always so for train.SUPPLEMENTARY, i.e. SWI)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--version", required=True, help="bundle version to write")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--augment", choices=["none", "basic", "domain"], default="domain")
    ap.add_argument("--domain-share", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU host (the CNN stage is where compute pays)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    seq = args.sequence
    with open(os.path.join(args.bundle, "manifest.json")) as f:
        manifest = json.load(f)
    if args.continue_ and seq not in manifest["imageEncoders"]:
        raise SystemExit(f"--continue: {args.bundle} has no {seq} encoder")
    if not args.continue_ and seq in manifest["imageEncoders"]:
        raise SystemExit(f"{args.bundle} already has a {seq} encoder (--continue trains it further)")
    reads = parse_reads(args.reads, seq)
    ids = {q["id"] for q in manifest["queries"]}
    unknown = sorted(set(reads) - ids)
    if unknown:
        raise SystemExit(f"--reads: no query {', '.join(unknown)} in {args.bundle}")
    shape = tuple(manifest["preprocessing"]["shape"])
    dim = int(manifest["embeddingDim"])

    su, parts = [], []
    for cohort in args.cohort:
        train.log(f"1. report vectors of {cohort} in the bundle's text space")
        vectors = report_vectors(args.bundle, manifest["files"][manifest["textEncoder"]["file"]], cohort)
        train.log(f"2. {seq} volumes of {cohort}")
        vols = train.load_volumes(os.path.join(cohort, "vol"), shape, [seq])
        if seq not in vols:
            raise SystemExit(f"{cohort}: no {seq} volumes")
        uids, volumes = vols[seq]
        keep = [i for i, u in enumerate(uids) if u in vectors]
        su += [(u, vectors[u]) for u in (uids[i] for i in keep)]
        parts.append(volumes[keep])
    sv = np.concatenate(parts) if len(parts) > 1 else parts[0]
    y = np.stack([v for _, v in su]).astype(np.float32)
    if y.shape[1] != dim:
        raise SystemExit(f"report vectors are {y.shape[1]}-d, the bundle's space {dim}-d")
    rng = np.random.default_rng(args.seed)
    perm = rng.permutation(len(su))
    nval = max(1, len(su) // 10)
    val, tr = np.sort(perm[:nval]), np.sort(perm[nval:])
    train.log(f"   {len(tr)} training series, {len(val)} validation; mse of predicting the mean vector "
              f"{float(np.mean((y[val] - y[tr].mean(0)) ** 2)):.5f}")
    aug = {"none": False, "basic": True, "domain": "domain"}[args.augment]
    init = None
    if args.continue_:
        init = nt_image.from_onnx(os.path.join(args.bundle, manifest["imageEncoders"][seq]["file"]))
        train.log(f"   from the bundle's {seq} encoder: validation mse {nt_image.evaluate(init, sv[val], y[val]):.5f}")
    model = nt_image.train(sv[tr], y[tr], args.epochs, args.seed, train.log, seq, val=(sv[val], y[val]), width=args.width,
                           aug=aug, batch_size=args.batch_size, domain_share=args.domain_share, lr=args.lr,
                           device=args.device, init=init)

    train.log("3. bundle")
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    for name in manifest["files"]:
        shutil.copy(os.path.join(args.bundle, name), args.out)
    entry = manifest["imageEncoders"][seq] if args.continue_ else train.encoder_entry(seq, os.path.join(args.out, f"image-{seq.lower()}.onnx"), shape, dim)
    nt_image.export(model, os.path.join(args.out, entry["file"]), shape)
    if args.supplementary:
        entry["supplementary"] = True
    manifest["imageEncoders"][seq] = entry
    for q in manifest["queries"]:
        if q["id"] in reads:
            q["sequences"] = reads[q["id"]]
    manifest["version"] = args.version
    how = "trained further by add_encoder.py --continue" if args.continue_ else "added by add_encoder.py"
    train.amend_description(manifest, f"{seq} encoder {how} ({len(tr)} series of "
                            f"{', '.join(os.path.basename(os.path.normpath(c)) for c in args.cohort)}, {args.epochs} epochs on {args.device}, "
                            f"{args.augment} augmentation{f' on {args.domain_share:g} of batches' if args.augment == 'domain' else ''}, peak learning rate {args.lr:g}), reports embedded by the bundle's text encoder", args.calib)
    manifest["files"][entry["file"]] = train.sha256(os.path.join(args.out, entry["file"]))
    manifest["files"] = dict(sorted(manifest["files"].items()))
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)

    train.log("4. ONNX parity (torch outputs) in onnxruntime-node")
    with tempfile.TemporaryDirectory() as fx:
        # Image fixtures only: the text encoder is the bundle's, unchanged.
        x = sv[val][:2]
        nt_image.predict(model, x).astype(np.float32).tofile(os.path.join(fx, f"{seq}-out.f32"))
        x.astype(np.float32).tofile(os.path.join(fx, f"{seq}-in.f32"))
        with open(os.path.join(fx, "meta.json"), "w") as f:
            json.dump({"images": {seq: {"n": int(len(x)), "dim": dim}}}, f)
        train.run(["node", os.path.join(CLI, "parity.js"), "--bundle", args.out, "--fixtures", fx])

    train.log(f"5. calibration on {args.calib}")
    train.calibrate_bundle(CLI, args.out, args.calib)
    total = sum(os.path.getsize(os.path.join(args.out, p)) for p in os.listdir(args.out))
    train.log(f"6. bundle written to {args.out}: {total / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
