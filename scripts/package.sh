#!/usr/bin/env bash
# Builds the Debian package of genomed from a release configuration (no
# tests, no benchmarks, no test-only fault injection) in build-release/ (or
# $BUILD_DIR) and writes genomed_VERSION_ARCH.deb into it. The prefix /usr
# puts the libraries in Debian's multiarch directory (/usr/lib/x86_64-linux-gnu). cpack packages
# what `cmake --install` installs (cmake/install.cmake, cmake/packaging.cmake).
#
# usage: scripts/package.sh [extra cmake -D options]
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${BUILD_DIR:-build-release}"
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr -DGENOMED_BUILD_TESTS=OFF \
  -DGENOMED_BUILD_BENCH=OFF -DGENOMED_FAULT_INJECTION=OFF -DGENOMED_INVARIANTS=OFF "$@" >/dev/null
cmake --build "$build_dir" -j "$(nproc)"
(cd "$build_dir" && cpack -G DEB)
ls -l "$build_dir"/genomed_*.deb
