#!/usr/bin/env bash
# Sample complexity of the long-term dependency lab (issue 16): how many training steps each model needs to
# solve the cue task as the gap grows, and the adding problem at T = 1000 (Hochreiter & Schmidhuber 1997).
#
#   bash benchmarks/sample_complexity.sh [OUT_DIR]          # what benchmarks/results/lab.md reports (~40 CPU-min)
#   FULL=1 bash benchmarks/sample_complexity.sh [OUT_DIR]   # the issue's whole grid: tens of CPU hours
#
# Every run stops as soon as it is solved (held-out accuracy >= 0.99 / MSE < 0.01, checked every 100 steps),
# so a budget only costs time where a model fails. One torch thread per run, runs one after another.
set -euo pipefail
OUT=${1:-runs/sample-complexity-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
run() {  # name, then rnnlab lab arguments
    local name=$1; shift
    echo "rnnlab lab $* --out $OUT/$name --no-progress" >> "$OUT/commands.txt"
    local start=$(date +%s)
    rnnlab lab "$@" --out "$OUT/$name" --no-progress --eval-every 100 --eval-size 256 > "$OUT/$name.log" 2>&1
    echo "$name $(( $(date +%s) - start )) s wall, load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/walltimes.txt"
}
echo "started $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)" > "$OUT/walltimes.txt"
if [[ -n "${FULL:-}" ]]; then
    MODELS=rnn,gru,lstm,lstm_chrono,peephole,layernorm,mingru,minlstm
    run gap-grid gap --models "$MODELS" --gaps 10,30,100,300,1000 --seeds 0,1,2 --steps 50000
    run adding-grid adding --models "$MODELS" --lengths 50,100,200,500,1000 --seeds 0,1,2 --steps 50000
    run order-grid order --models "$MODELS" --lengths 50,100,200,500,1000 --seeds 0,1,2 --steps 50000
    run copy-grid copy --models "$MODELS" --lengths 50,100,200,500 --seeds 0,1,2 --steps 50000
else
    run gap-grid gap --models rnn,gru,lstm,lstm_chrono,mingru --gaps 10,30,100,300 --seeds 0 --steps 5000
    run gap-1000 gap --models lstm_chrono --gaps 1000 --seeds 0 --steps 10000
    run adding-1000 adding --models lstm_chrono --lengths 1000 --seeds 0 --steps 10000
fi
echo "finished $(date -u +%FT%TZ)" >> "$OUT/walltimes.txt"
python "$(dirname "$0")/lab_collect.py" "$OUT" --results "$(dirname "$0")/results/lab" --combine sample_complexity
