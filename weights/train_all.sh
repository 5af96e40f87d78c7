#!/usr/bin/env bash
# Reproduce the shipped MetaSDNet weights on a CPU (see weights/README.md for times and logs).
# Every step resumes when rerun. Run from the repository root: bash weights/train_all.sh
set -euo pipefail
DATA=${DATA:-benchmarks/.data}
ITER=${ITER:-1000}
COMMON=(--dataset "$DATA/synth-train" --val-dataset "$DATA/synth-val" --adapt fc
        --iterations "$ITER" --meta-batch 8 --lr-start 1e-3 --lr-alpha 1e-3 --init "$DATA/pretrained-small.pt"
        --feature-cache "$DATA/features" --checkpoint-every 50 --seed 0 --no-progress)

metatrack synth "$DATA/synth-train" --sequences 60 --split train --seed 0
metatrack synth "$DATA/synth-val" --sequences 10 --split val --seed 0
[ -f "$DATA/pretrained-small.pt" ] || \
  metatrack pretrain --dataset "$DATA/synth-train" --iterations 800 --out "$DATA/pretrained-small.pt" --no-progress
resume() { [ -f "$1.ckpt" ] && echo --resume || true; }
metatrack meta-train "${COMMON[@]}" --out weights/metasdnet.pt $(resume weights/metasdnet.pt)
metatrack meta-train "${COMMON[@]}" --l2f --out weights/metasdnet-l2f.pt $(resume weights/metasdnet-l2f.pt)
metatrack meta-train "${COMMON[@]}" --dropgrad binary --dropgrad-rate 0.1 \
  --out weights/metasdnet-dropgrad.pt $(resume weights/metasdnet-dropgrad.pt)
metatrack meta-train "${COMMON[@]}" --l2f --dropgrad binary --dropgrad-rate 0.1 \
  --out weights/metasdnet-l2f-dropgrad.pt $(resume weights/metasdnet-l2f-dropgrad.pt)
