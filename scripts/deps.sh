#!/usr/bin/env bash
# Installs the Debian packages custos builds and tests with. Idempotent: does
# nothing when everything is present.
set -euo pipefail
PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config clang clang-format clang-tidy
  libssl-dev libsodium-dev librocksdb-dev libcpp-httplib-dev nlohmann-json3-dev libjemalloc-dev
  libasio-dev libspdlog-dev libcli11-dev libgtest-dev libgmock-dev librapidcheck-dev libbenchmark-dev
  curl procps
  mosquitto mosquitto-clients libmosquitto-dev
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js runs the independent COSE/RFC 9162 checks in tests/interop; a machine
# may already have it from elsewhere, whose npm conflicts with Debian's.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
