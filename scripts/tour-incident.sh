#!/usr/bin/env bash
# The incident tour: a nurse overrides a soft limit on an infusion pump whose
# firmware is under advisory, the pump raises an occlusion alarm, and the
# patient-safety officer asks for the incident report of that infusion.
#
#   scripts/tour-incident.sh NODE_URL DATA_DIR [WORK_DIR]
#
# NODE_URL: any node of the consortium. DATA_DIR: the consortium directory
# holding genesis.json and the administrator key (admin/admin.key as
# `custos init` / local-cluster write it, or keys/admin.key of `node --dev`).
# WORK_DIR (default DATA_DIR/tour-incident) keeps the actors' keys, so the
# tour can run again: organisations, keys, the firmware release, the
# advisory and the drug library are made once; each run adds a new pump and
# a new order. Ends with the report, every receipt verified offline.
# CUSTOS_BIN overrides the binary (default build/custos).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 NODE_URL DATA_DIR [WORK_DIR]" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=$1
D=$(cd "$2" && pwd)
W=${3:-$D/tour-incident}
B=${CUSTOS_BIN:-$ROOT/build/custos}
G=$D/genesis.json
ADMIN=$D/admin/admin.key
[ -f "$ADMIN" ] || ADMIN=$D/keys/admin.key
[ -f "$ADMIN" ] && [ -f "$G" ] || { echo "no admin key or genesis.json under $D" >&2; exit 2; }
mkdir -p "$W"
cd "$W"
TAG=${TOUR_TAG:-$(date +%s)}
PUMP=pump-$TAG
ORDER=o-$TAG
PATIENT=pseudonym:$(printf 'patient-%s' "$TAG" | sha256sum | cut -c1-32)

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# Runs a step that only needs doing once: "already ..." refusals are fine.
once() {
  local err
  if ! err=$("$@" 2>&1 >/dev/null); then
    case "$err" in
      *already*) echo "  (already done)" ;;
      *) echo "$err" >&2; return 1 ;;
    esac
  fi
}
# keygen + register a key of an organisation with one role (once).
actor() {  # name org role [alg]
  [ -f "$1.key" ] && return 0
  "$B" keygen --alg "${4:-ed25519}" --out "$1.key" >/dev/null
  "$B" keys register --node "$N" --admin-key "$ADMIN" --key "$1.pub" --name "$1" --org "$2" \
    --roles "$3" >/dev/null
  echo "  $1: $3 of $2"
}
# Signs a domain statement from JSON with a key's own sequence file and submits it.
post() {  # key type subject json
  printf '%s' "$4" > stmt.json
  "$B" sign --key "$1.key" --iss "$1" --sub "$3" --type "application/vnd.custos.$2+cbor" \
    --json stmt.json --out stmt.cose 2>/dev/null
  "$B" submit --node "$N" stmt.cose
}
hex_of_file() { sha256sum "$1" | cut -c1-64; }

say "1. The organisations: a device maker, a hospital, a regulator"
once "$B" org register --node "$N" --admin-key "$ADMIN" --id acme --name "Acme Infusion" --kind maker
once "$B" org register --node "$N" --admin-key "$ADMIN" --id st-mary --name "St Mary's Hospital" --kind hospital
once "$B" org register --node "$N" --admin-key "$ADMIN" --id fda --name "FDA" --kind regulator

say "2. Each person signs with their own key, registered to their organisation"
actor acme-eng acme biomed
actor sm-biomed st-mary biomed
actor dr-house st-mary prescriber
actor ph-rao st-mary pharmacist
actor rn-jones st-mary nurse
actor fda-analyst fda auditor

say "3. Acme releases firmware 2.0.0 for its AP-500 pump and registers $PUMP with the pump's own key"
printf 'AP-500 firmware image 2.0.0' > firmware-2.0.0.bin
printf 'AP-500 SBOM 2.0.0' > sbom-2.0.0.json
IMAGE=$(hex_of_file firmware-2.0.0.bin)
once post acme-eng firmware-release firmware/2.0.0 \
  "{\"version\":\"2.0.0\",\"image_sha256\":{\"bstr\":\"$IMAGE\"},\"sbom_sha256\":{\"bstr\":\"$(hex_of_file sbom-2.0.0.json)\"},\"models\":[\"AP-500\"]}"
