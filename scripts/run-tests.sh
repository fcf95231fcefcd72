#!/usr/bin/env bash
# Runs every test of `make test` on trees the Makefile has built: the GoogleTest suite (one
# process), then the CLI checks and integration tests through CTest, all under ASan+UBSan; the
# threaded tests under ThreadSanitizer
# (build/tsan); then each fuzz target (scripts/run-fuzz.sh) for FUZZ_SECONDS. Ends with
# "N passed, M failed" and exits non-zero when anything failed.
#
# The TSan stage runs only what has threads, to keep CI short: the unit tests whose suite name
# contains Thread, Mailbox or Worker (TSAN_UNIT_FILTER below: name a threaded suite so that it
# matches, e.g. MailboxTest, WorkerPoolTest) and tests/integration/test_workers.py.
set -uo pipefail
cd "$(dirname "$0")/.."

jobs=$(nproc)
passed=0
failed=0

echo "== unit tests (ASan+UBSan) =="
# The GoogleTest binary once, in one process (CTest would start one process per test: a thousand
# ASan start-ups cost minutes); its summary counts each test.
log=$(mktemp)
timeout 600 build/asan/bin/tinymq_unit_tests 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
ok=$(sed -nE 's/^\[  PASSED  \] ([0-9]+) tests?\..*/\1/p' "$log" | tail -n 1)
bad=$(sed -nE 's/^\[  FAILED  \] ([0-9]+) tests?, listed below:.*/\1/p' "$log" | tail -n 1)
passed=$((passed + ${ok:-0}))
failed=$((failed + ${bad:-0}))
if [[ $status -ne 0 && -z $bad ]]; then  # crashed or timed out: no gtest summary
  echo "run-tests: the unit tests failed with status $status" >&2
  failed=$((failed + 1))
fi
rm -f "$log"

echo "== command-line and integration tests (ASan+UBSan) =="
log=$(mktemp)
ctest --test-dir build/asan -j "$jobs" --timeout 300 --output-on-failure \
  -R '^(cli|integration)\.' | tee "$log"
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

echo "== threaded tests (TSan) =="
# A race or a lock-order inversion ends the process at once (a tinymq that exits non-zero fails
# its test; the harness also fails a test whose broker log contains "ThreadSanitizer").
export TSAN_OPTIONS='halt_on_error=1 second_deadlock_stack=1'
# gtest matches "Suite.Test": "*Word*.*" selects the suites whose name contains Word.
TSAN_UNIT_FILTER='*Thread*.*:*Mailbox*.*:*Worker*.*'
tsan_bin=build/tsan/bin
tsan_run=()
# Some kernels randomise mmap more than this TSan runtime can map ("unexpected memory mapping");
# then run without address-space randomisation, where the container allows it.
tsan_ok=1
if ! "$tsan_bin/tinymq" --version >/dev/null 2>&1; then
  if command -v setarch >/dev/null &&
    setarch "$(uname -m)" -R "$tsan_bin/tinymq" --version >/dev/null 2>&1; then
    tsan_run=(setarch "$(uname -m)" -R)
  else
    tsan_ok=0
  fi
fi
if [[ $tsan_ok -eq 0 ]]; then
  # Not a test result: the machine cannot run TSan binaries at all. Said loudly, not counted.
  echo "run-tests: WARNING: the ThreadSanitizer runtime cannot start on this kernel" \
    "(vm.mmap_rnd_bits=$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo '?')," \
    "and setarch -R did not help): the threaded tests were NOT run under TSan" >&2
fi
log=$(mktemp)
if [[ $tsan_ok -eq 1 ]]; then
timeout 300 "${tsan_run[@]}" "$tsan_bin/tinymq_unit_tests" --gtest_filter="$TSAN_UNIT_FILTER" \
  2>&1 | tee "$log"
status=${PIPESTATUS[0]}
ok=$(sed -nE 's/^\[  PASSED  \] ([0-9]+) tests?\..*/\1/p' "$log" | tail -n 1)
bad=$(sed -nE 's/^\[  FAILED  \] ([0-9]+) tests?, listed below:.*/\1/p' "$log" | tail -n 1)
if [[ -n $ok || -n $bad ]]; then
  passed=$((passed + ${ok:-0}))
  failed=$((failed + ${bad:-0}))
fi
if [[ $status -ne 0 && -z $bad ]]; then  # crashed, timed out or a TSan report: no gtest summary
  echo "run-tests: the TSan unit tests failed with status $status" >&2
  failed=$((failed + 1))
fi
timeout 600 "${tsan_run[@]}" env TINYMQ_BIN="$tsan_bin/tinymq" PYTHONDONTWRITEBYTECODE=1 \
  /usr/bin/python3 tests/integration/test_workers.py 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
f=0
ran=$(sed -nE 's/^Ran ([0-9]+) tests? in .*/\1/p' "$log" | tail -n 1)
if [[ -n $ran ]]; then
  summary=$(grep -E '^(OK|FAILED)( \(|$)' "$log" | tail -n 1)
  for kind in failures errors; do
    if [[ $summary =~ $kind=([0-9]+) ]]; then
      f=$((f + BASH_REMATCH[1]))
    fi
  done
  skipped=0
  if [[ $summary =~ skipped=([0-9]+) ]]; then
    skipped=${BASH_REMATCH[1]}
  fi
  passed=$((passed + ran - f - skipped))
  failed=$((failed + f))
fi
if [[ $status -ne 0 && ( -z $ran || $f -eq 0 ) ]]; then
  echo "run-tests: test_workers.py under TSan failed with status $status" >&2
  failed=$((failed + 1))
fi
fi  # tsan_ok
rm -f "$log"
unset TSAN_OPTIONS

# Each fuzz target (FUZZ_TARGETS, default all: decoder, broker, config, auth, proxy, websocket)
# for FUZZ_SECONDS (the Makefile passes its own; 20 s when run alone)
# from its seeds; each counts as one test. A target not written yet is skipped, not counted.
if fuzz_targets=$(scripts/run-fuzz.sh --targets); then
  for target in $fuzz_targets; do
    echo "== $target fuzzer (${FUZZ_SECONDS:-20} s) =="
    if scripts/run-fuzz.sh build/fuzz "${FUZZ_SECONDS:-20}" "$target"; then
      passed=$((passed + 1))
    else
      echo "run-tests: the $target fuzzer failed (reproducer under build/fuzz/artifacts/)" >&2
      failed=$((failed + 1))
    fi
  done
else
  echo "run-tests: FUZZ_TARGETS='${FUZZ_TARGETS:-}' names no fuzz target" >&2
  failed=$((failed + 1))
fi

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
