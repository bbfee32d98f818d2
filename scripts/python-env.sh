#!/usr/bin/env bash
# Creates the Python virtual environment the Python tests and benchmarks use,
# inside the build tree ($BUILD_DIR/venv, default build/venv), installs the
# pinned test requirements and the genomed client package (python/) into it,
# and prints the venv's directory. Idempotent: a venv whose requirements and
# package sources have not changed since the last run is reused as is.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv-common.sh
venv="$build_dir/venv"

# What the venv was built from: the pinned requirements and the package's files.
stamp_now="$(cat python/requirements-test.txt python/pyproject.toml python/README.md \
  $(find python/genomed -type f ! -path '*/__pycache__/*' | sort) | sha256sum | cut -d' ' -f1)"
if venv_current "$venv" "$stamp_now"; then
  echo "$venv"
  exit 0
fi

venv_create "$PYTHON" "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r python/requirements-test.txt >&2
# From a copy: setuptools would leave build/ and *.egg-info/ in python/.
src="$(mktemp -d)"
trap 'rm -rf "$src"' EXIT
cp -r python/pyproject.toml python/README.md python/genomed "$src/"
find "$src" -name __pycache__ -type d -prune -exec rm -rf {} +
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --force-reinstall "$src" >&2
echo "$stamp_now" >"$venv/.genomed-stamp"
echo "$venv"