"$B" keygen --alg es256 --out "$PUMP.key" >/dev/null
# The public key PEM's body is the SPKI DER the registration carries.
SPKI=$(grep -v -- ----- "$PUMP.pub" | base64 -d | od -An -v -tx1 | tr -d ' \n')
post acme-eng device-register "devices/$PUMP" \
  "{\"device\":\"$PUMP\",\"class\":\"infusion-pump\",\"model\":\"AP-500\",\"udi\":{\"di\":\"00614141999996\",\"serial\":\"SN$TAG\"},\"key\":{\"bstr\":\"$SPKI\"}}"

say "4. The pump is delivered to St Mary's, installed in the ICU, and attests its firmware"
post acme-eng device-custody "devices/$PUMP" "{\"device\":\"$PUMP\",\"to\":\"st-mary\"}"
post sm-biomed device-install "devices/$PUMP" "{\"device\":\"$PUMP\",\"care_area\":\"icu\",\"location\":\"bed 4\"}"
post "$PUMP" firmware-install "devices/$PUMP" "{\"version\":\"2.0.0\",\"image_sha256\":{\"bstr\":\"$IMAGE\"}}"
once post sm-biomed drug-library drug-library/st-mary "{\"version\":\"DL-7\",\"sha256\":{\"bstr\":\"$(printf DL-7 | sha256sum | cut -c1-64)\"}}"

say "5. The regulator publishes an advisory naming AP-500 firmware 2.0.0"
once post fda-analyst advisory advisories/ADV-2026-0042 \
  '{"id":"ADV-2026-0042","maker":"acme","models":["AP-500"],"versions":["2.0.0"],"cves":["CVE-2026-12345"],"severity":"high","fixed_in":"2.0.1","summary":"bolus may be delivered after an occlusion clears"}'

say "6. The chain of one infusion: order, pharmacy verification, the nurse programs the pump"
"$B" order create --node "$N" --key dr-house.key --order "$ORDER" --patient "$PATIENT" \
  --drug heparin --dose 25000 --dose-unit "[iU]" --rate 25 --vtbi 250 --care-area icu
"$B" order verify --node "$N" --key ph-rao.key --order "$ORDER"
"$B" order program --node "$N" --key rn-jones.key --order "$ORDER" --device "$PUMP" \
  --drug-library DL-7 --drug heparin --dose 25000 --dose-unit "[iU]" --rate 25 --vtbi 250

say "7. The pump records what happened: a soft-limit alert the nurse overrides, the start, an occlusion"
LIMIT='"limit":{"kind":"soft","bound":"upper","value":20,"unit":"mL/h"}'
post "$PUMP" device-event "orders/$ORDER" "{\"event\":\"programming\",\"order\":\"$ORDER\",\"drug\":\"heparin\",\"rate_ml_h\":25,\"vtbi_ml\":250,\"drug_library\":\"DL-7\"}"
post "$PUMP" device-event "orders/$ORDER" "{\"event\":\"soft-limit-alert\",\"order\":\"$ORDER\",$LIMIT,\"rate_ml_h\":25}"
post "$PUMP" device-event "orders/$ORDER" "{\"event\":\"soft-limit-override\",\"order\":\"$ORDER\",$LIMIT,\"rate_ml_h\":25}"
post "$PUMP" device-event "orders/$ORDER" "{\"event\":\"start\",\"order\":\"$ORDER\",\"rate_ml_h\":25}"
post "$PUMP" device-event "orders/$ORDER" "{\"event\":\"alarm\",\"order\":\"$ORDER\",\"alarm\":\"occlusion-downstream\",\"priority\":\"high\"}"
post "$PUMP" device-event "orders/$ORDER" "{\"event\":\"stop\",\"order\":\"$ORDER\",\"volume_infused_ml\":40}"

say "8. The patient-safety officer asks for the incident report; every receipt is verified offline"
"$B" report --node "$N" "$ORDER" --genesis "$G" --out "$W/report-$ORDER"
echo
echo "Each step's statement and receipt is in $W/report-$ORDER; check any one alone with:"
echo "  $B verify --statement $W/report-$ORDER/03-programming.cose --receipt $W/report-$ORDER/03-programming.receipt --genesis $G"
