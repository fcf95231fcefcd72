#!/usr/bin/env bash
# Installs, with apt, the Debian 12 packages tinymq needs to build and test, then the npm packages of
# the JavaScript test clients (tests/js: MQTT.js, playwright-core) from tests/js/package-lock.json.
# Idempotent: when everything is present it prints nothing and exits 0. Run as root (CI and the dev
# machines are root); otherwise it uses sudo when it exists.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  cmake ninja-build g++ make pkg-config
  clang libclang-rt-14-dev  # libFuzzer and the sanitizer runtimes for clang
  libgtest-dev libgmock-dev
  libbenchmark-dev
  libtomlplusplus-dev libcli11-dev libspdlog-dev libfmt-dev  # config file, command line, logs
  librocksdb-dev  # the store (src/tinymq/store)
  libssl-dev  # password hashes (src/tinymq/auth), TLS
  mosquitto mosquitto-clients python3-paho-mqtt python3  # integration tests (tests/integration)
  chromium  # the browser test of the WebSocket listener (tests/integration/test_websocket.py)
)

# One dpkg-query for every package (one per package costs seconds): the installed ones.
declare -A installed=()
while read -r name status; do
  if [[ $status == "install ok installed" ]]; then installed[$name]=1; fi
done < <(dpkg-query -W -f='${Package} ${Status}\n' "${packages[@]}" 2>/dev/null || true)
missing=()
for p in "${packages[@]}"; do
  if [[ -z ${installed[$p]:-} ]]; then missing+=("$p"); fi
done
# Node.js and npm run the JavaScript test clients. A working node and an npm on PATH count as
# present, whatever package brought them (the machines come with Node.js 20 and its npm, not
# Debian's); `npm --version` would cost half a second on every run.
node --version >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)

install_js() {
  # npm ci when tests/js/node_modules is missing or older than the lock file; touched after, so
  # that the next run sees it up to date.
  local dir=tests/js
  if [[ ! -d $dir/node_modules || $dir/package-lock.json -nt $dir/node_modules ]]; then
    echo "install-deps: npm ci in $dir" >&2
    npm ci --no-audit --no-fund --loglevel=error --prefix "$dir" >/dev/null
    touch "$dir/node_modules"
  fi
}

if [[ ${#missing[@]} -eq 0 ]]; then
  install_js
  exit 0
fi

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
install_js
echo "install-deps: done" >&2
