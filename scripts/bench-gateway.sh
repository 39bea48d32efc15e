#!/usr/bin/env bash
# The device pipeline end to end (docs/performance.md, "Devices over MQTT"):
# simulated pumps (the C SDK's custos-fleet: each device its own key, TLS
# certificate and MQTT connection) -> Mosquitto -> custos gateway -> a
# 4-node consortium, acknowledged once quorum-signed. Reported beside the
# signature work the pipeline must do per event on this machine, measured in
# the same run: one ES256 signature (the device) and 1 + n ES256
# verifications (the gateway and every node).
#
#   scripts/bench-gateway.sh [--smoke] [DEVICES] [EVENTS_PER_DEVICE]
#
# CUSTOS_GATEWAY_ARGS adds options to `custos gateway`, e.g.
# CUSTOS_GATEWAY_ARGS="--batch-max 256 --lanes 8".
#
# Prints one JSON object: the peak run, a run at half of that peak, and the
# limit. Never a timed test: CI runs --smoke (a few devices) for the wiring.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SMOKE=0
[ "${1:-}" = "--smoke" ] && { SMOKE=1; shift; }
DEVICES=${1:-200}
EVENTS=${2:-50}
[ $SMOKE = 1 ] && { DEVICES=4; EVENTS=5; }
NODES=4
read -ra GATEWAY_ARGS <<<"${CUSTOS_GATEWAY_ARGS:-}"
B=$ROOT/build/custos
FLEET_BIN=$ROOT/build/sdk/c/custos-fleet
MICRO=$ROOT/build/custos_microbench
for bin in "$B" "$FLEET_BIN" "$MICRO"; do
  [ -x "$bin" ] || { echo "build first: $bin is missing (bash scripts/build.sh)" >&2; exit 2; }
done
DIR=$(mktemp -d)
API=$((20000 + RANDOM % 10000))
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$DIR"
}
trap cleanup EXIT

# Per-core rates of ES256 signing and verification, all cores busy at once
# (the vCPUs of a VM may share physical cores): the sum over cores.
rate_all_cores() {  # benchmark filter
  local cores out total=0
  cores=$(nproc)
  for _ in $(seq 1 "$cores"); do
    "$MICRO" --benchmark_filter="$1" --benchmark_min_time=1 --benchmark_format=json 2>/dev/null \
      >"$DIR/rate.$RANDOM.json" &
  done
  wait
  for f in "$DIR"/rate.*.json; do
    out=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["benchmarks"][0]["items_per_second"])' "$f")
    total=$(python3 -c "print($total + $out)")
    rm -f "$f"
  done
  echo "$total"
}
limit() {  # events/s the signature work allows: 1 sign + (1 + n) verifies per event
  local sign verify
  sign=$(rate_all_cores 'BM_Sign/ES256')
  verify=$(rate_all_cores 'BM_Verify/ES256')
  python3 -c "import json; s=$sign; v=$verify; n=$NODES; print(json.dumps({'sign_per_s': s, 'verify_per_s': v, 'events_per_s': 1/(1/s + (1+n)/v)}))"
}

"$B" local-cluster --dir "$DIR/c" --nodes $NODES --api-base-port $API --peer-base-port $((API + 100)) \
  --log-level warn >"$DIR/cluster.log" 2>&1 &
PIDS+=($!)
URLS=()
for i in $(seq 0 $((NODES - 1))); do
  URLS+=(--node "http://127.0.0.1:$((API + i))")
  for _ in $(seq 1 150); do curl -sf "http://127.0.0.1:$((API + i))/healthz" >/dev/null && break; sleep 0.1; done
done
MQTT=$((API + 300))
"$B" broker init --dir "$DIR/broker" --port $MQTT >/dev/null
"$B" broker run --dir "$DIR/broker" >"$DIR/broker.log" 2>&1 &
PIDS+=($!)
"$B" gateway --broker-dir "$DIR/broker" "${URLS[@]}" --spool-dir "$DIR/spool" \
  --metrics-listen "127.0.0.1:$((API + 301))" --log-level warn "${GATEWAY_ARGS[@]}" >"$DIR/gateway.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$((API + 301))/metrics" >/dev/null && break; sleep 0.1; done
