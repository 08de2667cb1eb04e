#!/usr/bin/env bash
# The long-term dependency lab's default grids (benchmarks/results/lab.md reports one run of this).
#
#   bash benchmarks/lab.sh [OUT_DIR]        # default OUT_DIR: runs/lab-<date>
#
# Runs `rnnlab lab gap|copy` and `rnnlab lab gradflow|adding|order` as two streams in parallel, one
# torch thread each (the reference machine has 2 cores), logs each command and its wall time, then
# copies every summary, runs.csv and plot into benchmarks/results/lab/ (benchmarks/lab_collect.py).
set -euo pipefail
OUT=${1:-runs/lab-$(date +%Y%m%d-%H%M%S)}
RESULTS=$(dirname "$0")/results/lab
mkdir -p "$OUT" "$RESULTS"

run() {
    local name=$1; shift
    local start=$(date +%s)
    echo "rnnlab lab $name --out $OUT/$name --no-progress $*" >> "$OUT/commands.txt"
    rnnlab lab "$name" --out "$OUT/$name" --no-progress "$@" > "$OUT/$name.log" 2>&1
    echo "$name $(( $(date +%s) - start )) s" >> "$OUT/walltimes.txt"
}

date -u +"started %Y-%m-%dT%H:%M:%SZ" > "$OUT/walltimes.txt"
( run gap; run copy ) &
( run gradflow; run adding; run order ) &
wait
date -u +"finished %Y-%m-%dT%H:%M:%SZ" >> "$OUT/walltimes.txt"

python "$(dirname "$0")/lab_collect.py" "$OUT" --results "$RESULTS"
echo "results in $RESULTS"
