#!/usr/bin/env bash
# Prepared GPU check for issue 7 (a few minutes on one GPU): cuDNN vs rnnlab's explicit path vs the
# parallel scans, on speed.py's configurations plus batch 64 x T 1000 x 512, then minGRU/minLSTM at
# T = 256/1024/4096. Both scripts pick CUDA by themselves; results go to benchmarks/results/speed.md.
# Not run yet: the sessions that wrote issue 7 had no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
python benchmarks/speed.py --repeats 7 --extra-config 64,1000,512,512 \
  --contenders "torch.nn.LSTM" "rnnlab fused" "rnnlab explicit" "peephole" "layernorm" "minGRU" "minLSTM" \
  --section "GPU: cuDNN, explicit path and parallel scans (issue 7)"
python benchmarks/minimal.py --part speed --repeats 7
