#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs on this machine
#   - a consortium of four nodes (BFT consensus over mutual TLS; HTTP APIs on
#     127.0.0.1:8080-8083; data in ./custos-data),
#   - a Mosquitto broker (MQTT 5 over TLS with device certificates, port 8883),
#   - the device gateway (metrics on 127.0.0.1:9108),
# walks through a short tour (a signed statement, its quorum receipt verified
# offline, an infusion incident and its report), then runs a simulated
# hospital: pumps and monitors publishing signed events over MQTT, clinicians
# ordering, verifying and programming infusions, injected faults, and one node
# killed and restarted along the way, with a live summary. Ctrl-C stops
# everything cleanly; the data stays for inspection.
#   CUSTOS_TOUR=0 skips the tour; CUSTOS_SIM_BEDS, CUSTOS_SIM_WARDS size the hospital.
set -euo pipefail
# Job control: every background service gets a process group of its own, so
# Ctrl-C reaches only this script (and a tour command in the foreground); the
# simulator runs as a job too and hears Ctrl-C from this script, so it can
# print its final summary; the EXIT trap then stops the services, each whole
# process group (a restarted node-3 included), after the simulator finished.
set -m
cd "$(dirname "$0")/.."
ROOT=$PWD
bash scripts/deps.sh
echo "== building (first time: a few minutes on 2 cores)"
TARGETS="custos custos_pump_example" bash scripts/build.sh
B=$ROOT/build/custos
DATA=${CUSTOS_DATA:-$ROOT/custos-data}
API_BASE=${CUSTOS_API_BASE_PORT:-8080}
PEER_BASE=${CUSTOS_PEER_BASE_PORT:-9080}
MQTT_PORT=${CUSTOS_MQTT_PORT:-8883}
GW_METRICS=127.0.0.1:${CUSTOS_GATEWAY_METRICS_PORT:-9108}
N0=http://127.0.0.1:$API_BASE
N2=http://127.0.0.1:$((API_BASE + 2))
NODES=()
for i in 0 1 2 3; do NODES+=(--node "http://127.0.0.1:$((API_BASE + i))"); done
PIDS=()
stop_all() {
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo
  echo "stopped: nodes, broker, gateway. Data kept in $DATA (logs: node-*/node.log, broker/broker.log, gateway/gateway.log)"
}
trap stop_all EXIT
trap 'exit 0' INT TERM

"$B" local-cluster --dir "$DATA" --nodes 4 --api-base-port "$API_BASE" --peer-base-port "$PEER_BASE" \
  --log-level warn &
PIDS+=($!)
for i in 0 1 2 3; do
  url=http://127.0.0.1:$((API_BASE + i))
  for _ in $(seq 1 150); do curl -sf "$url/healthz" >/dev/null && break; sleep 0.1; done
  curl -sf "$url/healthz" >/dev/null || { echo "node-$i did not start (see $DATA/node-$i/node.log)"; exit 1; }
done
[ -f "$DATA/broker/mosquitto.conf" ] || "$B" broker init --dir "$DATA/broker" --port "$MQTT_PORT" >/dev/null
"$B" broker run --dir "$DATA/broker" >>"$DATA/broker/broker.log" 2>&1 &
PIDS+=($!)
mkdir -p "$DATA/gateway"
"$B" gateway --broker-dir "$DATA/broker" "${NODES[@]}" --spool-dir "$DATA/gateway/spool" \
  --metrics-listen "$GW_METRICS" --log-level warn >>"$DATA/gateway/gateway.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do curl -sf "http://$GW_METRICS/metrics" >/dev/null && break; sleep 0.1; done
curl -sf "http://$GW_METRICS/metrics" >/dev/null || { echo "the gateway did not start (see $DATA/gateway/gateway.log)"; exit 1; }

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
if [ "${CUSTOS_TOUR:-1}" != 0 ]; then
TOUR=$DATA/tour
mkdir -p "$TOUR"
cd "$TOUR"
say "0. Four nodes, one per organisation, agree on every block (n = 4 tolerates f = 1 faulty node)"
run curl -s "$N0/healthz"
echo
if [ ! -f pump-17.key ]; then
  say "1. A device maker creates a key for infusion pump 17 (ES256, as device secure elements use)"
  run "$B" keygen --alg es256 --out pump-17.key
  say "2. The consortium administrator registers it (a signed key-registration statement)"
  run "$B" keys register --node "$N0" --admin-key "$DATA/admin/admin.key" --key pump-17.pub --name pump-17 --roles issuer
