"""neurotriage training recipe, end to end (npm run models:train; npm run models:smoke runs it tiny).

  1. synthetic training cohort      npm run synth   (reports.jsonl + DICOM; labels.jsonl is NEVER read here)
  2. canonical volumes              npm run volumes (shared/imaging: the worker's own preprocessing)
  2b. text corpus                   tools/synth/corpus: the reports of many more planned studies (text only, the
                                    lexicon's train wording) plus off-topic English
  3. WordPiece vocabulary           nt_tokenizer.py -> tokenizer.json
  4. text encoder                   nt_text.py: MLM + Findings<->Impression + sentence<->report matching, off-topic
                                    negatives, until the validation loss stops improving -> text-encoder.onnx
  5. report vectors                 Findings and Impression mean-pooled together, L2-normalised
  6. image encoders                 nt_image.py: one 3D CNN per sequence, MSE to the report vectors, with
                                    scanner-style domain randomisation
  7. ONNX export + parity           onnxruntime-node (shared/models/cli/parity) vs torch, max abs diff <= 1e-4
  7b. language files                known words and a sentence bank, with the off-topic and mention thresholds
  7c. atlas                         atlas.py: voxelwise median and robust spread of the training volumes, per
                                    sequence (no labels), which the worker localises flagged findings against
  8. calibration (evaluation side)  a separate calibration cohort (seed + 1): its labels.jsonl fits Platt (a, b),
                                    the per-query probability thresholds and the study-level STAT/URGENT decision
                                    tables (shared/models/cli/calibrate.js, the service's own code); no weight changes.
  9. manifest.json with sha256 of every file.
"""
import argparse
import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import nt_image  # noqa: E402
import nt_text  # noqa: E402
import nt_tokenizer  # noqa: E402
from queries import DEFAULT_QUERIES, NORMAL_QUERY  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
SEQUENCES = ["T1", "T2", "FLAIR", "DWI", "ADC", "SWI"]
T0 = time.time()
SYNTH_CMD = ["npm", "run", "--silent", "synth", "--"]
CORPUS_CMD = ["node", os.path.join(ROOT, "dist", "tools", "synth", "corpus.js")]
VOLUMES_CMD = ["npm", "run", "--silent", "volumes", "--"]


def log(msg):
    print(f"[models:train {time.time() - T0:6.0f}s] {msg}", flush=True)


def run(cmd, **kw):
    log("$ " + " ".join(cmd))
    subprocess.run(cmd, cwd=ROOT, check=True, **kw)


WAIT_FOR_COHORTS = []


def make_cohort(out, n, seed, spec, phrasing="train", scanner="train", extra=()):
    if WAIT_FOR_COHORTS:
        # Cohorts made by another process (e.g. generated ahead while training runs): wait for them.
        while not os.path.exists(os.path.join(out, "vol", "index.jsonl")):
            log(f"waiting for {out}/vol/index.jsonl")
            time.sleep(30)
    if os.path.exists(os.path.join(out, "reports.jsonl")) and os.path.exists(os.path.join(out, "vol", "index.jsonl")):
        log(f"reusing cohort {out}")
        return
    shutil.rmtree(out, ignore_errors=True)
    run([*SYNTH_CMD, "--n", str(n), "--seed", str(seed), "--out", out,
         "--phrasing-set", phrasing, "--scanner-set", scanner, *extra])
    run([*VOLUMES_CMD, os.path.join(out, "dicom"), "--out", os.path.join(out, "vol"), "--spec", spec])


report_body = nt_text.report_body


def make_corpus(path, n, seed, phrasing="train"):
    """The text-only corpus (tools/synth/corpus.js): [(text, kind)], kind report or off-topic."""
    if not os.path.exists(path):
        run([*CORPUS_CMD, "--n", str(n), "--seed", str(seed), "--out", path + ".tmp", "--phrasing-set", phrasing])
        os.replace(path + ".tmp", path)
    else:
        log(f"reusing corpus {path}")
    return [(r["text"], r["kind"]) for r in read_jsonl(path)]


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_volumes(voldir, shape, sequences=SEQUENCES):
    """{sequence: (study uids, memory array [N, D, H, W])} from VOLDIR/<Study>/<SEQ>.f32."""
    out = {}
    size = int(np.prod(shape))
    for study in sorted(os.listdir(voldir)):
        d = os.path.join(voldir, study)
        if not os.path.isdir(d):
            continue
        for seq in sequences:
            f = os.path.join(d, seq + ".f32")
            if os.path.exists(f):
                v = np.fromfile(f, dtype=np.float32)
                if v.size != size:
                    raise SystemExit(f"{f}: {v.size} voxels, expected {size} ({shape})")
                out.setdefault(seq, ([], []))
                out[seq][0].append(study)
                out[seq][1].append(v.reshape(shape))
    return {s: (u, np.stack(v)) for s, (u, v) in out.items()}


