#!/usr/bin/env bash
# Benchmarks (never timed tests). `--smoke` is CI's short run of each;
# without it, the figures recorded in docs/performance.md:
#   scripts/bench.sh [COUNT]   (default 200000 statements, Ed25519 then ES256)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SMOKE=0
[ "${1:-}" = "--smoke" ] && { SMOKE=1; shift; }
COUNT=${1:-200000}
[ -x build/custos ] && [ -x build/custos_microbench ] || bash scripts/build.sh
B=$ROOT/build/custos
if [ $SMOKE = 1 ]; then
  build/custos_microbench --benchmark_min_time=0.01 --benchmark_filter='Verify|Parse|Append'
else
  build/custos_microbench --benchmark_min_time=1
fi
DATA=$(mktemp -d)
PORT=$((20000 + RANDOM % 20000))
"$B" node --dev --data-dir "$DATA" --listen 127.0.0.1:$PORT --log-level warn &
PID=$!
trap 'kill -TERM $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:$PORT/healthz >/dev/null && break; sleep 0.1; done
if [ $SMOKE = 1 ]; then
  "$B" bench --node http://127.0.0.1:$PORT --admin-key "$DATA/keys/admin.key" --count 2000 --concurrency 8 \
    --batch 16 --receipts 20 --data-dir "$DATA"
  "$B" bench --node http://127.0.0.1:$PORT --admin-key "$DATA/keys/admin.key" --count 500 --concurrency 8 \
    --batch 1 --alg es256 --receipts 20
  "$B" audit --data-dir "$DATA"
else
  for alg in ed25519 es256; do
    "$B" bench --node http://127.0.0.1:$PORT --admin-key "$DATA/keys/admin.key" --count "$COUNT" \
      --concurrency 32 --batch 64 --alg $alg --data-dir "$DATA" --json
  done
  "$B" bench --node http://127.0.0.1:$PORT --admin-key "$DATA/keys/admin.key" --count 20000 \
    --concurrency 64 --batch 1 --alg ed25519 --json
fi
