#!/usr/bin/env bash
# Benchmarks (never timed tests). `--smoke` is CI's short run of each;
# without it, the figures recorded in docs/performance.md:
#   scripts/bench.sh [COUNT]   (default 200000 statements per algorithm)
# prints one JSON object per run, then the bytes on disk per entry at rest
# (one node, after a clean stop has flushed RocksDB's memtables), then the
# same load against 4- and 7-node local consortia.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SMOKE=0
[ "${1:-}" = "--smoke" ] && { SMOKE=1; shift; }
COUNT=${1:-200000}
[ -x build/custos ] && [ -x build/custos_microbench ] || bash scripts/build.sh
B=$ROOT/build/custos
if [ $SMOKE = 1 ]; then
  # The incident report on a small ledger (docs/performance.md has the
  # figures at 10^6 and 10^7 entries: CUSTOS_INCIDENT_ENTRIES).
  CUSTOS_INCIDENT_ENTRIES=2000 build/custos_microbench --benchmark_min_time=0.01 \
    --benchmark_filter='IncidentReport'
  build/custos_microbench --benchmark_min_time=0.01 \
    --benchmark_filter='Verify|Parse|Append|BM_Device|BM_Execute|BM_Admit'
else
  build/custos_microbench --benchmark_min_time=1
fi
DATA=$(mktemp -d)
PORT=$((20000 + RANDOM % 20000))
N=http://127.0.0.1:$PORT
start_node() {
  "$B" node --dev --data-dir "$DATA" --listen 127.0.0.1:$PORT --log-level warn &
  PID=$!
  for _ in $(seq 1 100); do curl -sf $N/healthz >/dev/null && return; sleep 0.1; done
  echo "node did not start"; exit 1
}
stop_node() {
  [ -n "${PID:-}" ] || return 0
  kill -TERM "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  PID=
}
trap 'stop_node; rm -rf "$DATA"' EXIT
start_node
if [ $SMOKE = 1 ]; then
  "$B" bench --node $N --admin-key "$DATA/keys/admin.key" --count 2000 --concurrency 8 \
    --batch 16 --receipts 20 --data-dir "$DATA"
  "$B" bench --node $N --admin-key "$DATA/keys/admin.key" --count 500 --concurrency 8 \
    --batch 1 --alg es256 --receipts 20
  # The domain rules' cost: device events of installed pumps against generic
  # statements of the same shape.
  "$B" bench --node $N --admin-key "$DATA/keys/admin.key" --workload compare --count 1000 \
    --concurrency 4 --batch 16 --receipts 10
  stop_node
  "$B" audit --data-dir "$DATA"
else
  for alg in ed25519 es256; do
    "$B" bench --node $N --admin-key "$DATA/keys/admin.key" --count "$COUNT" \
      --concurrency 32 --batch 64 --alg $alg --data-dir "$DATA" --json
  done
  "$B" bench --node $N --admin-key "$DATA/keys/admin.key" --count 20000 \
    --concurrency 64 --batch 1 --alg ed25519 --json
  "$B" bench --node $N --admin-key "$DATA/keys/admin.key" --workload compare --count "$COUNT" \
    --concurrency 8 --batch 256 --json
  size=$(curl -s $N/v1/node | python3 -c 'import json,sys;print(json.load(sys.stdin)["log_size"])')
  stop_node
  bytes=$(du -sb "$DATA/db" | cut -f1)
  echo "at rest: $bytes bytes in $DATA/db for $size entries = $((bytes / size)) bytes per entry"
  "$B" audit --data-dir "$DATA"
fi

# A consortium on this machine: `custos local-cluster` with n nodes, the
# clients spread over all of them. Every node checks every statement, so the
# bench divides the verify limit by n (docs/performance.md). With
# KILL_NODE=i, node i is SIGKILLed first and the clients use the others
# (the limit is then divided by the n - 1 left): what a crashed member costs.
cluster_bench() {  # nodes count concurrency batch [extra bench args...]
  local nodes=$1 count=$2 conc=$3 batch=$4
  shift 4
  local dir api peer pid urls=()
  dir=$(mktemp -d)
  api=$((20000 + RANDOM % 15000))
  peer=$((api + 100))
  "$B" local-cluster --dir "$dir" --nodes "$nodes" --api-base-port $api --peer-base-port $peer \
    --log-level warn &
  pid=$!
  for i in $(seq 0 $((nodes - 1))); do
    [ "$i" = "${KILL_NODE:-}" ] || urls+=(--node "http://127.0.0.1:$((api + i))")
    for _ in $(seq 1 150); do curl -sf "http://127.0.0.1:$((api + i))/healthz" >/dev/null && break; sleep 0.1; done
  done
  if [ -n "${KILL_NODE:-}" ]; then
    pkill -KILL -f "$dir/node-$KILL_NODE/config.json"
    sleep 1  # the others notice within 0.6 s (docs/consensus.md)
    echo "node-$KILL_NODE SIGKILLed; load on the others"
  fi
  "$B" bench "${urls[@]}" --admin-key "$dir/admin/admin.key" --count "$count" \
    --concurrency "$conc" --batch "$batch" "$@" || { kill -TERM $pid; wait $pid; rm -rf "$dir"; return 1; }
  kill -TERM $pid
  wait $pid || true
  if [ $SMOKE = 1 ]; then
    for i in $(seq 0 $((nodes - 1))); do
      [ "$i" = "${KILL_NODE:-}" ] || "$B" audit --data-dir "$dir/node-$i/data" >/dev/null
    done
    echo "audit passed on the running nodes"
  fi
  rm -rf "$dir"
}
if [ $SMOKE = 1 ]; then
  cluster_bench 4 1000 8 16 --receipts 20
  KILL_NODE=2 cluster_bench 4 500 6 16 --receipts 5
  bash scripts/bench-gateway.sh --smoke
else
  cluster_bench 4 "$COUNT" 16 256 --json
  cluster_bench 7 "$((COUNT / 2))" 16 256 --json
  KILL_NODE=2 cluster_bench 4 "$((COUNT / 10))" 6 256 --json
  bash scripts/bench-gateway.sh
fi
