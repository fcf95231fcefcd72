#!/usr/bin/env bash
# Installs, with apt, the Debian 12 packages tinymq needs to build and test. Idempotent: when every
# package is present it prints nothing and exits 0. Run as root (CI and the dev machines are root);
# otherwise it uses sudo when it exists.
set -euo pipefail

packages=(
  cmake ninja-build g++ make pkg-config
  clang libclang-rt-14-dev  # libFuzzer and the sanitizer runtimes for clang
  libgtest-dev libgmock-dev
  libbenchmark-dev
  libtomlplusplus-dev libcli11-dev libspdlog-dev libfmt-dev  # config file, command line, logs
  librocksdb-dev  # the store (src/tinymq/store)
  libssl-dev  # password hashes (src/tinymq/auth), TLS
  mosquitto mosquitto-clients python3-paho-mqtt python3  # integration tests (tests/integration)
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then
    sudo="sudo"
  else
    echo "install-deps: need root to install: ${missing[*]}" >&2
    exit 1
  fi
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done" >&2
