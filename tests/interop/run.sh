#!/usr/bin/env bash
# Interop tests: custos statements, receipts and checkpoints checked against
# independent implementations (npm cbor, Node crypto, @transmute/rfc9162,
# @transmute/cose, and RFC 9162 written in JS). Needs Node >= 20 and a built
# custos (CUSTOS_BIN, default ../../build/custos from this directory).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [[ -n "${CUSTOS_BIN:-}" ]]; then
  CUSTOS_BIN="$(realpath -m "$CUSTOS_BIN")"
  export CUSTOS_BIN
fi
cd "$here"
# Installs exactly package-lock.json; uses the npm cache when it can.
npm ci --no-audit --no-fund --prefer-offline
exec node --test
