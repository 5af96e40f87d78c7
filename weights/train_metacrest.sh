#!/usr/bin/env bash
# Reproduce the shipped MetaCREST weights on a CPU (after weights/train_all.sh has made the data and
# weights/metasdnet.pt, whose conv1-conv2 layers are MetaCREST's frozen backbone). Every run
# resumes when rerun. Run from the repository root: bash weights/train_metacrest.sh
set -euo pipefail
DATA=${DATA:-benchmarks/.data}
ITER=${ITER:-600}
# CPU recipe (departures from the reference in docs/metacrest.md): targets normalised to 32 px
# (window 161 px), MetaSDNet conv2 features at stride 4, 600 iterations of meta-batch 4, Adam 1e-3
# for theta0 and 1e-5 for alpha (from 1e-4), per-frame window features cached on disk.
COMMON=(--tracker metacrest --dataset "$DATA/synth-train" --val-dataset "$DATA/synth-val"
        --backbone weights/metasdnet.pt --backbone-layer conv2 --max-target-px 32 --min-target-px 32
        --tracker-option update_lr=1e-4
        --iterations "$ITER" --meta-batch 4 --lr-start 1e-3 --lr-alpha 1e-5 --alpha-init 1e-4
        --feature-cache "$DATA/features" --checkpoint-every 50 --seed 0 --no-progress)
resume() { [ -f "$1.ckpt" ] && echo --resume || true; }
metatrack meta-train "${COMMON[@]}" --out weights/metacrest.pt $(resume weights/metacrest.pt)
metatrack meta-train "${COMMON[@]}" --l2f --out weights/metacrest-l2f.pt $(resume weights/metacrest-l2f.pt)
metatrack meta-train "${COMMON[@]}" --dropgrad binary --dropgrad-rate 0.1 \
  --out weights/metacrest-dropgrad.pt $(resume weights/metacrest-dropgrad.pt)
metatrack meta-train "${COMMON[@]}" --l2f --dropgrad binary --dropgrad-rate 0.1 \
  --out weights/metacrest-l2f-dropgrad.pt $(resume weights/metacrest-l2f-dropgrad.pt)
