#!/usr/bin/env bash
# The main job, end to end: installs what is missing, builds, generates a demo
# root of adapters, starts genomed on it, loads and acquires one through
# genomectl (printing its tensor table from the zero-copy view), shows the
# daemon's state, and stops it cleanly with SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."
# Only what the demo runs: the build set of packages, and its four programs
# (in the build/ the test command shares, configured the same way).
bash scripts/install-deps.sh --demo
BUILD_TARGETS="genomed genome-worker genomectl genome-fixture" bash scripts/build.sh
bin="$PWD/${BUILD_DIR:-build}"

work="$(mktemp -d /tmp/genomed-demo-XXXXXX)"
sock="$work/genomed.sock"
daemon_pid=""
cleanup() {
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then kill -TERM "$daemon_pid"; wait "$daemon_pid" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== generating demo adapters under $work/adapters"
"$bin/genome-fixture" --out "$work/adapters" --count 3 --prefix demo- --rank 16 --layers 4 --hidden 1024 --dtype BF16

echo "== starting genomed"
# --ready-fd: genomed writes "ready" to fd 3 (a FIFO here) once its socket
# accepts clients: no polling, no sleeps.
ready_fifo="$work/ready"
mkfifo "$ready_fifo"
"$bin/genomed" --socket "$sock" --root "$work/adapters" --budget 256M --workers 2 --ready-fd 3 3>"$ready_fifo" &
daemon_pid=$!
read -r ready < "$ready_fifo"
echo "genomed is $ready (pid $daemon_pid)"

ctl() { echo "\$ genomectl $*"; "$bin/genomectl" --socket "$sock" "$@"; echo; }
ctl load demo-0
ctl acquire demo-0
ctl digest demo-1
ctl list
ctl stats
echo "\$ genomectl acquire ../etc/passwd   (refused: names stay under the roots)"
"$bin/genomectl" --socket "$sock" acquire ../etc/passwd || true
echo

echo "== stopping genomed (SIGTERM)"
kill -TERM "$daemon_pid"
wait "$daemon_pid"
daemon_pid=""
[ ! -e "$sock" ] && echo "socket removed; daemon exited cleanly"
