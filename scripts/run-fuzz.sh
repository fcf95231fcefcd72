#!/usr/bin/env bash
# Runs a fuzz target of a fuzz build tree for a number of seconds, from a seed corpus its generator
# writes. A crash, a broken invariant or a round-trip mismatch fails the run and leaves the
# reproducer in <tree>/artifacts/.
#   usage: scripts/run-fuzz.sh BUILD_TREE SECONDS [decoder|broker]
set -euo pipefail
tree=${1:?usage: run-fuzz.sh BUILD_TREE SECONDS [decoder|broker]}
seconds=${2:?usage: run-fuzz.sh BUILD_TREE SECONDS [decoder|broker]}
target=${3:-decoder}
case $target in
  decoder) fuzzer=tinymq_decoder_fuzz; corpus=tinymq_make_corpus ;;
  broker) fuzzer=tinymq_broker_fuzz; corpus=tinymq_make_broker_corpus ;;
  *) echo "run-fuzz: unknown target '$target' (decoder or broker)" >&2; exit 2 ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/seed" "$work/found" "$tree/artifacts"
"$tree/bin/$corpus" "$work/seed"
echo "seed corpus: $(ls "$work/seed" | wc -l) files"

"$tree/bin/$fuzzer" "$work/found" "$work/seed" \
  -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$tree/artifacts/$target-" \
  >"$work/log" 2>&1 || { tail -n 60 "$work/log"; exit 1; }
grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)' \
  "$work/log" || true
grep -E '^#[0-9]+\s+DONE' "$work/log" || tail -n 3 "$work/log"
