#!/usr/bin/env bash
# The GPU check: ViT-B/16 at 224 trained for a few hundred steps on synthetic
# images, once through `nfhm train` (TS orchestrator + Python worker) and once
# as a plain PyTorch loop of the same work (scripts/gpu_check_plain.py); prints
# both throughputs and their ratio. Made for one H100/H200 and well inside 5
# minutes there (steps, images and k-means are sized for it).
#
# It runs on a fresh machine with Python and a CUDA torch (never reinstalled):
# missing Python packages come from .gpu-check/wheels (else pip), Node from
# .gpu-check/node.xz when the machine has none >= 20, the CLI from
# .gpu-check/bin/nfhm.mjs (else bin/nfhm.js with node_modules). Make that
# folder here with scripts/gpu-check-pack.sh.
#
# Overrides (e.g. a CPU dry run): NFHM_PYTHON, GPU_CHECK_MODEL (ViT-B/16),
# GPU_CHECK_STEPS (300), GPU_CHECK_BATCH (128), GPU_CHECK_CLASSES (1000),
# GPU_CHECK_WORKERS (loader processes; cores - 2), GPU_CHECK_DIR (/tmp/nfhm-gpu-check).
# With $OUT set (the device tool's output folder) the summary is copied there.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
started=$(date +%s)
say() { echo "gpu-check [$(($(date +%s) - started)) s] $*" >&2; }

model=${GPU_CHECK_MODEL:-ViT-B/16}
steps=${GPU_CHECK_STEPS:-300}
batch=${GPU_CHECK_BATCH:-128}
classes=${GPU_CHECK_CLASSES:-1000}
cores=$(nproc)
workers=${GPU_CHECK_WORKERS:-$((cores > 3 ? cores - 2 : 1))}
work=${GPU_CHECK_DIR:-/tmp/nfhm-gpu-check}
lr=1e-4
python=${NFHM_PYTHON:-$(command -v python3)}
rm -rf "$work"
mkdir -p "$work"
export NFHM_PYTHON=$python PYTHONPATH="$repo/python${PYTHONPATH:+:$PYTHONPATH}"

# --- Python: torch as the machine has it; the rest from the carried wheels ----
"$python" -c 'import torch' || { echo "gpu-check: $python has no torch; this check does not install one" >&2; exit 1; }
missing=$("$python" -c '
import importlib.util
need = {"faiss": "faiss-cpu", "pyarrow": "pyarrow", "numpy": "numpy", "PIL": "pillow"}
print(" ".join(pkg for module, pkg in need.items() if importlib.util.find_spec(module) is None))')
if [ -n "$missing" ]; then
  say "installing $missing"
  if [ -d .gpu-check/wheels ]; then
    "$python" -m pip install --quiet --no-index --no-deps --find-links .gpu-check/wheels --target "$work/site" $missing
  else
    "$python" -m pip install --quiet --target "$work/site" $missing
  fi
  export PYTHONPATH="$work/site:$PYTHONPATH"
fi
"$python" -c '
import faiss, torch
cuda = torch.cuda.is_available()
print(f"gpu-check: torch {torch.__version__}, faiss {faiss.__version__}, device "
      + (f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}" if cuda else "cpu (no CUDA: a dry run)"))'

# --- Node and the CLI -----------------------------------------------------------
node=$(command -v node || true)
if [ -z "$node" ] || [ "$("$node" -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  say "unpacking the carried Node"
  "$python" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' .gpu-check/node.xz "$work/node"
  chmod +x "$work/node"
  node=$work/node
fi
cli=bin/nfhm.js
[ -f .gpu-check/bin/nfhm.mjs ] && cli=.gpu-check/bin/nfhm.mjs
echo "gpu-check: node $("$node" --version), cli $cli, $model, batch $batch, $steps steps, $classes classes, $workers loader processes" >&2

# --- Data: one epoch of synthetic images at the model's input size --------------
size=$("$python" -c 'import sys; from nfhm.core.model import get_config; print(get_config(sys.argv[1]).image_size)' "$model")
say "writing $((steps * batch)) synthetic ${size}x${size} images"
"$python" scripts/gpu_check_images.py "$work/data" "$((steps * batch))" "$size" "$classes"
cat >"$work/check.yaml" <<EOF
name: check
runs_dir: $work/runs
data: {table: $work/data/images.csv, split: {by: column}}
model: {name: $model}
embed: {batch_size: 256, loader_workers: $workers, shard_size: 16384}
cluster: {k: $classes, niter: 10}
train: {epochs: 1, batch_size: $batch, lr: $lr, loader_workers: $workers, chunk_steps: 25, checkpoint_every: $((steps + 1))}
worker: {transport: stdio}
EOF

# --- nfhm train, then the plain loop ------------------------------------------
say "nfhm train (embed, k-means, train)"
nfhm_started=$(date +%s)
"$node" "$cli" train "$work/check.yaml"
nfhm_wall=$(($(date +%s) - nfhm_started))
say "plain PyTorch loop"
plain=$("$python" scripts/gpu_check_plain.py "$work/runs/check" "$model" "$steps" "$batch" "$workers" "$lr" | tail -n 1)

"$python" - "$work/runs/check/round-1/train/train.json" "$plain" "$nfhm_wall" "$(($(date +%s) - started))" "$model" "$batch" <<'EOF' | tee "$work/summary.txt"
import json, sys
nfhm, plain = json.load(open(sys.argv[1])), json.loads(sys.argv[2])
nfhm_wall, total, model, batch = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
print(f"model {model}, batch {batch}, {nfhm['steps']} steps")
print(f"nfhm train : {nfhm['images_per_s']:8.1f} images/s  ({nfhm['seconds']:.1f} s of training steps; the command took {nfhm_wall} s with embedding, k-means and checkpoints)")
print(f"plain loop : {plain['images_per_s']:8.1f} images/s  ({plain['seconds']:.1f} s)")
print(f"ratio      : {nfhm['images_per_s'] / plain['images_per_s']:.3f} (nfhm / plain)")
print(f"whole check: {total} s")
EOF
[ -n "${OUT:-}" ] && cp "$work/summary.txt" "$work/runs/check/round-1/train/train.json" "$OUT/"
exit 0
