#!/usr/bin/env bash
# The main job: installs what is missing, builds, starts a development node
# on http://127.0.0.1:8080 with its data in ./custos-data, walks through a
# short tour (register a key, sign, submit, fetch a receipt, verify it
# offline, audit), then keeps the node running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
bash scripts/deps.sh
echo "== building (first time: a few minutes on 2 cores)"
TARGETS=custos bash scripts/build.sh
B=$ROOT/build/custos
DATA=${CUSTOS_DATA:-$ROOT/custos-data}
LISTEN=${CUSTOS_LISTEN:-127.0.0.1:8080}
N=http://$LISTEN
mkdir -p "$DATA"
"$B" node --dev --data-dir "$DATA" --listen "$LISTEN" &
NODE_PID=$!
trap 'kill -TERM $NODE_PID 2>/dev/null; wait $NODE_PID 2>/dev/null; echo; echo "node stopped; data kept in $DATA"' EXIT
trap 'exit 0' INT TERM
for _ in $(seq 1 100); do curl -sf "$N/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "$N/healthz" >/dev/null || { echo "node did not start"; exit 1; }

TOUR=$DATA/tour
mkdir -p "$TOUR"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
cd "$TOUR"
if [ ! -f pump-17.key ]; then
  say "1. A device maker creates a key for infusion pump 17 (ES256, as device secure elements use)"
  run "$B" keygen --alg es256 --out pump-17.key
  say "2. The consortium administrator registers it (a signed key-registration statement)"
  run "$B" keys register --node "$N" --admin-key "$DATA/keys/admin.key" --key pump-17.pub --name pump-17 --roles issuer
fi
say "3. The pump signs an event: a COSE_Sign1 over deterministic CBOR"
cat > event.json <<JSON
{"event": "rate-change", "device": "pump-17", "drug": "heparin", "rate_ml_h": 12.5, "previous_rate_ml_h": 10}
JSON
run cat event.json
run "$B" sign --key pump-17.key --iss pump-17 --sub "infusion-$(date +%s)" --json event.json --out event.cose
say "4. Submit it: the answer comes once the entry is durably in a block"
run "$B" submit --node "$N" --json event.cose
ID=$(sha256sum event.cose | cut -c1-64)
say "5. Fetch its receipt (RFC 9942 COSE receipt with an RFC 9162 inclusion proof)"
run "$B" receipt --node "$N" "$ID" --out event.receipt
say "6. Anyone can verify statement + receipt offline with the consortium's genesis file"
run "$B" verify --statement event.cose --receipt event.receipt --genesis "$DATA/genesis.json"
say "7. A tampered statement fails"
python3 -c "import sys;b=bytearray(open('event.cose','rb').read());b[-70]^=1;open('tampered.cose','wb').write(b)"
"$B" verify --statement tampered.cose --receipt event.receipt --genesis "$DATA/genesis.json" || true
say "8. Query the ledger: every entry about this pump"
run "$B" entries --node "$N" --issuer pump-17 --limit 3
say "9. The newest signed checkpoint"
run "$B" checkpoint --node "$N" --node-key "$DATA/keys/node.pub"

cat <<TXT

The node keeps running at $N (Ctrl-C stops it; the data stays in $DATA).
Try, in another terminal (binary: $B):
  curl -s $N/v1/entries/$ID | python3 -m json.tool       # the entry as JSON
  curl -s "$N/v1/entries?issuer=pump-17"                 # paged queries
  curl -s $N/metrics | grep custos_                      # Prometheus metrics
  $B bench --node $N --admin-key $DATA/keys/admin.key --count 20000 --data-dir $DATA
  $B audit --data-dir $DATA                              # re-verify everything (also while running)
TXT
wait $NODE_PID
