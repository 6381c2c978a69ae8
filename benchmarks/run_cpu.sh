#!/usr/bin/env bash
# The CPU runs behind docs/benchmarks.md (2-core shared machine, 1 pinned torch thread).
# Each benchmark interleaves its variants in one run; bounded to a few minutes each.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
bench() { .venv/bin/sidetask bench "$@"; }
bench overhead --shapes 1x32,8x128,32x128,8x512 --heads 1,3,8,16 --threads 1 --repeats 7
bench one_pass --shapes 1x128,32x128 --threads 1 --repeats 5
bench memory --tasks 1,3,8,16 --batches 1,4,16,32 --lengths 32,128,256,512 --threads 1 --repeats 5
bench memory --shape roberta-large --tasks 1,3,8 --batches 1,2,4 --lengths 128,256,512 \
  --base 1x128 --threads 1 --repeats 5 --warmup 0
bench early_exit --shapes 1x128,8x128 --threads 1 --repeats 5
bench scaling --backbones minilm,roberta-base,roberta-large,bart-large --shapes 1x128 \
  --threads 1 --repeats 11
bench limit --repeats 7 --size 2048
# infinity-emb lives in its own venv (docs/benchmarks.md, "Peer"); skipped when absent.
# Issue 20's load: 16 different sentences per request, 4 clients; float32 and bf16 servers
# side by side, plus infinity's ONNX engine when an exported folder exists.
if [ -x /tmp/infvenv/bin/infinity_emb ]; then
  onnx=()
  [ -f /tmp/minilm-onnx/onnx/model.onnx ] && onnx=(--infinity-onnx /tmp/minilm-onnx)
  bench peer --infinity /tmp/infvenv/bin/infinity_emb "${onnx[@]}" --texts-per-request 16 \
    --concurrency 4 --seconds 10 --threads 1 --repeats 5
fi
