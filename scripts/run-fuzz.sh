#!/usr/bin/env bash
# Runs the libFuzzer targets of a fuzz build tree (`make fuzz`: build/fuzz) for SECONDS each, one
# after the other (docs/fuzzing.md).
#
#   usage: scripts/run-fuzz.sh [--keep-corpus] BUILD_TREE SECONDS [TARGET...]
#          scripts/run-fuzz.sh --targets        # the targets a run would take, one per line
#
# TARGET is one of the names in the table below; without one, FUZZ_TARGETS (names separated by
# spaces or commas), else every target. A target whose source (tests/fuzz/<name>_fuzz.cc) does not
# exist yet is skipped with a note; once it exists, a missing executable is a failure.
#
# Seeds: what the target's generator writes, if it has one, plus the checked-in
# tests/fuzz/corpus/<name>/. Dictionary: tests/fuzz/<name>.dict, if any, plus every key and option
# name quoted in the sources the table names (so new configuration keys need no dictionary edit).
# Without --keep-corpus a run starts from the seeds alone and drops what it grew (make test: the
# same start every time). With it, new inputs go to BUILD_TREE/corpus/<name>/, where the next run
# starts from (make fuzz-run), and the libFuzzer log is BUILD_TREE/logs/<name>.log.
#
# Failures: a crash, a broken invariant (abort), undefined behaviour, a leak (LSan, checked after
# every input that did not free what it allocated), an input that runs longer than FUZZ_TIMEOUT
# seconds (default 10: the slowest seed takes milliseconds) or a process above FUZZ_RSS_MB
# (default 2048: a run peaks at a few hundred MB, ASan's quarantine included; a slow leak that
# LSan cannot see, such as a cache that never shrinks, ends there). libFuzzer writes the input to
# BUILD_TREE/artifacts/<name>-{crash,leak,timeout,oom}-<sha1>; a failed run's log is
# BUILD_TREE/logs/<name>-failed.log.
#
# Prints one line per target: executions, exec/s, coverage (cov: edges, ft: features, from
# libFuzzer's last status line), corpus size and peak RSS. Exit status 0 when every target run
# passed, 1 when one failed, 2 on a usage error.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

# One line per target: name, fuzz executable, seed generator (- for none), source directory whose
# quoted key and option names join the dictionary (- for none).
targets_table=(
  "decoder tinymq_decoder_fuzz tinymq_make_corpus        -"
  "broker  tinymq_broker_fuzz  tinymq_make_broker_corpus -"
  "config  tinymq_config_fuzz  -                         src/tinymq/config"
  "auth    tinymq_auth_fuzz    -                         src/tinymq/auth"
  "proxy   tinymq_proxy_fuzz   -                         -"
  "websocket tinymq_websocket_fuzz -                       -"
)

usage() {
  echo "usage: run-fuzz.sh [--keep-corpus] BUILD_TREE SECONDS [TARGET...] | --targets" >&2
  exit 2
}

known_names() {
  local line
  for line in "${targets_table[@]}"; do
    read -r name _ <<<"$line"
    echo "$name"
  done
}

# The table line of target $1, or nothing.
table_line() {
  local line name
  for line in "${targets_table[@]}"; do
    read -r name _ <<<"$line"
    if [[ $name == "$1" ]]; then
      echo "$line"
      return
    fi
  done
}

