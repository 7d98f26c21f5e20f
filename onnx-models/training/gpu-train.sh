#!/usr/bin/env bash
# The CNN stage of the training recipe on a GPU host: one synthetic training cohort made there (its 16 cores make
# it in minutes), then one train.py per sequence and CNN width, all at once on the GPU, each capped to BUDGET_S
# seconds. It leaves the weights (.npz + .json per CNN) and the logs in OUT as gpu-train.tar split into 15 MB pieces.
# Back on the training machine, `train.py --load-image-weights DIR --reuse-text` exports them with the recipe's
# own torch, checks ONNX parity and calibrates (onnx-models/README.md, "Training the CNNs on a GPU host").
#
# Runs ON the host, from the repo root, with:
#   python3 holding torch with CUDA;
#   .gpu-base/node.xz and .gpu-base/nm.tar.xz (node and the production node_modules; packing in the README);
#   dist/ (npm run build);
#   .gpu-train/text-encoder.pt and .gpu-train/preprocessing.json (the text encoder and spec the CNNs must match).
# Usage: bash onnx-models/training/gpu-train.sh OUT N BUDGET_S ["WIDTHS"]     e.g. OUT 2000 180 "8 12 16"
set -euo pipefail
out=$1 n=$2 budget=$3 widths=${4:-"8 16"}
py=${PYTHON:-python3}
seqs=${SEQS:-"T2 FLAIR DWI ADC"}
work=${WORK:-/tmp/nt-train}
mkdir -p /tmp/gpu "$work" "$out"
[ -x /tmp/gpu/node ] || { xz -dc .gpu-base/node.xz > /tmp/gpu/node; chmod +x /tmp/gpu/node; }
[ -d node_modules ] || tar xJf .gpu-base/nm.tar.xz
export PATH=/tmp/gpu:$PATH PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
cp .gpu-train/text-encoder.pt .gpu-train/preprocessing.json "$work/"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'

common=(onnx-models/training/train.py --work "$work" --out "$work/bundle" --n "$n" --seed 1 --reuse-text --images-only
        --device "${DEVICE:-cuda}" --synth-cmd "node dist/tools/synth/cli.js" --volumes-cmd "node dist/tools/volumes.js"
        --synth-args "--matrix 128 --workers $(nproc)")
# One process makes the cohort and the report vectors; the CNN runs then reuse both.
start=$(date +%s)
"$py" "${common[@]}" --sequences none --threads "$(nproc)" 2>&1 | tee "$out/prep.log" | grep -v '^scored\|%' || true
[ -f "$work/train-n$n-s1/vol/index.jsonl" ] || { echo "cohort failed"; exit 1; }
echo "cohort and vectors in $(( $(date +%s) - start )) s"
pids=()
for w in $widths; do
  for s in $seqs; do
    "$py" "${common[@]}" --sequences "$s" --width "$w" --threads 1 --batch-size 16 --epochs "${EPOCHS:-80}" --budget-s "$budget" --min-series "${MIN_SERIES:-40}" \
      --save-image-weights "$out/w$w" > "$out/w$w-$s.log" 2>&1 &
    pids+=($!)
  done
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
echo "CNN runs done in $(( $(date +%s) - start )) s, $failed failed"
grep -h "fit the budget\|epoch .*/.* train\|Error\|error" "$out"/w*.log | grep -v "epoch [0-9]*/" || true
for f in "$out"/w*.log; do echo "$(basename "$f"): $(grep 'epoch' "$f" | tail -1)"; done
(cd "$out" && files=$(ls) && tar cf - $files | split -b 15M -d - gpu-train.tar.)
ls -la "$out"
exit "$failed"
