#!/usr/bin/env bash
# Creates the Python virtual environment the Python tests and benchmarks use,
# inside the build tree ($BUILD_DIR/venv, default build/venv), installs the
# pinned test requirements and the genomed client package (python/: a binding
# of the C++ client library, built with scikit-build-core) into it,
# and prints the venv's directory. Idempotent: a venv whose requirements and
# package sources have not changed since the last run is reused as is.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv-common.sh
venv="$build_dir/venv"

# What the venv was built from: the pinned requirements, the package's files
# and the C++ client library it compiles into genomed._native.
stamp_now="$(cat python/requirements-test.txt python/pyproject.toml python/README.md \
  python/CMakeLists.txt cmake/client_sources.cmake \
  $(find python/genomed python/src client ipc layout common include -type f \
      ! -path '*/__pycache__/*' | sort) | sha256sum | cut -d' ' -f1)"
if venv_current "$venv" "$stamp_now"; then
  echo "$venv"
  exit 0
fi

venv_create "$PYTHON" "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r python/requirements-test.txt >&2
# In place: python/CMakeLists.txt compiles ../client (scikit-build-core keeps
# its build tree in python/build/, ignored by git, and rebuilds incrementally).
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --force-reinstall ./python >&2
echo "$stamp_now" >"$venv/.genomed-stamp"
echo "$venv"
