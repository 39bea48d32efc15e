#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, and runs
#   1. unit, property and integration tests (ctest; real RocksDB, real node
#      processes over HTTP, the SIGKILL crash test, 4-node consortia over
#      mutual TLS killed, paused and cut off, the device gateway with a real
#      Mosquitto broker over TLS, gateway/broker/node faults under load) and
#      the consensus simulation (tests/sim: a few hundred seeds with
#      Byzantine nodes),
#   2. the unit tests again under AddressSanitizer + UndefinedBehaviorSanitizer,
#   3. a short libFuzzer run of every harness on its seed corpus,
#   4. the interop tests against independent COSE / RFC 9162 code (npm),
#      and the FHIR R4 exports of a real node against the official R4 JSON
#      schema (npm, tests/fhir),
#   5. a smoke run of the benchmarks, one node, a 4-node consortium (also with
#      one node SIGKILLed) and the device pipeline (never a
#      speed assertion).
# Ends with one line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
bash scripts/deps.sh || exit 1
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
passed=0
failed=0
failures=()
step() {
  local name=$1
  shift
  printf '\n\033[1m== %s\033[0m\n' "$name"
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("$name")
  fi
}

# Options spelled out: CMake remembers them per build directory, so a
# directory configured differently earlier must not silently drop tests.
build_main() { bash scripts/build.sh -DCUSTOS_TESTS=ON -DCUSTOS_BENCH=ON -DCUSTOS_SANITIZE=OFF -DCUSTOS_FUZZ=OFF; }
ctest_main() { (cd build && ctest --output-on-failure -j2 --timeout 600); }
build_asan() {
  # Only the unit-test binaries: the integration tests run the normal build.
  local targets
  targets=$(find tests/unit -mindepth 1 -maxdepth 1 -type d -printf 'test_%f ')
  BUILD_DIR=build-asan TARGETS="$targets" bash scripts/build.sh -DCUSTOS_SANITIZE=ON -DCUSTOS_BENCH=OFF
}
ctest_asan() {
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --output-on-failure -j2 -L unit --timeout 600)
}
fuzz() {
  local targets
  targets=$(for f in tests/fuzz/*_fuzz.cc; do basename "$f" .cc; done | tr '\n' ' ')
  BUILD_DIR=build-fuzz CC=clang CXX=clang++ TARGETS="$targets" bash scripts/build.sh -DCUSTOS_FUZZ=ON \
    -DCUSTOS_TESTS=OFF -DCUSTOS_BENCH=OFF || return 1
  local ok=0
  for harness in build-fuzz/*_fuzz; do
    local name
    name=$(basename "$harness" _fuzz)
    local corpus=tests/fuzz/corpus/$name
    local work
    work=$(mktemp -d)
    [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
    echo "-- $name: ${FUZZ_SECONDS}s"
    if ! "$harness" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -print_final_stats=1 "$work" \
      >"$work.log" 2>&1; then
      tail -40 "$work.log"
      ok=1
    else
      grep -E "stat::number_of_executed_units|Done" "$work.log" | tail -2
    fi
    rm -rf "$work" "$work.log"
  done
  return $ok
}
format_check() {
  git ls-files 'src/*.cc' 'src/*.h' 'tests/*.cc' 'tests/*.h' 'bench/*.cc' 'sdk/*.c' 'sdk/*.h' | xargs clang-format --dry-run --Werror
}
interop() { CUSTOS_BIN=$ROOT/build/custos CUSTOS_PUMP_BIN=$ROOT/build/sdk/c/custos-pump bash tests/interop/run.sh; }
fhir() { CUSTOS_BUILD_DIR=$ROOT/build bash tests/fhir/run.sh; }
bench_smoke() { bash scripts/bench.sh --smoke; }

step "format (clang-format, .clang-format)" format_check
step "build" build_main
step "unit, property and integration tests" ctest_main
step "build with ASan+UBSan" build_asan
step "unit tests under ASan+UBSan" ctest_asan
step "fuzzing (${FUZZ_SECONDS}s per harness)" fuzz
step "interop with independent COSE / RFC 9162 code" interop
step "FHIR R4 exports against the official JSON schema" fhir
step "benchmark smoke" bench_smoke

echo
for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "suite: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