fi
say "3. The pump signs an event: a COSE_Sign1 over deterministic CBOR"
cat > event.json <<JSON
{"event": "rate-change", "device": "pump-17", "drug": "heparin", "rate_ml_h": 12.5, "previous_rate_ml_h": 10}
JSON
run cat event.json
run "$B" sign --key pump-17.key --iss pump-17 --sub "infusion-$(date +%s)" --json event.json --out event.cose
say "4. Submit it to node-2: the answer comes once the consortium has committed it and a quorum signed its block"
run "$B" submit --node "$N2" --json event.cose
ID=$(sha256sum event.cose | cut -c1-64)
say "5. Fetch its receipt from node-0: one RFC 9942 receipt per signing node, with an RFC 9162 inclusion proof"
run "$B" receipt --node "$N0" "$ID" --out event.receipt
say "6. Anyone can verify statement + receipt offline with the consortium's genesis file (needs 3 of 4 nodes)"
run "$B" verify --statement event.cose --receipt event.receipt --genesis "$DATA/genesis.json"
say "7. A tampered statement fails"
python3 -c "import sys;b=bytearray(open('event.cose','rb').read());b[-70]^=1;open('tampered.cose','wb').write(b)"
"$B" verify --statement tampered.cose --receipt event.receipt --genesis "$DATA/genesis.json" || true
say "8. Every node holds the same log: the same size and root everywhere"
for i in 0 1 2 3; do
  printf 'node-%s: ' "$i"; curl -s "http://127.0.0.1:$((API_BASE + i))/v1/checkpoint" -H 'Accept: application/json' |
    python3 -c 'import json,sys; h=json.load(sys.stdin); print("log size", h["log_size"], "root", h["root"])'
done
say "9. Query the ledger: every entry about this pump"
run "$B" entries --node "$N0" --issuer pump-17 --limit 3
say "10. An infusion incident, from the order to the alarm, and its report (scripts/tour-incident.sh)"
bash "$ROOT/scripts/tour-incident.sh" "$N0" "$DATA" "$TOUR/incident"
fi

say "11. A simulated hospital: every pump and monitor is an MQTT client with its own key and"
echo "    certificate; the gateway takes their signed events to the consortium. Faults are injected"
echo "    after 30 s (replay, tampering, a cloned key, rogue firmware, a skewed clock, a soft-limit"
echo "    override, a ward losing its network); node-3 is killed at 90 s and restarted at 120 s."
sleep 3
# node-3 (a child of local-cluster) killed, then started again in this
# helper's process group, which stop_all ends whole.
(
  sleep 90
  pkill -KILL -f "$DATA/node-3/config.json" || true
  sleep 30
  exec "$B" node --config "$DATA/node-3/config.json" --log-level warn >>"$DATA/node-3/node.log" 2>&1
) &
PIDS+=($!)
set +e
"$B" simulate "${NODES[@]}" --admin-key "$DATA/admin/admin.key" --broker-dir "$DATA/broker" \
  --dir "$DATA/hospital" --beds "${CUSTOS_SIM_BEDS:-4}" --wards "${CUSTOS_SIM_WARDS:-icu,med-surg,oncology}" \
  --faults all --fault-at-s 30 &
SIM=$!
# Ctrl-C (or SIGINT/SIGTERM from a supervisor such as timeout) reaches this
# script; pass it on to the simulator and wait until it has drained and
# printed its final summary (`wait` returns early on each trapped signal).
trap 'kill -INT "$SIM" 2>/dev/null || true' INT TERM
while kill -0 "$SIM" 2>/dev/null; do wait "$SIM"; done
trap 'exit 0' INT TERM
set -e
cat <<TXT

More to try (binary: $B; the consortium keeps its data in $DATA):
  curl -s $N0/healthz                                        # round, leader, peers connected
  curl -s http://$GW_METRICS/metrics | grep custos_gateway_   # the gateway: received, refused by reason, spool
  $B device timeline --node $N0 sim-icu-b1-pump             # a pump's whole life, signed step by step
  $B receipt --node $N0 ENTRY_ID --out e.receipt && $B get --node $N0 ENTRY_ID --out e.cose
  $B verify --statement e.cose --receipt e.receipt --genesis $DATA/genesis.json   # offline, 3 of 4 nodes
  $B audit --data-dir $DATA/node-1/data                      # re-verify a node's whole ledger
Then run this script again: it finds its consortium, broker and hospital and goes on.
TXT
