#!/usr/bin/env bash
# Every GPU measurement of issue 6 in one call on the device machine (H100/H200):
#   ../shared/gpu/prepare.sh            # here, once: bundles ray/optuna/hydra into .gpu/
#   device tool: carry [".gpu"], command: source .gpu/setup.sh && bash benchmarks/gpu_check.sh
# Results land in benchmarks/results/ and are copied to $OUT when it is set.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python benchmarks/proxy_throughput.py --device cuda --resolution 224 --batch-size 256 --rounds 3 \
    --out benchmarks/results/proxy_throughput-cuda-224px.json
python benchmarks/proxy_throughput.py --device cuda --resolution 64 --batch-size 256 --rounds 3 \
    --out benchmarks/results/proxy_throughput-cuda-64px.json
python benchmarks/gpu_vs_cpu.py --devices cpu,cuda
python benchmarks/search_packing.py --device cuda --per-device 1,2,4 --points 8 --epochs 3
if [ -n "${OUT:-}" ]; then cp benchmarks/results/*.json "$OUT"/; fi
