#!/usr/bin/env python3
"""The normal-appearance atlas of a bundle: what each sequence's canonical volume looks like in most heads.

For every sequence the bundle has an image encoder for, the voxelwise median of the training cohort's canonical
volumes (the same volumes the CNNs were trained on, `npm run volumes`) and a robust spread, 1.4826 x the median
absolute deviation plus a floor (so a voxel that hardly varies does not turn noise into anomaly). No label is read:
focal lesions are rare at any one voxel, so the median of an unlabelled cohort is normal tissue. The worker
localises a flagged finding with it (services/worker/localise.ts): where a study departs from the atlas are the
candidate lesions, and the model's own score says which one drives the finding.

Each sequence becomes one file, atlas-<seq>.f32: float32 little-endian [2, D, H, W], the median then the spread,
listed in the manifest's `atlas` block and `files`. Scores do not depend on it, so the bundle keeps its version
and its calibrations.

  /usr/bin/python3 onnx-models/training/atlas.py --bundle onnx-models --cohort var/models-train/train-n1400-s1
"""
import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import train  # noqa: E402

MAD_TO_SD = 1.4826
# z-score units of the canonical volumes (zscore-foreground): a quarter of the foreground's standard deviation.
SCALE_FLOOR = 0.25


def atlas_of(volumes):
    """(median, spread) of volumes [N, D, H, W], voxelwise, float32."""
    median = np.median(volumes, axis=0)
    spread = np.median(np.abs(volumes - median), axis=0) * MAD_TO_SD + SCALE_FLOOR
    return median.astype(np.float32), spread.astype(np.float32)


def write_atlas(bundle, cohorts, max_studies=None):
    """Writes atlas-<seq>.f32 for every image encoder of the bundle from the cohorts' vol/ folders and records them in
    the manifest. Returns {sequence: studies}."""
    path = os.path.join(bundle, "manifest.json")
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    shape = manifest["preprocessing"]["shape"]
    sequences = sorted(manifest["imageEncoders"])
    stacks = {s: [] for s in sequences}
    for cohort in cohorts:
        for seq, (_, vols) in train.load_volumes(os.path.join(cohort, "vol"), shape, sequences).items():
            stacks[seq].append(vols)
    files, counts = {}, {}
    for seq in sequences:
        if not stacks[seq]:
            # A partial atlas is valid: the worker localises that sequence's findings with block occlusion.
            train.log(f"atlas {seq}: no volumes in {', '.join(cohorts)}; left out")
            continue
        vols = np.concatenate(stacks[seq])[:max_studies]
        median, spread = atlas_of(vols)
        name = f"atlas-{seq.lower()}.f32"
        np.stack([median, spread]).astype("<f4").tofile(os.path.join(bundle, name))
        files[seq] = name
        counts[seq] = int(vols.shape[0])
        manifest["files"][name] = train.sha256(os.path.join(bundle, name))
        train.log(f"atlas {seq}: {vols.shape[0]} volumes, mean spread {spread.mean():.3f}")
    if not files:
        raise SystemExit(f"no volumes of {', '.join(sequences)} in {', '.join(cohorts)}: no atlas written")
    manifest["atlas"] = {
        "files": files,
        "studies": min(counts.values()),
        "description": f"voxelwise median and {MAD_TO_SD} x MAD + {SCALE_FLOOR} of the canonical volumes of "
                       f"{min(counts.values())}-{max(counts.values())} unlabelled synthetic training studies per sequence",
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True, help="bundle folder (manifest.json); the atlas is written into it")
    ap.add_argument("--cohort", action="append", required=True, help="cohort folder with vol/ (repeatable)")
    ap.add_argument("--max-studies", type=int, help="at most this many volumes per sequence")
    args = ap.parse_args()
    write_atlas(args.bundle, args.cohort, args.max_studies)


if __name__ == "__main__":
    main()
