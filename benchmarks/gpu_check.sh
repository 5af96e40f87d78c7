#!/usr/bin/env bash
# The prepared GPU check (under 8 minutes): CUDA tests, tracker fps and short trainings on the GPU,
# written to benchmarks/results/gpu_check.json, then docs/results/scaling.md regenerated from it.
#   bash benchmarks/gpu_check.sh [--device cuda:0]
set -euo pipefail
cd "$(dirname "$0")/.."
timeout 480 python benchmarks/gpu_check.py "$@"
python benchmarks/scaling.py --report-only
