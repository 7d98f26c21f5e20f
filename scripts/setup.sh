#!/usr/bin/env bash
# One-time setup on a fresh Debian/Ubuntu machine: system packages neurotriage runs and tests against
# (installed from apt only when missing and when we may: root, or passwordless sudo), npm packages, a build.
# Safe to run again. SKIP_APT=1 skips the system packages.
set -euo pipefail
cd "$(dirname "$0")/.."

# command-or-file that proves each package is present -> Debian package name
declare -A NEED=(
  [redis-server]=redis-server
  [storescu]=dcmtk
  [dciodvfy]=dicom3tools
  [Orthanc]=orthanc
  [chromium]=chromium
  [kubectl]=kubernetes-client
  [docker-compose]=docker-compose
  [promtool]=prometheus
  # The live worklist through a real reverse proxy with its defaults (test/api/proxy-nginx.test.ts).
  [nginx]=nginx
  [/usr/lib/python3/dist-packages/torch]=python3-torch
  [/usr/lib/python3/dist-packages/onnx]=python3-onnx
  # Debian's torch links the reference BLAS unless an optimised one is installed: matrix products of the text
  # encoder trained many times slower on this machine without OpenBLAS (docs/benchmarks.md "Training recipe").
  [/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3]=libopenblas0-pthread
)
missing=()
for probe in "${!NEED[@]}"; do
  if [[ "$probe" == /* ]]; then [[ -e "$probe" ]] || missing+=("${NEED[$probe]}");
  else command -v "$probe" >/dev/null 2>&1 || [[ -x "/usr/sbin/$probe" ]] || missing+=("${NEED[$probe]}"); fi
done
if [[ ${#missing[@]} -gt 0 && "${SKIP_APT:-0}" != 1 ]]; then
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo -n"
  if [[ -z "$sudo" ]] || $sudo true 2>/dev/null; then
    echo "setup: installing ${missing[*]} from apt"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # Debian starts these as system services on install (nginx on port 80); neurotriage runs its own private
    # instances. Only the services of packages installed just now are stopped: a Redis or Orthanc the host already
    # ran is left alone.
    for pkg in redis-server orthanc prometheus nginx; do
      [[ " ${missing[*]} " == *" $pkg "* ]] || continue
      $sudo systemctl disable --now "$pkg" >/dev/null 2>&1 || $sudo service "$pkg" stop >/dev/null 2>&1 || true
    done
  else
    echo "setup: missing ${missing[*]}; install them with apt (no permission to do it here)" >&2
  fi
fi

# onnxruntime-node's install script fetches CUDA binaries from a host outside the npm registry: skip it.
# The CPU binaries ship inside the npm package; GPU nodes add the CUDA provider (docs/operations.md).
export ONNXRUNTIME_NODE_INSTALL=skip
if [[ -f package-lock.json ]]; then npm ci --no-audit --no-fund --loglevel=error; else npm install --no-audit --no-fund --loglevel=error; fi
npm run build --silent
echo "setup: done. Start everything with: npm start"
