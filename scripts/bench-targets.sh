#!/usr/bin/env bash
# The figures behind each performance target (docs/performance.md, "Where
# each target stands"), one run after another on an otherwise idle machine:
#   scripts/bench-targets.sh [OUT_DIR]
# One node (three runs), a 4-node consortium (peak twice, half of the peak,
# the domain rules' cost), a 7-node consortium, the domain rules' cost on
# fresh one-node ledgers (three pairs), and the device pipeline over MQTT
# (scripts/bench-gateway.sh). Each run's JSON lands in OUT_DIR; a summary
# is printed at the end. A benchmark, never a timed test.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
B=$ROOT/build/custos
[ -x "$B" ] || { echo "build first: bash scripts/build.sh -DCUSTOS_BENCH=ON" >&2; exit 2; }
M=${1:-$(mktemp -d)}
mkdir -p "$M"
BASE=$((20000 + RANDOM % 8000))
wait_up() {
  for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$1/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "port $1 did not come up" >&2
  return 1
}
PIDS=()
stop_all() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
}
trap stop_all EXIT
log() { echo "== $(date +%T) $*" >&2; }
one_node() {  # NAME BENCH-ARGS...
  local name=$1 port=$((BASE + 1))
  shift
  rm -rf "$M/$name.d"
  "$B" node --dev --data-dir "$M/$name.d" --listen 127.0.0.1:$port --log-level warn >"$M/$name.log" 2>&1 &
  PIDS+=($!)
  wait_up $port || { stop_all; return 1; }
  "$B" bench --node http://127.0.0.1:$port --admin-key "$M/$name.d/keys/admin.key" --json "$@" \
    >"$M/$name.json" 2>>"$M/$name.log" || echo "$name: bench failed (see $M/$name.log)" >&2
  stop_all
}
cluster() {  # NAME NODES BENCH-RUNS (a function called with the URL options)
  local name=$1 n=$2 run=$3 api=$((BASE + 100)) urls=()
  rm -rf "${M:?}/$name"
  "$B" local-cluster --dir "$M/$name" --nodes "$n" --api-base-port $api --peer-base-port $((api + 50)) \
    --log-level warn >"$M/$name.log" 2>&1 &
  PIDS+=($!)
  for i in $(seq 0 $((n - 1))); do
    wait_up $((api + i)) || { stop_all; return 1; }
    urls+=(--node "http://127.0.0.1:$((api + i))")
  done
  "$run" "$name" "${urls[@]}"
  stop_all
}
four_nodes() {
  local name=$1
  shift
  local k=(--admin-key "$M/$name/admin/admin.key")
  for i in 1 2; do
    log "4 nodes, peak $i"
    "$B" bench "$@" "${k[@]}" --count 60000 --concurrency 8 --batch 512 --receipts 20 --json >"$M/c4-peak-$i.json"
  done
  local half
  half=$(python3 -c 'import json, sys
print(int(max(json.load(open(f))["registered_per_s"] for f in sys.argv[1:]) / 2))' \
    "$M/c4-peak-1.json" "$M/c4-peak-2.json") || { echo "4 nodes: no peak figure" >&2; return 1; }
  log "4 nodes, half of the peak: $half/s"
  "$B" bench "$@" "${k[@]}" --count $((half * 30)) --concurrency 16 --batch 32 --rate "$half" --receipts 20 \
    --json >"$M/c4-half.json"
  log "4 nodes, domain rules' cost"
  "$B" bench "$@" "${k[@]}" --workload compare --count 60000 --concurrency 8 --batch 512 --receipts 20 \
    --json >"$M/c4-compare.json"
}
seven_nodes() {
  local name=$1
  shift
  log "7 nodes, peak"
  "$B" bench "$@" --admin-key "$M/$name/admin/admin.key" --count 42000 --concurrency 7 --batch 512 \
    --receipts 20 --json >"$M/c7-peak.json"
}

for i in 1 2 3; do
  log "one node, run $i"
  one_node "n1-$i" --count 100000 --concurrency 4 --batch 512 --receipts 20 --data-dir "$M/n1-$i.d"
done
cluster c4 4 four_nodes
cluster c7 7 seven_nodes
for i in 1 2 3; do
  log "domain rules' cost, fresh ledgers, pair $i"
  one_node "bare-$i" --workload statements --payload-bytes 0 --count 100000 --concurrency 4 --batch 512 --receipts 5
  one_node "devices-$i" --workload device-events --count 100000 --concurrency 4 --batch 512 --receipts 5
done
log "device pipeline over MQTT"
bash scripts/bench-gateway.sh 200 250 2>"$M/gateway.log" >"$M/gateway.json" ||
  echo "device pipeline: failed (see $M/gateway.log)" >&2

python3 - "$M" <<'PY'
import json, sys, os
m = sys.argv[1]
def load(n):
    p = os.path.join(m, n + ".json")
    return json.load(open(p)) if os.path.exists(p) and os.path.getsize(p) else None
def row(n, d):
    if d:
        print(f"{n:14} {d['registered_per_s']:9.0f}/s  ratio {d['ratio_to_verify_limit']:.3f}  "
              f"p50/p99 {d['latency_p50_ms']:.0f}/{d['latency_p99_ms']:.0f} ms  "
              f"RSS {d['node_peak_rss_mb']:.0f} MB  verification share {d.get('verify_share_of_node_cpu', 0):.2f}")
for n in ["n1-1", "n1-2", "n1-3", "c4-peak-1", "c4-peak-2", "c4-half", "c7-peak"]:
    row(n, load(n))
c = load("c4-compare")
if c:
    print(f"4 nodes, same-run compare: rules cost {c['domain_cost_throughput']:.3f} (CPU {c['domain_cost_cpu']:.3f})")
for i in (1, 2, 3):
    a, b = load(f"bare-{i}"), load(f"devices-{i}")
    if a and b:
        print(f"rules cost, fresh pair {i}: throughput {1 - b['registered_per_s'] / a['registered_per_s']:.3f}, "
              f"CPU {b['nodes_cpu_us_per_statement'] / a['nodes_cpu_us_per_statement'] - 1:.3f}")
g = load("gateway")
if g:
    print(f"devices over MQTT: {g['peak']['events_per_s']}/s against {g['limit']['events_per_s']:.0f}/s "
          f"-> {g['ratio_to_signature_limit']:.3f}; half load p50/p99 "
          f"{g['half_load']['ack_p50_ms']}/{g['half_load']['ack_p99_ms']} ms")
print("figures in", m)
PY
