#!/usr/bin/env bash
# Prepared GPU check for issue 16 (about 10 minutes on one H200-class GPU): the medium PTB language model
# (2x650 LSTM, tied, AWD-LSTM regularisers: embedding dropout, locked dropout, weight drop, AR/TAR) for 40
# epochs. Appends one JSON line to benchmarks/results/lm_runs.jsonl; copy the test perplexity into lm.md.
# Not run yet: no GPU was lent to the sessions that wrote it. Shorten with --epochs N if the lease is short.
set -euo pipefail
cd "$(dirname "$0")/.."
python benchmarks/lm.py awd-medium --device cuda --threads 4 --no-progress "$@"
