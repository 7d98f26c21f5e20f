"""Where a bundle's scores come from and where they fall short (evaluation side; labels are read here only).
Makes the figures onnx-models/README.md quotes beside the model card, with the service's own scoring
(shared/models/cli/score.js):

  1. per-query AUC on the calibration cohort for other choices of the sequences a query is read on (a copy of the
     bundle whose manifest lists the variants; the weights are the same);
  2. held-out AUC of a query by scanner (manufacturer, field strength), by DWI instance count (slice thickness), and
     for haemorrhage by stage and size;
  3. what other target sensitivities give: thresholds fitted on the calibration cohort, sensitivity, specificity
     and the share of studies called STAT, measured on the held-out cohort.

  /usr/bin/python3 onnx-models/training/breakdown.py --calib var/models-train/calib-n400-s2 \\
      --heldout var/models-eval/heldout-n400-s7001     (npm run build first)
"""
import argparse
import collections
import json
import os
import shutil
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from queries import finding_types, label_positive  # noqa: E402
from train import ROOT, auc, read_jsonl, run, threshold_for_sensitivity  # noqa: E402

VARIANTS = {
    "acute_infarct": [["DWI"], ["DWI", "ADC"], None],
    "haemorrhage": [["DWI"], ["DWI", "FLAIR"], ["DWI", "ADC"], ["DWI", "FLAIR", "ADC"], ["DWI", "FLAIR", "T2"], None],
    "white_matter_disease": [["FLAIR", "T2"], ["FLAIR"], ["T2"], ["FLAIR", "T2", "ADC"], None],
}
STAT_QUERIES = ["acute_infarct", "haemorrhage", "hydrocephalus"]


def score(bundle, cohort, out, node_cli):
    run(["node", os.path.join(node_cli, "score.js"), "--bundle", bundle, "--volumes", os.path.join(cohort, "vol"), "--out", out])
    return {r["StudyInstanceUID"]: r["scores"] for r in read_jsonl(out)}


def labels_of(cohort):
    return {r["StudyInstanceUID"]: r for r in read_jsonl(os.path.join(cohort, "labels.jsonl"))}


def auc_of(scores, labels, query, uids=None):
    uids = [u for u in (uids if uids is not None else scores) if u in labels]
    y = [1 if label_positive(labels[u], query) else 0 for u in uids]
    return (auc([scores[u][query] for u in uids], y), sum(y)) if 0 < sum(y) < len(y) else (float("nan"), sum(y))


def sequence_variants(args, work):
    bundle = os.path.join(work, "variants")
    shutil.copytree(args.bundle, bundle)
    with open(os.path.join(bundle, "manifest.json")) as f:
        manifest = json.load(f)
    base = {q["id"]: q for q in manifest["queries"]}
    queries, names = [], {}
    for qid, variants in VARIANTS.items():
        for seqs in variants:
            q = {k: v for k, v in base[qid].items() if k not in ("calibration", "sequences")}
            q["id"] = f"{qid[:24]}-{'all' if seqs is None else '-'.join(seqs).lower()}"
            if seqs:
                q["sequences"] = seqs
            queries.append(q)
            names[q["id"]] = qid
    manifest["queries"] = queries
    with open(os.path.join(bundle, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    scores = score(bundle, args.calib, os.path.join(work, "variants.jsonl"), args.node_cli)
    labels = labels_of(args.calib)
    print("\n1. calibration cohort, AUC by the sequences a query is read on (same weights)")
    uids = [u for u in scores if u in labels]
    for q in queries:
        y = [1 if label_positive(labels[u], names[q["id"]]) else 0 for u in uids]
        print(f"   {q['id']:40s} {auc([scores[u][q['id']] for u in uids], y):.3f}")


def heldout_breakdown(scores, labels):
    print("\n2. held-out cohort, AUC by group (positives in brackets)")
    for query in ["haemorrhage", "white_matter_disease", "acute_infarct"]:
        groups = collections.defaultdict(list)
        for u, l in labels.items():
            if u not in scores:
                continue
            groups[f"{l['manufacturer'].split()[0]} {l['fieldStrength']} T"].append(u)
            dwi = [s["instances"] for s in l.get("series", []) if s["sequence"] == "DWI"]
            if dwi:
                n = dwi[0]
                groups["DWI instances " + ("<=40" if n <= 40 else "41-56" if n <= 56 else ">56")].append(u)
        print(f"   {query}: all {auc_of(scores, labels, query)[0]:.3f}; " + "; ".join(
            f"{g} {a:.3f} ({p})" for g, (a, p) in sorted((g, auc_of(scores, labels, query, us)) for g, us in groups.items())))
    neg = np.array([scores[u]["haemorrhage"] for u, l in labels.items() if u in scores and "haemorrhage" not in finding_types(l)])
    by = collections.defaultdict(list)
    for u, l in labels.items():
        for f in l.get("findings", []):
            if u in scores and isinstance(f, dict) and f.get("type") == "haemorrhage":
                by[f"stage {f.get('stage')}"].append(scores[u]["haemorrhage"])
                by["size <25 mm" if f["size_mm"] < 25 else "size >=25 mm"].append(scores[u]["haemorrhage"])
    print("   haemorrhage positives against all negatives: " + "; ".join(
        f"{k} {np.mean(np.array(v)[:, None] > neg[None, :]):.3f} ({len(v)})" for k, v in sorted(by.items())))


def target_sensitivities(calib_scores, calib_labels, scores, labels):
    print("\n3. target sensitivity: thresholds from the calibration cohort, measured on the held-out cohort")
    uids = [u for u in scores if u in labels]
    for target in (0.95, 0.90, 0.85):
        thr = {}
        for q in STAT_QUERIES + ["mass"]:
            cu = [u for u in calib_scores if u in calib_labels]
            thr[q] = threshold_for_sensitivity([calib_scores[u][q] for u in cu], [1 if label_positive(calib_labels[u], q) else 0 for u in cu], target)
        parts = []
        for q in STAT_QUERIES + ["mass"]:
            y = np.array([label_positive(labels[u], q) for u in uids])
            flag = np.array([scores[u][q] >= thr[q] for u in uids])
            parts.append(f"{q} sens {flag[y].mean():.2f} spec {(~flag[~y]).mean():.2f}")
        stat = np.array([any(scores[u][q] >= thr[q] for q in STAT_QUERIES) for u in uids])
        has = np.array([any(label_positive(labels[u], q) for q in STAT_QUERIES) for u in uids])
        print(f"   {target:.2f}: " + "; ".join(parts) + f"; STAT for {stat[has].mean():.2f} of studies with a STAT finding, {stat[~has].mean():.2f} without")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=os.path.join(ROOT, "onnx-models"))
    ap.add_argument("--calib", required=True, help="calibration cohort folder (vol/, labels.jsonl)")
    ap.add_argument("--heldout", required=True, help="held-out cohort folder (vol/, labels.jsonl)")
    ap.add_argument("--node-cli", default=os.path.join(ROOT, "dist", "shared", "models", "cli"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        calib_scores = score(args.bundle, args.calib, os.path.join(work, "calib.jsonl"), args.node_cli)
        scores = score(args.bundle, args.heldout, os.path.join(work, "heldout.jsonl"), args.node_cli)
        sequence_variants(args, work)
        labels = labels_of(args.heldout)
        heldout_breakdown(scores, labels)
        target_sensitivities(calib_scores, labels_of(args.calib), scores, labels)


if __name__ == "__main__":
    main()
