#!/usr/bin/env bash
# Runs the decoder fuzzer of a fuzz build tree for a number of seconds, from a seed corpus of valid
# packets of every type that tinymq_make_corpus writes. A crash or a round-trip mismatch fails the
# run and leaves the reproducer in <tree>/artifacts/.
#   usage: scripts/run-fuzz.sh BUILD_TREE SECONDS
set -euo pipefail
tree=${1:?usage: run-fuzz.sh BUILD_TREE SECONDS}
seconds=${2:?usage: run-fuzz.sh BUILD_TREE SECONDS}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/seed" "$work/found" "$tree/artifacts"
"$tree/bin/tinymq_make_corpus" "$work/seed"
echo "seed corpus: $(ls "$work/seed" | wc -l) files"

"$tree/bin/tinymq_decoder_fuzz" "$work/found" "$work/seed" \
  -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$tree/artifacts/" \
  >"$work/log" 2>&1 || { tail -n 60 "$work/log"; exit 1; }
grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)' \
  "$work/log" || true
grep -E '^#[0-9]+\s+DONE' "$work/log" || tail -n 3 "$work/log"
