#!/usr/bin/env bash
# Extra training seeds of the four MetaSDNet variants for the spread in docs/tracking_table.md
# (the shipped weights are seed 0; these go to benchmarks/.data/seeds/, not shipped).
set -euo pipefail
DATA=${DATA:-benchmarks/.data}
OUT="$DATA/seeds"
mkdir -p "$OUT"
resume() { [ -f "$1.ckpt" ] && echo --resume || true; }
for SEED in ${SEEDS:-1 2}; do
  COMMON=(--dataset "$DATA/synth-train" --adapt fc --iterations 1000 --meta-batch 8
          --lr-start 1e-3 --lr-alpha 1e-3 --init "$DATA/pretrained-small.pt"
          --feature-cache "$DATA/features" --checkpoint-every 100 --seed "$SEED" --no-progress)
  metatrack meta-train "${COMMON[@]}" --out "$OUT/metasdnet-seed$SEED.pt" $(resume "$OUT/metasdnet-seed$SEED.pt")
  metatrack meta-train "${COMMON[@]}" --l2f --out "$OUT/metasdnet-l2f-seed$SEED.pt" $(resume "$OUT/metasdnet-l2f-seed$SEED.pt")
  metatrack meta-train "${COMMON[@]}" --dropgrad binary --dropgrad-rate 0.1 --out "$OUT/metasdnet-dropgrad-seed$SEED.pt" $(resume "$OUT/metasdnet-dropgrad-seed$SEED.pt")
  metatrack meta-train "${COMMON[@]}" --l2f --dropgrad binary --dropgrad-rate 0.1 --out "$OUT/metasdnet-l2f-dropgrad-seed$SEED.pt" $(resume "$OUT/metasdnet-l2f-dropgrad-seed$SEED.pt")
done
