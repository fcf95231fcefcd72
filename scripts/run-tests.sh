#!/usr/bin/env bash
# Runs every test of `make test` on trees the Makefile has built: the GoogleTest suite, CLI checks
# and integration tests under ASan+UBSan through CTest, then the decoder and broker fuzzers for
# FUZZ_SECONDS each. Ends with "N passed, M failed" and exits non-zero when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."

jobs=$(nproc)
passed=0
failed=0

echo "== unit tests (ASan+UBSan) =="
log=$(mktemp)
ctest --test-dir build/asan -j "$jobs" --timeout 300 --output-on-failure | tee "$log"
summary=$(grep -E '[0-9]+ tests failed out of [0-9]+' "$log" | tail -n 1)
if [[ $summary =~ ([0-9]+)\ tests\ failed\ out\ of\ ([0-9]+) ]]; then
  f=${BASH_REMATCH[1]}
  total=${BASH_REMATCH[2]}
  passed=$((passed + total - f))
  failed=$((failed + f))
else
  echo "run-tests: could not read the CTest summary" >&2
  failed=$((failed + 1))
fi
rm -f "$log"

for target in decoder broker; do
  echo "== $target fuzzer (${FUZZ_SECONDS:-30} s) =="
  if scripts/run-fuzz.sh build/fuzz "${FUZZ_SECONDS:-30}" "$target"; then
    passed=$((passed + 1))
  else
    echo "run-tests: the $target fuzzer failed (reproducer under build/fuzz/artifacts/)" >&2
    failed=$((failed + 1))
  fi
done

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
