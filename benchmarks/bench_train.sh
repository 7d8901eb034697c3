#!/usr/bin/env bash
# Memory and time per training iteration of e2e / checkpoint / GLEAM (the GLEAM paper's Table II
# setting, scaled: MoDL N=8, 32 features, 160x160, 8 coils, GLEAM with M=N).
# Usage: benchmarks/bench_train.sh [cpu|cuda] [OUT.json]
set -euo pipefail
device="${1:-$(python -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')}"
out="${2:-bench_train_${device}.json}"
exec mriviewer bench train --model modl --unrolls 8 --features 32 --size 160 --coils 8 \
    --strategies e2e,checkpoint,gleam --modules 8 --device "$device" --json "$out"