def load_text_state(path):
    """The saved text encoder; torch >= 2.6 loads weights-only by default, which this plain dict passes."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except TypeError:  # torch before 1.13 has no weights_only
        return torch.load(path, map_location="cpu")


def load_text_encoder(path):
    state = load_text_state(path)
    text_model = nt_text.TextEncoder(**state["cfg"])
    text_model.load_state_dict(state["weights"])
    text_model.eval()
    return state["vocab"], nt_tokenizer.Tokenizer(state["vocab"]), text_model


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def auc(scores, labels):
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    pos, neg = s[y == 1], s[y == 0]
    return float(((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg)))


def fit_platt(scores, labels, iters=200):
    """Logistic regression p = sigmoid(a * s + b) by Newton's method; scores standardised for conditioning."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    mu, sd = s.mean(), s.std() or 1.0
    x = (s - mu) / sd
    w = np.zeros(2)
    X = np.stack([x, np.ones_like(x)], 1)
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(X @ w)))
        g = X.T @ (p - y) + 1e-3 * w
        H = (X * (p * (1 - p))[:, None]).T @ X + 1e-3 * np.eye(2)
        step = np.linalg.solve(H, g)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    a = w[0] / sd
    return float(a), float(w[1] - a * mu)


def threshold_for_sensitivity(scores, labels, target):
    pos = np.sort(np.asarray(scores)[np.asarray(labels) == 1])
    if len(pos) == 0:
        return float(np.max(scores)) + 1.0
    # Largest threshold that still flags >= target of the positives.
    k = int(np.floor((1 - target) * len(pos)))
    return float(pos[min(k, len(pos) - 1)])


# Calibration targets: each query's own threshold, and the study-level STAT and URGENT decisions.
TARGET_SENSITIVITY, STAT_SENSITIVITY, URGENT_SENSITIVITY = 0.9, 0.95, 0.9


def calibrate_bundle(node_cli, bundle, calib_dir, target=TARGET_SENSITIVITY, stat=STAT_SENSITIVITY, urgent=URGENT_SENSITIVITY):
    """A bundle scored on a calibration cohort (vol/, labels.jsonl, reports.jsonl) and calibrated by the service's own
    code: calibrate.js rewrites the manifest's calibrations, decision tables and mention similarity."""
    run(["node", os.path.join(node_cli, "calibrate.js"), "--bundle", bundle, "--volumes", os.path.join(calib_dir, "vol"),
         "--labels", os.path.join(calib_dir, "labels.jsonl"), "--reports", os.path.join(calib_dir, "reports.jsonl"),
         "--target-sensitivity", str(target), "--stat-sensitivity", str(stat), "--urgent-sensitivity", str(urgent)])


def embed_with_bundle(node_cli, bundle, texts):
    """Text vectors [len(texts), dim] from a bundle's text encoder, exactly as the service computes them (embed.js)."""
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "texts.json"), "w", encoding="utf-8") as f:
            json.dump(texts, f)
        run(["node", os.path.join(node_cli, "embed.js"), "--bundle", bundle, "--texts", os.path.join(tmp, "texts.json"),
             "--out", os.path.join(tmp, "vectors.f32")])
        return np.fromfile(os.path.join(tmp, "vectors.f32"), dtype="<f4").reshape(len(texts), -1)


def amend_description(manifest, change, calib_dir):
    """trainedOn.description of a bundle changed after training (adapt_text.py, add_encoder.py): what it was up to
    its calibration clause, the change, and the new calibration cohort."""
    trained = manifest.setdefault("trainedOn", {})
    trained["description"] = (trained.get("description", "").split("; calibration")[0].rstrip(". ")
                              + f"; {change}; calibration on a separate synthetic cohort of {len(read_jsonl(os.path.join(calib_dir, 'labels.jsonl')))} "
                              f"studies ({os.path.basename(os.path.normpath(calib_dir))}). Not for clinical use.")
    return trained


