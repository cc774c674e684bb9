#!/usr/bin/env bash
# Times lowp's kernels and their PyTorch anchors on the same GPU, one run after the other, and
# prints the joined table (docs/benchmarks.md).
#
#   benches/run.sh                            # every case
#   benches/run.sh --filter rmsnorm/bf16/     # the cases whose name contains a pattern (repeatable)
#   LOWP_BENCH=./kernels-1a2b3c benches/run.sh   # a prebuilt bench executable instead of cargo
#
# Arguments are passed to both sides, so only the options both take belong here: --filter PATTERN,
# --exact and bare patterns. The results stay in $LOWP_BENCH_OUT (default target/bench):
# lowp.json, torch.json and joined.txt. Stops with a non-zero status where either side cannot
# measure (no GPU, no PyTorch).
set -euo pipefail
bench=${LOWP_BENCH:-}
if [ -n "$bench" ]; then
  bench=$(cd "$(dirname "$bench")" && pwd)/$(basename "$bench")  # before the cd below
fi
cd "$(dirname "$0")/.."
out=${LOWP_BENCH_OUT:-target/bench}
mkdir -p "$out"

if [ -n "$bench" ]; then
  "$bench" --bench --json "$out/lowp.json" "$@"
else
  cargo bench --bench kernels -- --json "$out/lowp.json" "$@"
fi
echo
python3 benches/compare_torch.py --json "$out/torch.json" "$@"
echo
python3 benches/compare_torch.py --join "$out/lowp.json" --anchors "$out/torch.json" "$@" | tee "$out/joined.txt"
