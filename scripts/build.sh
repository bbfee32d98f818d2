#!/usr/bin/env bash
# Configures and builds genomed into build/ (or $BUILD_DIR) with every core:
# every target, or only those in $BUILD_TARGETS (space-separated; the demo
# builds the four programs it runs).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${BUILD_DIR:-build}"
# ccache hits across clones at other paths (CI's fresh clone, worktrees).
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" "$@" >/dev/null
targets=()
for t in ${BUILD_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$build_dir" -j "$(nproc)" "${targets[@]}"
