#!/usr/bin/env bash
# Reproduce every shipped file on a CPU: mdnet.pt and the four MetaSDNet variants, then the four
# MetaCREST variants (weights/README.md has the commands, times and logs). Every step resumes when
# rerun. Run from the repository root: bash weights/train_all.sh
# The two family scripts take the same environment (SEED, OUT, DEVICE, VARIANTS, ...); for example
# SEED=1 OUT=benchmarks/.data/seeds bash weights/train_all.sh trains a second seed of everything.
set -euo pipefail
bash "$(dirname "$0")/train_metasdnet.sh"
bash "$(dirname "$0")/train_metacrest.sh"
