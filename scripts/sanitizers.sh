#!/usr/bin/env bash
# Builds and runs the tests under sanitizers, daemon and workers included:
#   build-asan: every unit and integration test with ASan + UBSan;
#   build-tsan: the tests of concurrent code (lease slots, the coordinator, admission,
#               request threads, pool, deadlines, pins, idle unload,
#               prefetch, progress, the fill's reader threads and the hash
#               behind its copy; the integration tests of concurrency,
#               admission, eviction, hang-ups, limits, drain) with TSan,
#               suppressing only what scripts/tsan-suppressions.txt explains;
#   pyasan:     the Python binding (python/src/native.cc and the C++ client it
#               compiles in) with ASan + UBSan, under the binding's own tests
#               and those of its lifetime, threads, fork and interrupt rules,
#               against the daemon of the plain build ($BUILD_DIR, default build/).
# Called by scripts/test.sh.
#
# usage: scripts/sanitizers.sh [asan|tsan|pyasan]...   (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
kinds=("$@")
[ ${#kinds[@]} -eq 0 ] && kinds=(asan tsan pyasan)

# Crash signals must reach the pool as signals (a worker killed by SIGSEGV is
# a crash the supervisor classifies), not become a sanitizer report and an
# exit code: the fault-injection tests raise them on purpose.
signals="handle_segv=0:handle_sigbus=0:handle_abort=0:handle_sigfpe=0:handle_sigill=0"
export ASAN_OPTIONS="$signals:detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export TSAN_OPTIONS="$signals:halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/scripts/tsan-suppressions.txt"

# The binding is a module of an uninstrumented CPython: the ASan runtime must
# be the process's first library (LD_PRELOAD; the module then finds it
# loaded), and only for the interpreter: tests/genomed_testing.py starts the
# plain build's genomed, workers and genome-fixture, which must not inherit
# it. libstdc++ is preloaded with it: CPython does not link it, and ASan's
# __cxa_throw interceptor, set up before the module loads libstdc++, would
# find no real __cxa_throw and abort at the binding's first C++ exception
# ("CHECK failed: asan_interceptors.cpp ... real___cxa_throw"; google/sanitizers
# issue 934). detect_leaks=0: CPython does not free its interned strings, type
# objects and module state at exit, so LeakSanitizer would report thousands
# of "leaks" that are the interpreter's, none of them the binding's (a lease
# the binding forgot shows up instead in the daemon's lease counts, which the
# tests check). PYTHONMALLOC=malloc: pymalloc's arenas would hide a
# use-after-free of a Python object from ASan.
pyasan() {
  local venv site
  venv="$(cd "$(bash scripts/python-env.sh)" && pwd)"
  site="$PWD/build-pyasan/site"
  echo "sanitizers: building the binding with -DGENOMED_PY_SANITIZE=ON into $site"
  rm -rf "$site"
  # Its own build tree (python/build/asan-*: the venv's plain build stays),
  # with the venv's pinned scikit-build-core and nanobind instead of a fresh
  # isolated environment each time: the tree is reused incrementally, and
  # ccache hits in a fresh clone (CCACHE_BASEDIR above).
  local launcher=""
  command -v ccache >/dev/null && launcher="-C cmake.define.CMAKE_CXX_COMPILER_LAUNCHER=ccache"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation \
    --target "$site" -C cmake.define.GENOMED_PY_SANITIZE=ON -C cmake.build-type=RelWithDebInfo $launcher \
    -C build-dir='build/asan-{wheel_tag}' ./python >build-pyasan.build.log 2>&1 ||
    { tail -40 build-pyasan.build.log; return 1; }
  local daemon_build
  daemon_build="$(cd "${BUILD_DIR:-build}" && pwd)"
  (GENOMED_BUILD_DIR="$daemon_build" PYTHONPATH="$site" \
    PYTHONMALLOC=malloc PYTHONDONTWRITEBYTECODE=1 \
    LD_PRELOAD="$(g++ -print-file-name=libasan.so) $(g++ -print-file-name=libstdc++.so)" \
    ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:detect_stack_use_after_return=0" \
    "$venv/bin/python" - "$site" <<'PY'
import os, sys
del os.environ["LD_PRELOAD"]  # the interpreter only (see above)
import genomed._native
if not genomed._native.__file__.startswith(sys.argv[1]):  # not the sanitized build
    sys.exit(f"sanitizers: imported {genomed._native.__file__}, not the build in {sys.argv[1]}")
import pytest
tests = ["native", "lifetime", "threads", "fork", "interrupt", "timeout", "limits"]
deselect = [
    # Starts a Python child that imports the sanitized module without the
    # preload, which cannot reach it without reaching the daemon too (its
    # workers set RLIMIT_AS, under which ASan's shadow memory cannot map).
    # test_fork's in-process fork test stays.
    "test_fork.py::test_a_child_that_exits_leaves_its_parents_leases",
]
sys.exit(pytest.main(["-p", "no:cacheprovider", "-q"] +
                     [f"python/tests/test_{t}.py" for t in tests] +
                     ["-k", " and ".join(f"not {d.split('::')[1]}" for d in deselect)]))
PY
  )
}

for kind in "${kinds[@]}"; do
  case "$kind" in
    pyasan) pyasan; continue ;;
    # Excluded under ASan: a worker past --worker-memory-limit must get a
    # std::bad_alloc to answer limit_exceeded, but ASan's operator new
    # reports out-of-memory and aborts instead (whatever
    # allocator_may_return_null says). The plain build runs it.
    asan) sanitize="address,undefined"; filter=""; targets=(all)
          exclude="HostileMemory.AllocationPastTheWorkerMemoryLimit" ;;
    tsan) sanitize="thread"; targets=(loader_tests integration_tests layout_tests client_parts_tests format_tests); exclude=""
          filter="LeaseSlot|Coordinator|Admission|RequestThreads|DeadlineTimer|LeaseTable|Pool|Concurrency|ReleaseWhileWaiting|Eviction|Hangup|IdleConnections|ConnectionLimits|IdleUnload|^Pin\.|PinTest|Prefetch|LoadProgress|Drain|Transport|SlotCache|HashBehind|RangeReader" ;;
    *) echo "usage: scripts/sanitizers.sh [asan|tsan|pyasan]..." >&2; exit 2 ;;
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
