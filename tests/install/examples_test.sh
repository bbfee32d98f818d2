#!/usr/bin/env bash
# Install.Examples: installs this build into a scratch prefix with CMAKE,
# builds examples/cpp with CMAKE and find_package(genomed) (against the shared
# and the static library) and examples/c with pkg-config, starts the
# installed genomed on an adapter written by the installed genome-fixture,
# and runs the three consumers against it: each must lease the adapter,
# list the same tensors and modules, and verify their checksums.
#
# usage: examples_test.sh BUILD_DIR SOURCE_DIR CMAKE
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 BUILD_DIR SOURCE_DIR CMAKE" >&2; exit 2; }
build="$1" source="$2" cmake="$3"

scratch="$(mktemp -d /tmp/genomed-examples-XXXXXX)"
daemon_pid=""
cleanup() {
  if [ -n "$daemon_pid" ]; then kill -TERM "$daemon_pid" 2>/dev/null || true; wait "$daemon_pid" || true; fi
  rm -rf "$scratch"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "--- $*"; }

prefix="$scratch/prefix"
step "$("$cmake" --version | head -1): install into $prefix"
"$cmake" --install "$build" --prefix "$prefix" >"$scratch/install.log" || { cat "$scratch/install.log"; fail "cmake --install"; }
pc_file="$(find "$prefix" -name genomed.pc)"
[ -n "$pc_file" ] || fail "no genomed.pc installed"
libdir="$(dirname "$(dirname "$pc_file")")"

step "C++ consumer: find_package(genomed)"
"$cmake" -S "$source/examples/cpp" -B "$scratch/cpp" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_BUILD_TYPE=Release >"$scratch/cpp-configure.log" || { cat "$scratch/cpp-configure.log"; fail "configure examples/cpp"; }
"$cmake" --build "$scratch/cpp" >"$scratch/cpp-build.log" 2>&1 || { cat "$scratch/cpp-build.log"; fail "build examples/cpp"; }
# ldd's output is taken whole first: with pipefail, `ldd | grep -q` fails
# whenever grep exits at its match before ldd has written everything (SIGPIPE).
shared_deps=$(ldd "$scratch/cpp/genomed-cpp-example")
grep -q "libgenomed-client.so.0 => $libdir/" <<<"$shared_deps" ||
  fail "genomed-cpp-example does not load libgenomed-client.so.0 from $libdir: $shared_deps"
if grep -q libgenomed-client <<<"$(ldd "$scratch/cpp/genomed-cpp-example-static")"; then
  fail "genomed-cpp-example-static loads the shared library"
fi

step "C consumer: pkg-config"
PKG_CONFIG_PATH="$(dirname "$pc_file")" make -s -C "$source/examples/c" BUILD_DIR="$scratch" \
  >"$scratch/c-build.log" 2>&1 || { cat "$scratch/c-build.log"; fail "build examples/c"; }

step "start the installed genomed"
root="$scratch/root" socket="$scratch/genomed.sock"
layers=2 modules=q_proj,v_proj
"$prefix/bin/genome-fixture" --out "$root/example-lora" --rank 4 --layers "$layers" --hidden 64 \
  --modules "$modules" --dtype BF16 >/dev/null
mkfifo "$scratch/ready"
# --ready-fd: genomed writes "ready" once the socket accepts clients; if it
# dies first the FIFO reaches end of file and `read` fails (no polling).
"$prefix/bin/genomed" --socket "$socket" --root "$root" --budget 16M --workers 1 \
  --ready-fd 3 3>"$scratch/ready" 2>"$scratch/genomed.log" &
daemon_pid=$!
ready=""
read -r -t 60 ready <"$scratch/ready" || true
[ "$ready" = ready ] || { cat "$scratch/genomed.log"; fail "genomed did not become ready"; }

run() {  # run NAME COMMAND...: stdout into $scratch/NAME.out
  local name="$1"; shift
  local rc=0
  "$@" "$socket" example-lora >"$scratch/$name.out" 2>"$scratch/$name.err" || rc=$?
  if [ "$rc" -ne 0 ]; then
    cat "$scratch/$name.out" "$scratch/$name.err" "$scratch/genomed.log"
    fail "$name exited $rc"
  fi
  grep -q '^verified$' "$scratch/$name.out" || fail "$name did not verify: $(cat "$scratch/$name.out")"
  echo "ok: $name leased example-lora: $(grep -c '^tensor ' "$scratch/$name.out") tensors"
}
run cpp "$scratch/cpp/genomed-cpp-example"
run cpp-static "$scratch/cpp/genomed-cpp-example-static"
LD_LIBRARY_PATH="$libdir" run c "$scratch/genomed-c-example"

# genome-fixture writes layers x modules x 2 (lora_A, lora_B) tensors.
expected=$((layers * $(tr ',' '\n' <<<"$modules" | wc -l) * 2))
count="$(grep -c '^tensor ' "$scratch/c.out")"
[ "$count" -eq "$expected" ] || fail "the C consumer listed $count tensors, genome-fixture wrote $expected"
grep -q '^config {.*"r":4' "$scratch/c.out" || fail "the C consumer printed no config JSON with r=4"
grep -q '^tensor .* BF16 \[4,64\] 512 bytes$' "$scratch/c.out" || fail "no BF16 [4,64] tensor of 512 bytes in the C output"
for name in cpp cpp-static; do
  diff <(grep -E '^(tensor|module) ' "$scratch/c.out") <(grep -E '^(tensor|module) ' "$scratch/$name.out") ||
    fail "the C and $name consumers disagree on the tensors or modules"
done

step "stop genomed"
kill -TERM "$daemon_pid"
status=0
wait "$daemon_pid" || status=$?
daemon_pid=""
[ "$status" -eq 0 ] || { cat "$scratch/genomed.log"; fail "genomed exited $status on SIGTERM"; }
echo "ok: C++ (shared, static) and C consumers built from the install tree and served by the installed daemon"
