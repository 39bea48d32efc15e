#!/usr/bin/env bash
# Configures and builds custos into build/ (or $BUILD_DIR) with Ninja and ccache.
# Extra arguments go to cmake, e.g. -DCUSTOS_SANITIZE=ON.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
# Share compiled objects between build directories (build/, build-asan/ ...).
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1 CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
JOBS=${JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo} "$@" >/dev/null
ninja -C "$BUILD_DIR" -j"$JOBS" ${TARGETS:-}