def calibrate(args, calib_dir, spec_path, synth_extra):
    """Step 8: the calibration cohort, scored and calibrated by the service's own code."""
    log(f"8. calibration cohort: {args.calib_n} studies, seed {args.seed + 1} (labels used here only)")
    make_cohort(calib_dir, args.calib_n, args.seed + 1, spec_path, extra=synth_extra)
    calibrate_bundle(args.node_cli, args.out, calib_dir, args.target_sensitivity, args.stat_sensitivity, args.urgent_sensitivity)


def write_language(args, tok, text_model, corpus_texts, heldout_texts, max_len):
    """Step 7b: what the text encoder knows of language, for the service to tell a user how well it understands a
    sentence (manifest.language): every word of the training corpus, a bank of its distinct sentences as vectors, the
    closeness below which text is off-topic (set between held-out radiology sentences and held-out off-topic
    English) and the similarity at which a report sentence mentions a query (set on held-out labelled text)."""
    reports = [t for t, k in corpus_texts if k == "report"]
    words = sorted({w for t in reports for w in re.findall(r"[a-z0-9]+(?:['-][a-z0-9]+)*", t.lower())})
    with open(os.path.join(args.out, "known-words.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(words) + "\n")
    rng = np.random.default_rng(args.seed)
    distinct = list(dict.fromkeys(s for t in reports[:20000] for s in nt_text.sentences(report_body(t))))
    bank = [distinct[i] for i in sorted(rng.choice(len(distinct), size=min(args.bank_size, len(distinct)), replace=False))]
    bank_vectors = nt_text.embed(text_model, tok, bank, max_len).astype("<f4")
    bank_vectors.tofile(os.path.join(args.out, "sentence-bank.f32"))
    closeness = lambda texts: (nt_text.embed(text_model, tok, texts, max_len) @ bank_vectors.T).max(1)  # noqa: E731
    with open(nt_text.LEXICON, encoding="utf-8") as f:
        lex = json.load(f)
    medical = [p["text"] for ps in lex["evaluationPhrasings"]["findings"].values() for p in ps] + [p["text"] for p in lex["evaluationPhrasings"]["negated"]]
    medical += list(dict.fromkeys(s for t in heldout_texts for s in nt_text.sentences(report_body(t))))[:400]
    off = lex["offTopic"]["heldout"] + [f"{a} {b}." for a in lex["offTopicWords"]["subjects"]["heldout"] for b in lex["offTopicWords"]["predicates"]["heldout"]]
    cm, co = closeness(medical), closeness(off)
    cands = np.unique(np.concatenate([cm, co]))
    bal = [(0.5 * ((cm >= t).mean() + (co < t).mean()), t) for t in cands]
    best_acc, off_topic_below = max(bal)
    log(f"7b. language: {len(words)} known words, sentence bank {len(bank)}; off-topic below {off_topic_below:.3f} "
        f"(held-out radiology kept {(cm >= off_topic_below).mean():.3f}, held-out off-topic refused {(co < off_topic_below).mean():.3f})")
    return {"knownWords": "known-words.txt", "sentenceBank": "sentence-bank.f32", "sentences": len(bank),
            "offTopicBelow": round(float(off_topic_below), 4), "mentionSimilarity": 0.5}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "onnx-models"), help="bundle directory")
    ap.add_argument("--work", default=os.path.join(ROOT, "var", "models-train"), help="cohorts, logs, fixtures")
    ap.add_argument("--n", type=int, default=500, help="training studies")
    ap.add_argument("--calib-n", type=int, default=200, help="calibration studies (separate seed)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--corpus-n", type=int, default=40000, help="reports in the text-only corpus for the text encoder")
    ap.add_argument("--vocab", type=int, default=8000, help="WordPiece vocabulary size at most")
    ap.add_argument("--text-steps", type=int, default=6000, help="text encoder steps at most (it stops when the validation loss stops improving)")
    ap.add_argument("--text-batch", type=int, default=32)
    ap.add_argument("--text-eval-every", type=int, default=200)
    ap.add_argument("--text-patience", type=int, default=5, help="evaluations without validation improvement before the text encoder stops")
    ap.add_argument("--dim", type=int, default=256, help="embedding dimension (text encoder width)")
    ap.add_argument("--layers", type=int, default=4, help="text encoder transformer layers")
    ap.add_argument("--ffn", type=int, default=0, help="text encoder feed-forward width (default 2 x dim)")
    ap.add_argument("--sequences", default=",".join(SEQUENCES), help="sequences to train an image encoder for")
    ap.add_argument("--reuse-text", action="store_true", help="reuse the text encoder saved in --work by an earlier run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--target-sensitivity", type=float, default=TARGET_SENSITIVITY, help="per-query target (ROUTINE queries' own thresholds)")
    ap.add_argument("--stat-sensitivity", type=float, default=STAT_SENSITIVITY, help="study-level STAT decision target on the calibration cohort")
    ap.add_argument("--urgent-sensitivity", type=float, default=URGENT_SENSITIVITY, help="study-level URGENT decision target on the calibration cohort")
    ap.add_argument("--bank-size", type=int, default=4096, help="sentences in the language sentence bank")
    ap.add_argument("--min-series", type=int, default=40, help="train an encoder for a sequence only with this many series")
    ap.add_argument("--shape", default="48,64,64", help="canonical volume [D,H,W]; must match the volumes CLI")
    ap.add_argument("--spacing", default="3,3,3")
    ap.add_argument("--synth-args", default="", help="extra arguments for npm run synth (e.g. --fast for the smoke run)")
    ap.add_argument("--width", type=int, default=8, help="CNN base channel count")
    ap.add_argument("--fine-stem", action="store_true", help="CNN keeps half resolution for one more block (slower, for small lesions)")
    ap.add_argument("--domain-share", type=float, default=1.0,
                    help="share of batches that get the domain randomisation (the others the basic augmentation); below 1 on CPU")
    ap.add_argument("--augment", default="domain", choices=["none", "basic", "domain"],
                    help="CNN training augmentation: domain (scanner-style domain randomisation, the default), basic (shifts and "
                         "intensity jitter), none")
    ap.add_argument("--node-cli", default=os.path.join(ROOT, "dist", "shared", "models", "cli"),
                    help="compiled shared/models/cli (parity.js, score.js, calibrate.js)")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny everything (the CI smoke run): a few studies, a few steps, small models; never a bundle to commit")
    ap.add_argument("--synth-cmd", default=" ".join(SYNTH_CMD), help="how to run the synth CLI (the smoke test uses the built dist/)")
    ap.add_argument("--volumes-cmd", default=" ".join(VOLUMES_CMD), help="how to run the volumes CLI")
    ap.add_argument("--corpus-cmd", default=" ".join(CORPUS_CMD), help="how to run the text corpus CLI")
    ap.add_argument("--calibrate-only", action="store_true", help="only re-calibrate the bundle in --out with the current default queries")
    ap.add_argument("--device", default="cpu", help="where the CNNs train: cpu or cuda (text stays on CPU)")
    ap.add_argument("--batch-size", type=int, default=16, help="CNN training batch")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--lr", type=float, default=2e-3, help="CNN peak learning rate (one-cycle)")
    ap.add_argument("--budget-s", type=float, help="cap each CNN's epochs to fit this many seconds (timed on a few steps)")
    ap.add_argument("--images-only", action="store_true", help="stop after training the CNNs (with --save-image-weights)")
    ap.add_argument("--text-only", action="store_true", help="stop after training and saving the text encoder (--work/text-encoder.pt)")
    ap.add_argument("--save-image-weights", help="write each CNN's weights (.npz) and how it was trained (.json) here")
    ap.add_argument("--load-image-weights", help="take the CNNs from --save-image-weights files instead of training them "
                                                 "(e.g. trained on a GPU host); then export, parity, calibration as usual")
    ap.add_argument("--wait-for-cohorts", action="store_true", help="cohorts are being generated elsewhere: wait for them")
    args = ap.parse_args()
    if args.wait_for_cohorts:
        WAIT_FOR_COHORTS.append(True)
    SYNTH_CMD[:] = args.synth_cmd.split()
    VOLUMES_CMD[:] = args.volumes_cmd.split()
    CORPUS_CMD[:] = args.corpus_cmd.split()
    if args.smoke and os.path.abspath(args.out) == os.path.join(ROOT, "onnx-models"):
        raise SystemExit("--smoke writes an untrained bundle: give it a scratch --out, never onnx-models/")
    if args.smoke:
        args.n, args.calib_n, args.vocab, args.text_steps, args.epochs = min(args.n, 12), min(args.calib_n, 10), 800, 3, 1
        args.dim, args.width, args.layers, args.min_series, args.shape = 32, 2, 1, 2, "16,24,24"
        args.corpus_n, args.text_batch, args.text_eval_every, args.bank_size = 60, 8, 3, 50
    args.ffn = args.ffn or 2 * args.dim
    torch.set_num_threads(args.threads)
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick its fastest 3D convolutions once
    torch.manual_seed(args.seed)
    shape = tuple(int(x) for x in args.shape.split(","))
    os.makedirs(args.work, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)

    # The one preprocessing spec: handed to the volumes CLI (shared/imaging, the worker's code) and written into
    # the manifest, so the grid the CNNs learnt on is the grid the worker produces.
    preprocessing = {"orientation": "LPS", "spacingMm": [float(x) for x in args.spacing.split(",")], "shape": list(shape),
                     "centre": "foreground-centroid", "interpolation": "trilinear",
                     "intensity": {"method": "zscore-foreground", "clip": [-5, 5]}}
    spec_path = os.path.join(args.work, "preprocessing.json")
    with open(spec_path, "w") as f:
        json.dump(preprocessing, f)
    synth_extra = tuple(args.synth_args.split()) if args.synth_args else ()
    train_dir = os.path.join(args.work, f"train-n{args.n}-s{args.seed}")
    calib_dir = os.path.join(args.work, f"calib-n{args.calib_n}-s{args.seed + 1}")
    if args.calibrate_only:
        # Re-calibrate a trained bundle (e.g. after changing the default queries or a target): no weight changes.
        manifest_path = os.path.join(args.out, "manifest.json")
        with open(manifest_path) as f:
            manifest = json.load(f)
        manifest["queries"], manifest["normalQuery"] = [dict(q) for q in DEFAULT_QUERIES], dict(NORMAL_QUERY)
        with open(manifest_path, "w") as f:
            json.dump(manifest, f, indent=2)
        calibrate(args, calib_dir, spec_path, synth_extra)
        return
    wanted = [x for x in SEQUENCES if x in args.sequences.split(",")]
    metas = {}
    if args.load_image_weights:
        # The CNNs were trained elsewhere (e.g. on a GPU host, --save-image-weights) on a cohort this machine does not
        # hold; the text encoder they regressed onto must be this one (--reuse-text), and their meta says what data.
        if not args.reuse_text:
            raise SystemExit("--load-image-weights needs --reuse-text: the CNNs were trained against that text encoder")
        for seq in wanted:
            f = os.path.join(args.load_image_weights, f"image-{seq.lower()}")
            if os.path.exists(f + ".npz"):
                metas[seq] = nt_image.load_weights(f)
        if not metas:
            raise SystemExit(f"no image-<seq>.npz for {wanted} in {args.load_image_weights}")
        first = next(iter(metas.values()))[1]
        args.n, args.seed = first["studies"], first["seed"]
        calib_dir = os.path.join(args.work, f"calib-n{args.calib_n}-s{args.seed + 1}")
        reports = []
    elif not args.text_only:
        log(f"1-2. training cohort: {args.n} studies, seed {args.seed}")
        make_cohort(train_dir, args.n, args.seed, spec_path, extra=synth_extra)
        reports = read_jsonl(os.path.join(train_dir, "reports.jsonl"))
    else:
        reports = []

    tok_path = os.path.join(args.out, "tokenizer.json")
    saved = os.path.join(args.work, "text-encoder.pt")
    max_len = 256
    log(f"2b. text corpus: {args.corpus_n} reports, seed {args.seed + 10}")
    corpus_texts = make_corpus(os.path.join(args.work, f"corpus-n{args.corpus_n}-s{args.seed + 10}.jsonl"), args.corpus_n, args.seed + 10)
    corpus_texts += [(r["text"], "report") for r in reports]
    if args.reuse_text and os.path.exists(saved):
        log(f"3-4. reusing vocabulary and text encoder from {saved}")
        vocab, tok, text_model = load_text_encoder(saved)
        curve = json.loads(load_text_state(saved).get("curve", "[]"))
    elif args.load_image_weights:
        raise SystemExit(f"--reuse-text: no saved text encoder at {saved}")
    else:
        report_texts = [t for t, k in corpus_texts if k == "report"]
        off_topic = [t for t, k in corpus_texts if k == "off-topic"]
        log(f"3. WordPiece vocabulary from {min(len(report_texts), 20000)} reports and {len(off_topic)} off-topic texts")
        vocab = nt_tokenizer.train_wordpiece(report_texts[:20000] + off_topic, args.vocab)
        tok = nt_tokenizer.Tokenizer(vocab)
        lengths = [len(tok.encode(t, 10**6)) for t in report_texts[:500]]
        log(f"   vocabulary {len(vocab)}; report length tokens median {int(np.median(lengths))} max {max(lengths)} (maxLength {max_len})")
        # Validation: the last 5 % of the corpus reports and a quarter of the off-topic texts, never trained on.
        n_val = max(2, len(report_texts) // 20)
        train_corpus = nt_text.Corpus(report_texts[:-n_val], off_topic[: max(1, len(off_topic) * 3 // 4)])
        val_corpus = nt_text.Corpus(report_texts[-n_val:], off_topic[max(1, len(off_topic) * 3 // 4):])
        log(f"4. text encoder: {args.dim}-d, {args.layers} layers, at most {args.text_steps} steps of {args.text_batch}")
        curve = []
        text_model = nt_text.train(train_corpus, tok, args.text_steps, args.seed, log, max_len=128, batch_size=args.text_batch, dim=args.dim,
                                   layers=args.layers, heads=4 if args.dim % 4 == 0 else 1, ffn=args.ffn, lr=5e-4,
                                   validation=val_corpus, eval_every=args.text_eval_every, patience=args.text_patience, curve=curve)
        # the curve as a JSON string: torch's weights-only loader takes tensors, strings and ints, not floats
        torch.save({"vocab": vocab, "cfg": text_model.cfg, "weights": text_model.state_dict(), "curve": json.dumps(curve)}, saved)
    if args.text_only:
        log(f"4. --text-only: text encoder saved to {saved}")
        return
    text_path = os.path.join(args.out, "text-encoder.onnx")
    if not args.images_only:  # (an --images-only host may have a torch whose exporter differs: export here)
        with open(tok_path, "w", encoding="utf-8") as f:
            json.dump(nt_tokenizer.tokenizer_json(vocab), f, ensure_ascii=False)
        nt_text.export(text_model, text_path)
    texts = [r["text"] for r in reports]

    if args.load_image_weights:
        image_models = {seq: m for seq, (m, _) in metas.items()}
        # parity inputs: a seeded random volume per encoder (the held-out data stays where it was trained)
        parity_inputs = {seq: np.random.default_rng(args.seed).standard_normal((2, 1) + shape).astype(np.float32)[:, 0] for seq in metas}
        encoders = {}
        for seq, (model, meta) in metas.items():
            log(f"6. image encoder {seq} loaded from {args.load_image_weights}: {meta['trainingSeries']} training series, "
                f"{meta['epochs']} epochs on {meta['device']}, width {meta['width']}{' fine stem' if meta['fine'] else ''}, val mse {meta['valMse']:.5f}")
            path = os.path.join(args.out, f"image-{seq.lower()}.onnx")
            nt_image.export(model, path, shape)
            encoders[seq] = encoder_entry(seq, path, shape, args.dim)
        write_bundle(args, tok, vocab, text_model, texts, corpus_texts, curve, tok_path, text_path, encoders, image_models, parity_inputs,
                     preprocessing, spec_path, synth_extra, calib_dir, max_len, first.get("device", "cpu"))
        return

    log("5. report vectors")
    # Targets are the Findings + Impression text: indication, technique and comparison lines say nothing a scan
    # shows, and as part of the target they were noise the CNNs memorised (measured on the calibration cohort:
    # mean cosine between different reports 0.53 full vs 0.38 body).
    by_uid = {r["StudyInstanceUID"]: r["text"] for r in reports}
    uids = list(by_uid)
    # Cached beside the cohort for this text encoder, so several CNN runs on one cohort (e.g. one process per
    # sequence on a GPU host) embed the reports once.
    cache = os.path.join(train_dir, f"report-vectors-{sha256(saved)[:12]}.npz")
    if os.path.exists(cache):
        with np.load(cache) as z:
            vectors = dict(zip(z["uids"].tolist(), z["vectors"]))
        log(f"   {len(vectors)} report vectors from {cache}")
    else:
        vectors = dict(zip(uids, nt_text.embed_reports(text_model, tok, [by_uid[u] for u in uids], max_len)))
        np.savez(cache + ".tmp.npz", uids=np.array(uids), vectors=np.stack([vectors[u] for u in uids]))
        os.replace(cache + ".tmp.npz", cache)
    sims = np.array([vectors[u] for u in uids]) @ np.array([vectors[u] for u in uids]).T
    log(f"   mean cosine between different reports {float((sims.sum() - len(uids)) / (len(uids) ** 2 - len(uids))):.3f}")

    log(f"6. image encoders ({args.augment} augmentation)")
    vols = load_volumes(os.path.join(train_dir, "vol"), shape, wanted)
    encoders, parity_inputs, image_models = {}, {}, {}
    rng = np.random.default_rng(args.seed)
    aug = {"none": False, "basic": True, "domain": "domain"}[args.augment]
    for seq in wanted:
        if seq not in vols or len(vols[seq][0]) < args.min_series:
            log(f"   {seq}: {len(vols.get(seq, ([],))[0])} series, fewer than --min-series {args.min_series}: no encoder")
            continue
        su, sv = vols[seq]
        keep = [i for i, u in enumerate(su) if u in vectors]
        su, sv = [su[i] for i in keep], sv[keep]
        y = np.stack([vectors[u] for u in su]).astype(np.float32)
        perm = rng.permutation(len(su))
        nval = max(1, len(su) // 10)
        val, tr = np.sort(perm[:nval]), np.sort(perm[nval:])
        log(f"   {seq}: {len(tr)} training series, {len(val)} validation; mse of predicting the mean vector "
            f"{float(np.mean((y[val] - y[tr].mean(0)) ** 2)):.5f}")
        model = nt_image.train(sv[tr], y[tr], args.epochs, args.seed, log, seq, val=(sv[val], y[val]), width=args.width,
                               aug=aug, fine=args.fine_stem, device=args.device, batch_size=args.batch_size, domain_share=args.domain_share,
                               lr=args.lr, budget_s=args.budget_s)
        if args.save_image_weights:
            os.makedirs(args.save_image_weights, exist_ok=True)
            epochs = int(getattr(model, "epochs_trained", args.epochs))
            nt_image.save_weights(model, os.path.join(args.save_image_weights, f"image-{seq.lower()}"), {
                "sequence": seq, "dim": args.dim, "width": args.width, "fine": args.fine_stem, "shape": list(shape),
                "studies": args.n, "seed": args.seed, "trainingSeries": int(len(tr)), "epochs": epochs,
                "batchSize": args.batch_size, "lr": args.lr, "augment": args.augment, "domainShare": args.domain_share, "device": args.device,
                "torch": torch.__version__, "valMse": nt_image.evaluate(model, sv[val], y[val])})
        if args.images_only:
            continue
        path = os.path.join(args.out, f"image-{seq.lower()}.onnx")
        nt_image.export(model, path, shape)
        image_models[seq] = model
        parity_inputs[seq] = sv[val][:2]
        encoders[seq] = encoder_entry(seq, path, shape, args.dim)
    if args.images_only:
        log(f"6. --images-only: weights in {args.save_image_weights}; no ONNX, parity or calibration here")
        return
    write_bundle(args, tok, vocab, text_model, texts, corpus_texts, curve, tok_path, text_path, encoders, image_models, parity_inputs,
                 preprocessing, spec_path, synth_extra, calib_dir, max_len, args.device)


# Sequences only some protocols include: the worker reads them when present and never waits for them
# (manifest imageEncoders.<SEQ>.supplementary).
SUPPLEMENTARY = {"SWI"}


def encoder_entry(seq, path, shape, dim):
    entry = {"id": f"neurotriage-cnn3d-{seq.lower()}", "file": os.path.basename(path),
             "input": {"name": "volume", "dtype": "float32", "shape": ["batch", 1, *shape]},
             "output": {"name": "embedding", "dtype": "float32", "shape": ["batch", dim]}}
    if seq in SUPPLEMENTARY:
        entry["supplementary"] = True
    return entry


def write_bundle(args, tok, vocab, text_model, texts, corpus_texts, curve, tok_path, text_path, encoders, image_models, parity_inputs,
                 preprocessing, spec_path, synth_extra, calib_dir, max_len, device):
    log("7. ONNX parity fixtures (torch outputs) and onnxruntime-node check")
    fx = os.path.join(args.work, "parity")
    shutil.rmtree(fx, ignore_errors=True)
    os.makedirs(fx)
    sample = (texts[:3] or [t for t, k in corpus_texts[:3]]) + [q["text"] for q in DEFAULT_QUERIES[:3]]
    ids, mask = nt_text.batch(tok, sample, max_len)
    with torch.no_grad():
        hidden = text_model(ids, mask).numpy()
    meta = {"text": {"ids": ids.tolist(), "mask": mask.tolist(), "shape": list(hidden.shape)}, "images": {}}
    hidden.astype(np.float32).tofile(os.path.join(fx, "text.f32"))
    for seq, x in parity_inputs.items():
        y = nt_image.predict(image_models[seq], x)
        x.astype(np.float32).tofile(os.path.join(fx, f"{seq}-in.f32"))
        y.astype(np.float32).tofile(os.path.join(fx, f"{seq}-out.f32"))
        meta["images"][seq] = {"n": int(len(x)), "dim": int(y.shape[1])}
    with open(os.path.join(fx, "meta.json"), "w") as f:
        json.dump(meta, f)

    heldout = make_corpus(os.path.join(args.work, f"corpus-heldout-n300-s{args.seed + 20}.jsonl"), 300 if not args.smoke else 20, args.seed + 20, "heldout")
    language = write_language(args, tok, text_model, corpus_texts, [t for t, k in heldout if k == "report"], max_len)
    with open(os.path.join(args.out, "training-log.json"), "w") as f:
        json.dump({"textEncoder": {"curve": curve}}, f)
    bundle_files = [tok_path, text_path] + [os.path.join(args.out, e["file"]) for e in encoders.values()]
    bundle_files += [os.path.join(args.out, language["knownWords"]), os.path.join(args.out, language["sentenceBank"]), os.path.join(args.out, "training-log.json")]
    files = {os.path.basename(p): sha256(p) for p in bundle_files}
    manifest = {
        "schemaVersion": 2,
        "bundleId": "neurotriage-synthetic-reference",
        "version": datetime.datetime.utcnow().strftime("%Y.%m.%d-") + hashlib.sha256("".join(sorted(files.values())).encode()).hexdigest()[:8],
        "createdAt": datetime.datetime.utcnow().replace(microsecond=0).isoformat() + "Z",
        "embeddingDim": args.dim,
        "textEncoder": {
            "id": f"neurotriage-minibert-{len(vocab)}v-{text_model.cfg['layers']}l-{args.dim}d", "file": "text-encoder.onnx", "tokenizer": "tokenizer.json",
            "maxLength": max_len,
            "inputs": [{"name": "input_ids", "dtype": "int64", "shape": ["batch", "sequence"]},
                       {"name": "attention_mask", "dtype": "int64", "shape": ["batch", "sequence"]}],
            "output": {"name": "last_hidden_state", "dtype": "float32", "shape": ["batch", "sequence", args.dim]},
            "pooling": "mean", "normalize": True,
        },
        "imageEncoders": encoders,
        "preprocessing": preprocessing,
        "combination": "mean-embedding",
        "queries": [dict(q, origin="bundle") for q in DEFAULT_QUERIES],
        "normalQuery": dict(NORMAL_QUERY, origin="bundle"),
        "language": language,
        "trainedOn": {"description": f"synthetic phantoms from tools/synth (phrasing-set train, scanner-set train): text encoder on {sum(1 for _, k in corpus_texts if k == 'report')} reports, "
                                     f"CNNs on {args.n} studies ({args.augment} augmentation, trained on {device}); "
                                     f"calibration on a separate synthetic cohort of {args.calib_n} studies (seed {args.seed + 1}). Not for clinical use.",
                      "studies": args.n, "seed": args.seed},
        "files": files,
    }
    manifest_path = os.path.join(args.out, "manifest.json")
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=2)
    run(["node", os.path.join(args.node_cli, "parity.js"), "--bundle", args.out, "--fixtures", fx])

    train_dir = os.path.join(args.work, f"train-n{args.n}-s{args.seed}")
    if os.path.isdir(os.path.join(train_dir, "vol")):
        log("7c. normal-appearance atlas (localisation of flagged findings) from the training volumes")
        from atlas import write_atlas  # atlas.py imports this module for its helpers
        write_atlas(args.out, [train_dir])
    calibrate(args, calib_dir, spec_path, synth_extra)
    with open(manifest_path) as f:
        listed = json.load(f)["files"]  # the atlas (7c) added its files after `files` was made
    total = sum(os.path.getsize(os.path.join(args.out, p)) for p in listed) + os.path.getsize(manifest_path)
    log(f"9. bundle written to {args.out}: {total / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
