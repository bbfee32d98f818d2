#!/usr/bin/env bash
# Builds and runs the tests under sanitizers, daemon and workers included:
#   build-asan: every unit and integration test with ASan + UBSan;
#   build-tsan: the tests of concurrent code (lease slots, the coordinator, admission,
#               request threads, pool, deadlines, pins, idle unload,
#               prefetch, progress; the integration tests of concurrency,
#               admission, eviction, hang-ups, limits, drain) with TSan,
#               suppressing only what scripts/tsan-suppressions.txt explains.
# Called by scripts/test.sh.
#
# usage: scripts/sanitizers.sh [asan|tsan]...   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
kinds=("$@")
[ ${#kinds[@]} -eq 0 ] && kinds=(asan tsan)

# Crash signals must reach the pool as signals (a worker killed by SIGSEGV is
# a crash the supervisor classifies), not become a sanitizer report and an
# exit code: the fault-injection tests raise them on purpose.
signals="handle_segv=0:handle_sigbus=0:handle_abort=0:handle_sigfpe=0:handle_sigill=0"
export ASAN_OPTIONS="$signals:detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export TSAN_OPTIONS="$signals:halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/scripts/tsan-suppressions.txt"

for kind in "${kinds[@]}"; do
  case "$kind" in
    # Excluded under ASan: a worker past --worker-memory-limit must get a
    # std::bad_alloc to answer limit_exceeded, but ASan's operator new
    # reports out-of-memory and aborts instead (whatever
    # allocator_may_return_null says). The plain build runs it.
    asan) sanitize="address,undefined"; filter=""; targets=(all)
          exclude="HostileMemory.AllocationPastTheWorkerMemoryLimit" ;;
    tsan) sanitize="thread"; targets=(loader_tests integration_tests layout_tests client_parts_tests); exclude=""
          filter="LeaseSlot|Coordinator|Admission|RequestThreads|DeadlineTimer|LeaseTable|Pool|Concurrency|ReleaseWhileWaiting|Eviction|Hangup|IdleConnections|ConnectionLimits|IdleUnload|^Pin\.|PinTest|Prefetch|LoadProgress|Drain|Transport|SlotCache" ;;
    *) echo "usage: scripts/sanitizers.sh [asan|tsan]..." >&2; exit 2 ;;
  esac
  build_dir="build-$kind"
  echo "sanitizers: building $build_dir (-fsanitize=$sanitize)"
  cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGENOMED_SANITIZE="$sanitize" \
    -DGENOMED_FAULT_INJECTION=ON -DGENOMED_INVARIANTS=ON -DGENOMED_BUILD_BENCH=OFF >/dev/null
  cmake --build "$build_dir" -j "$(nproc)" --target "${targets[@]}" >"$build_dir.build.log" 2>&1 ||
    { tail -40 "$build_dir.build.log"; exit 1; }
  args=(--output-on-failure -j "$(nproc)" --timeout 900)
  [ -n "$filter" ] && args+=(-R "$filter")
  [ -n "$exclude" ] && args+=(-E "$exclude")
  (cd "$build_dir" && ctest "${args[@]}")
done
