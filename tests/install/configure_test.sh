#!/usr/bin/env bash
# Install.ConfigureWithDebianCMake: the project configures with another
# cmake (Debian 12's /usr/bin/cmake 3.25) in a scratch build directory.
#
# usage: configure_test.sh SOURCE_DIR CMAKE
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 SOURCE_DIR CMAKE" >&2; exit 2; }
scratch="$(mktemp -d /tmp/genomed-configure-XXXXXX)"
trap 'rm -rf "$scratch"' EXIT
"$2" -S "$1" -B "$scratch/build" >"$scratch/log" 2>&1 || { cat "$scratch/log"; echo "FAIL: $2 cannot configure $1" >&2; exit 1; }
echo "ok: $("$2" --version | head -1) configures the project"
