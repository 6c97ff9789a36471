#!/usr/bin/env bash
# GPU check: end-to-end file->embedding throughput vs the model alone on CUDA, half precision, with a
# random-initialised full-size CLIP ViT-B/32 image tower (speed does not depend on weight values).
# Prints images/s and sampled GPU utilisation; the last line is `pipeline_efficiency: X`.
#   benchmarks/gpu_check.sh [--count N] [--batch-size B] [--workers W] [--rounds R]
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
python3 benchmarks/bench_embed.py --model vit-b32-random --device cuda --precision fp16 \
    --batch-size 256 --count 512 --rounds 1 "$@"
