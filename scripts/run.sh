#!/usr/bin/env bash
# The main job: installs what is missing, builds, starts a local consortium of
# four nodes (BFT consensus over mutual TLS; HTTP APIs on 127.0.0.1:8080-8083,
# data in ./custos-data), walks through a short tour (register a key, sign,
# submit to one node, fetch a quorum-signed receipt from another, verify it
# offline, survive a node going down), then keeps the nodes running until
# Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
bash scripts/deps.sh
echo "== building (first time: a few minutes on 2 cores)"
TARGETS=custos bash scripts/build.sh
B=$ROOT/build/custos
DATA=${CUSTOS_DATA:-$ROOT/custos-data}
API_BASE=${CUSTOS_API_BASE_PORT:-8080}
PEER_BASE=${CUSTOS_PEER_BASE_PORT:-9080}
N0=http://127.0.0.1:$API_BASE
N2=http://127.0.0.1:$((API_BASE + 2))
"$B" local-cluster --dir "$DATA" --nodes 4 --api-base-port "$API_BASE" --peer-base-port "$PEER_BASE" &
CLUSTER_PID=$!
trap 'kill -TERM $CLUSTER_PID 2>/dev/null; wait $CLUSTER_PID 2>/dev/null; echo; echo "nodes stopped; data kept in $DATA"' EXIT
trap 'exit 0' INT TERM
for i in 0 1 2 3; do
  url=http://127.0.0.1:$((API_BASE + i))
  for _ in $(seq 1 150); do curl -sf "$url/healthz" >/dev/null && break; sleep 0.1; done
  curl -sf "$url/healthz" >/dev/null || { echo "node-$i did not start (see $DATA/node-$i/node.log)"; exit 1; }
done

TOUR=$DATA/tour
mkdir -p "$TOUR"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
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

cat <<TXT

The consortium keeps running (Ctrl-C stops it; the data stays in $DATA; logs in $DATA/node-*/node.log).
Try, in another terminal (binary: $B):
  curl -s $N0/healthz                                     # round, leader, peers connected
  kill -9 \$(pgrep -f 'node-3/config.json')               # one node down: the other three go on
  $B submit --node $N0 --json $TOUR/event.cose            # (same bytes: answered as already registered)
  $B bench --node $N0 --node $N2 --admin-key $DATA/admin/admin.key --count 20000
  $B audit --data-dir $DATA/node-1/data                   # re-verify a node's whole ledger
TXT
wait $CLUSTER_PID
