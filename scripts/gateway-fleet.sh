#!/usr/bin/env bash
# Provisions a fleet of simulated infusion pumps for custos-fleet (sdk/c/examples/fleet.c):
# a maker organisation and its engineer key (once), then per device a signing key registered by
# the maker (device-register) and a TLS client certificate from the broker CA.
#
#   scripts/gateway-fleet.sh --node URL --admin-key ADMIN.key --broker-dir BROKER --out FLEET \
#     [--devices N] [--prefix sim-] [--maker acme]
#
# Then: build/sdk/c/custos-fleet --dir FLEET --ca BROKER/ca.crt --port PORT --devices N --events E
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
B=${CUSTOS_BIN:-$ROOT/build/custos}
NODE=http://127.0.0.1:8080 ADMIN="" BROKER="" OUT="" N=10 PREFIX=sim- MAKER=acme
while (($#)); do
  case "$1" in
    --node) NODE=$2; shift 2 ;;
    --admin-key) ADMIN=$2; shift 2 ;;
    --broker-dir) BROKER=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --devices) N=$2; shift 2 ;;
    --prefix) PREFIX=$2; shift 2 ;;
    --maker) MAKER=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[[ -n "$ADMIN" && -n "$BROKER" && -n "$OUT" ]] || { sed -n 2,9p "$0" >&2; exit 2; }
mkdir -p "$OUT/state"
ENG="$OUT/$MAKER-eng"
if [[ ! -f "$ENG.key" ]]; then
  "$B" org register --node "$NODE" --admin-key "$ADMIN" --id "$MAKER" --name "$MAKER" --kind maker \
    >/dev/null 2>&1 || echo "(organisation $MAKER exists)"
  "$B" keygen --alg es256 --out "$ENG.key" >/dev/null
  "$B" keys register --node "$NODE" --admin-key "$ADMIN" --key "$ENG.pub" --name "$MAKER-eng" \
    --org "$MAKER" --roles biomed >/dev/null
fi
for ((i = 0; i < N; i++)); do
  id="$PREFIX$i"
  [[ -f "$OUT/$id-tls.crt" ]] && continue
  "$B" keygen --alg es256 --out "$OUT/$id.key" >/dev/null
  spki=$(openssl pkey -pubin -in "$OUT/$id.pub" -outform DER | od -An -v -tx1 | tr -d ' \n')
  printf '{"device":"%s","class":"infusion-pump","model":"AP-500","udi":{"di":"00614141999996","serial":"%s"},"key":{"bstr":"%s"}}\n' \
    "$id" "$id" "$spki" >"$OUT/$id.reg.json"
  "$B" sign --key "$ENG.key" --type application/vnd.custos.device-register+cbor --iss "$MAKER-eng" \
    --sub "device/$id" --json "$OUT/$id.reg.json" --out "$OUT/$id.reg.cose" 2>/dev/null
  "$B" submit --node "$NODE" "$OUT/$id.reg.cose" >/dev/null
  "$B" broker issue --dir "$BROKER" --device "$id" --out "$OUT/$id-tls" >/dev/null
done
echo "fleet of $N devices in $OUT"