# The requested targets ($@, else FUZZ_TARGETS, else all) that exist, checked against the table.
selected_targets() {
  local requested=("$@") name
  if [[ ${#requested[@]} -eq 0 ]]; then
    local from_env=${FUZZ_TARGETS:-}
    read -r -a requested <<<"${from_env//,/ }"
  fi
  if [[ ${#requested[@]} -eq 0 ]]; then
    mapfile -t requested < <(known_names)
  fi
  for name in "${requested[@]}"; do
    if [[ -z $(table_line "$name") ]]; then
      echo "run-fuzz: unknown target '$name' (one of: $(known_names | paste -sd ' '))" >&2
      exit 2
    fi
    if [[ ! -e $root/tests/fuzz/${name}_fuzz.cc ]]; then
      echo "run-fuzz: $name: skipped, tests/fuzz/${name}_fuzz.cc is not written yet" >&2
      continue
    fi
    echo "$name"
  done
}

keep=0
if [[ ${1:-} == --targets ]]; then
  shift
  selected_targets "$@"
  exit 0
fi
if [[ ${1:-} == --keep-corpus ]]; then
  keep=1
  shift
fi
[[ $# -ge 2 ]] || usage
tree=$1
seconds=$2
shift 2
[[ $seconds =~ ^[0-9]+$ ]] || usage
list=$(selected_targets "$@") || exit 2
mapfile -t targets <<<"$list"
timeout=${FUZZ_TIMEOUT:-10}
rss_mb=${FUZZ_RSS_MB:-2048}
# -fno-sanitize-recover already makes UB fatal; this adds the stack.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$tree/artifacts" "$tree/logs"

# Writes the dictionary of target $1 (names from source directory $2) to $3; false if empty.
make_dict() {
  local name=$1 names=$2 out=$3
  : >"$out"
  if [[ -f $root/tests/fuzz/$name.dict ]]; then
    cat "$root/tests/fuzz/$name.dict" >>"$out"
  fi
  if [[ $names != - ]]; then
    # Quoted identifiers ("max_inflight") and CLI11 option names ("-c,--config" gives two).
    {
      grep -ohE '"[a-z][a-z0-9_]*"' "$root/$names"/*.cc
      grep -ohE '"-[-a-z0-9,]+"' "$root/$names"/*.cc | tr -d '"' | tr ',' '\n' | sed 's/.*/"&"/'
    } | sort -u >>"$out"
  fi
  grep -q '^"' "$out"
}

# The value of "key: value" in libFuzzer's last status line of log $1 ("cov", "ft", "corp").
status_field() {
  grep -E '^#[0-9]+' "$1" | grep -E " $2: " | tail -n 1 | sed -E "s/.* $2: ([^ ]+).*/\1/"
}

stat_field() {
  sed -nE "s/^stat::$2: *([0-9]+).*/\1/p" "$1" | tail -n 1
}

# Runs target $1; prints its summary line; false when it failed.
run_target() {
  local name=$1 fuzzer generator names
  read -r _ fuzzer generator names <<<"$(table_line "$name")"
  local bin=$tree/bin/$fuzzer
  if [[ ! -x $bin ]]; then
    echo "$name: FAILED: $bin is missing (make fuzz builds it)"
    return 1
  fi

  local args=() dirs=()
  if [[ $generator != - ]]; then
    mkdir -p "$work/$name-generated"
    if ! "$tree/bin/$generator" "$work/$name-generated" >"$work/$name-generator.log" 2>&1; then
      echo "$name: FAILED: the seed generator $generator failed:"
      tail -n 20 "$work/$name-generator.log"
      return 1
    fi
    dirs+=("$work/$name-generated")
  fi
  if [[ -d $root/tests/fuzz/corpus/$name ]]; then
    dirs+=("$root/tests/fuzz/corpus/$name")
  fi
  if make_dict "$name" "$names" "$work/$name.dict"; then
    args+=("-dict=$work/$name.dict")
  fi

  local corpus log lock
  if [[ $keep -eq 1 ]]; then
    corpus=$tree/corpus/$name
    log=$tree/logs/$name.log
    mkdir -p "$corpus"
    # Two runs growing one corpus would each write the other's finds again and mix their logs.
    exec {lock}>"$tree/corpus/$name.lock"
    if ! flock -n "$lock"; then
      echo "$name: FAILED: another run is using $corpus"
      return 1
    fi
  else
    corpus=$work/$name-grown
    log=$work/$name.log
    mkdir -p "$corpus"
  fi
  local note
  note="$name: ${seconds} s from $(find "${dirs[@]}" "$corpus" -type f | wc -l) inputs"
  note+=${args[*]:+, with a dictionary}
  [[ $keep -eq 1 ]] && note+="; corpus $corpus, log $log"
  echo "$note"

  local status=0
  "$bin" "$corpus" "${dirs[@]}" "${args[@]}" -max_total_time="$seconds" -timeout="$timeout" \
    -rss_limit_mb="$rss_mb" -print_final_stats=1 -artifact_prefix="$tree/artifacts/$name-" \
    >"$log" 2>&1 || status=$?
  [[ $keep -eq 1 ]] && exec {lock}>&-

  local execs rate rss cov ft corp
  execs=$(stat_field "$log" number_of_executed_units)
  rate=$(stat_field "$log" average_exec_per_sec)
  rss=$(stat_field "$log" peak_rss_mb)
  cov=$(status_field "$log" cov)
  ft=$(status_field "$log" ft)
  corp=$(status_field "$log" corp)
  local figures="${execs:-?} executions, ${rate:-?} exec/s, cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}, peak RSS ${rss:-?} MB"
  if [[ $status -eq 0 ]] && grep -qE '^#[0-9]+\s+DONE' "$log"; then
    echo "$name: passed: $figures"
    return 0
  fi

  local failed_log=$tree/logs/$name-failed.log artifact
  cp "$log" "$failed_log" 2>/dev/null || true
  artifact=$(sed -nE 's/.*Test unit written to (.*)$/\1/p' "$log" | tail -n 1)
  echo "$name: FAILED (exit status $status): $figures"
  grep -vE '^#[0-9]+\s' "$log" | tail -n 60
  echo "$name: log: $failed_log"
  if [[ -n $artifact ]]; then
    echo "$name: reproducer: $artifact"
    echo "$name:   replay: $bin $artifact"
    echo "$name:   once fixed, keep it: cp $artifact tests/fuzz/corpus/$name/<what-it-found>"
  fi
  return 1
}

failed=0
for target in "${targets[@]}"; do
  if [[ -n $target ]]; then
    run_target "$target" || failed=1
  fi
done
exit "$failed"
