#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang with ASan + UBSan) into
# build-fuzz/ and runs each for a bounded time from its committed seed
# corpus. A crash, a leak, undefined behaviour or a timeout fails the run and
# leaves the input in build-fuzz/artifacts/; turn it into a regression test
# (tests/*/, or a file under fuzz/regressions/<target>/, which every run
# replays first) before fixing it.
#
# usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (default: $FUZZ_SECONDS or 30)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-${FUZZ_SECONDS:-30}}"
build_dir="${FUZZ_BUILD_DIR:-build-fuzz}"
clang="${CLANGXX:-clang++-14}"
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1

cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$clang" \
  -DGENOMED_FUZZ=ON -DGENOMED_SANITIZE=address,undefined \
  -DGENOMED_BUILD_TESTS=OFF -DGENOMED_BUILD_BENCH=OFF >/dev/null
targets=(fuzz_safetensors_header fuzz_peft_config fuzz_resident_layout fuzz_request
         fuzz_worker_reply fuzz_client_reply fuzz_metrics_http)
cmake --build "$build_dir" -j "$(nproc)" --target "${targets[@]}"

mkdir -p "$build_dir/artifacts"
export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
for t in "${targets[@]}"; do
  # Seeds are read, never written: new inputs go to a scratch corpus.
  work="$build_dir/corpus/$t"
  mkdir -p "$work"
  regressions=()
  [ -d "fuzz/regressions/$t" ] && regressions=("fuzz/regressions/$t")
  if [ ${#regressions[@]} -gt 0 ]; then
    "$build_dir/fuzz/$t" -runs=0 "${regressions[@]}" >"$build_dir/$t.replay.log" 2>&1 ||
      { tail -40 "$build_dir/$t.replay.log"; echo "fuzz: $t fails on a regression input" >&2; exit 1; }
  fi
  echo "fuzz: $t for ${seconds}s"
  # -rss_limit_mb: the limits make any input cheap; 2 GiB means a limit is missing.
  if ! "$build_dir/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -max_len=1048576 -print_final_stats=1 -artifact_prefix="$build_dir/artifacts/$t-" \
      "$work" "fuzz/corpus/$t" >"$build_dir/$t.log" 2>&1; then
    tail -60 "$build_dir/$t.log"
    echo "fuzz: $t failed; the input is in $build_dir/artifacts/" >&2
    exit 1
  fi
  grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$build_dir/$t.log" | tr '\n' ' '
  echo
done
echo "fuzz: ${#targets[@]} passed, 0 failed"
