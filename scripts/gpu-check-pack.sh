#!/usr/bin/env bash
# Packs what scripts/gpu-check.sh needs on a GPU machine that has Python and a
# CUDA torch but no network, no Node and no faiss (the lent H100/H200 image):
#
#   .gpu-check/bin/nfhm.mjs   the CLI as one ES module (no node_modules needed);
#                             two folders below the repository root, as
#                             src/bridge/python.ts is, so it finds python/ and package.json
#   .gpu-check/node.xz        this machine's Node, stripped and xz-compressed
#   .gpu-check/wheels/        the faiss-cpu wheel of the venv's version, for Python $PY_VERSION
#
# Run it here (after `make setup`), then carry the folder with the device run:
#   run(command="bash scripts/gpu-check.sh", carry=[".gpu-check"], timeout_s=420)
# It comes to about 45 MB; the device tool carries up to 64 MiB with the tree.
set -euo pipefail
cd "$(dirname "$0")/.."
PY_VERSION=${PY_VERSION:-3.12}
OUT=.gpu-check
rm -rf "$OUT"
mkdir -p "$OUT/bin" "$OUT/wheels"

# pythonia stays out: it ships Python files of its own, and the check uses the stdio worker.
node_modules/.bin/esbuild src/cli.ts --bundle --platform=node --format=esm --target=node20 \
  --external:pythonia --log-level=warning --outfile="$OUT/bin/nfhm.mjs" \
  --banner:js="import { createRequire as nfhmCreateRequire } from 'node:module'; const require = nfhmCreateRequire(import.meta.url);"

node=$(command -v node)
if command -v strip >/dev/null; then strip -o "$OUT/node" "$node"; else cp "$node" "$OUT/node"; fi
xz -9 -T0 "$OUT/node"

faiss=$(.venv/bin/python -c 'import faiss; print(faiss.__version__)')
.venv/bin/python -m pip download --quiet --no-deps --only-binary=:all: --implementation cp \
  --python-version "$PY_VERSION" --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$OUT/wheels" "faiss-cpu==$faiss"

du -sh "$OUT"
