#!/usr/bin/env bash
# Install.ConfigureWith*CMake: the project configures with a cmake (this
# build's, and Debian 12's /usr/bin/cmake 3.25) in a scratch build directory,
# without policy or deprecation warnings (cmake 4's CMP0167 warning came from
# find_package(Boost) and msgpack-config.cmake's find_dependency(Boost)).
#
# usage: configure_test.sh SOURCE_DIR CMAKE
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 SOURCE_DIR CMAKE" >&2; exit 2; }
scratch="$(mktemp -d /tmp/genomed-configure-XXXXXX)"
trap 'rm -rf "$scratch"' EXIT
"$2" -S "$1" -B "$scratch/build" >"$scratch/log" 2>&1 || { cat "$scratch/log"; echo "FAIL: $2 cannot configure $1" >&2; exit 1; }
if grep -E -A4 "CMake (Warning \((policy|dev)\)|Deprecation Warning)" "$scratch/log"; then
  echo "FAIL: $2 warns while configuring $1 (above)" >&2
  exit 1
fi
echo "ok: $("$2" --version | head -1) configures the project without policy warnings"