echo "provisioning $DEVICES devices..." >&2
bash scripts/gateway-fleet.sh --node "http://127.0.0.1:$API" --admin-key "$DIR/c/admin/admin.key" \
  --broker-dir "$DIR/broker" --out "$DIR/fleet" --devices "$DEVICES" >&2

fleet() {  # per-device rate (0: as fast as possible)
  "$FLEET_BIN" --dir "$DIR/fleet" --ca "$DIR/broker/ca.crt" --port $MQTT --devices "$DEVICES" \
    --events "$EVENTS" --rate "$1" --timeout-s 300
}
echo "measuring the signature limit..." >&2
BEFORE=$(limit)
busy_s() {  # CPU seconds the whole machine spent busy so far (/proc/stat)
  awk '/^cpu /{print ($2+$3+$4+$7+$8+$9)/100}' /proc/stat
}
proc_cpu() {  # CPU seconds used so far by each process of the pipeline, as JSON
  python3 - <<'PY'
import json, os
hz = os.sysconf("SC_CLK_TCK")
cpu = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        stat = open(f"/proc/{pid}/stat").read()
        cmd = open(f"/proc/{pid}/cmdline").read().split("\0")
    except OSError:
        continue
    fields = stat[stat.rindex(")") + 2:].split()
    used = (int(fields[11]) + int(fields[12])) / hz
    exe = os.path.basename(cmd[0])
    role = ("node-" + pid if exe == "custos" and "node" in cmd[1:2]
            else "gateway" if exe == "custos" and "gateway" in cmd[1:2]
            else "broker" if exe == "mosquitto" else None)
    if role:
        cpu[role] = used
print(json.dumps(cpu))
PY
}
height() { curl -sf "http://127.0.0.1:$API/v1/node" | python3 -c 'import json,sys; print(json.load(sys.stdin)["height"])'; }
echo "peak: $DEVICES devices x $EVENTS events, as fast as they go..." >&2
H0=$(height)
C0=$(busy_s)
P0=$(proc_cpu)
PEAK=$(fleet 0)
P1=$(proc_cpu)
C1=$(busy_s)
H1=$(height)
HALF_RATE=$(python3 -c 'import json, sys
print(max(json.loads(sys.argv[1])["events_per_s"] / 2 / int(sys.argv[2]), 0.01))' "$PEAK" "$DEVICES")
echo "half of the peak: $HALF_RATE events/s per device..." >&2
HALF=$(fleet "$HALF_RATE")
AFTER=$(limit)
python3 - "$BEFORE" "$AFTER" "$PEAK" "$HALF" "$H0" "$H1" "$C0" "$C1" "$P0" "$P1" <<'PY'
import json, sys
before, after, peak, half = (json.loads(a) for a in sys.argv[1:5])
p0, p1 = json.loads(sys.argv[9]), json.loads(sys.argv[10])
# CPU per event of each process during the peak: the nodes (mean of them),
# the gateway, the broker, and the fleet (which reports its own).
if peak["acked"]:
    per = lambda s: round(s * 1e6 / peak["acked"], 1)
    nodes = [per(p1[k] - p0[k]) for k in p1 if k.startswith("node-") and k in p0]
    peak["cpu_us_per_event"] = {
        "each_node": round(sum(nodes) / len(nodes), 1) if nodes else None,
        "nodes": nodes,
        "gateway": per(p1.get("gateway", 0) - p0.get("gateway", 0)),
        "broker": per(p1.get("broker", 0) - p0.get("broker", 0)),
        "fleet": per(peak.get("cpu_s", 0)),
    }
blocks = int(sys.argv[6]) - int(sys.argv[5])
# The machine's busy CPU time per event while the peak ran: every process
# of the pipeline (and anything else running) together.
peak["machine_cpu_us_per_event"] = round(
    (float(sys.argv[8]) - float(sys.argv[7])) * 1e6 / peak["acked"], 1) if peak["acked"] else None
lim = max(before, after, key=lambda l: l["events_per_s"])
# Blocks committed while the peak ran, and statements per block.
peak["blocks"] = blocks
peak["statements_per_block"] = round(peak["acked"] / blocks, 1) if blocks else None
print(json.dumps({
    "limit": lim,
    "peak": peak,
    "half_load": half,
    "ratio_to_signature_limit": peak["events_per_s"] / lim["events_per_s"],
}, indent=2))
PY
