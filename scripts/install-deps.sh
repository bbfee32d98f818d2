#!/usr/bin/env bash
# Installs genomed's dependencies from Debian 12's packages.
#   install-deps.sh          the build set and the test set (scripts/test.sh)
#   install-deps.sh --demo   the build set only: what genomed, genome-worker,
#                            genomectl and genome-fixture need (scripts/demo.sh)
# Idempotent: does nothing (and needs no network) when all are present.
set -euo pipefail

build_packages=(
  build-essential cmake ccache pkg-config
  libboost-dev libboost-filesystem-dev   # Boost 1.74: Interprocess, Process (v1)
  libmsgpack-cxx-dev libspdlog-dev nlohmann-json3-dev libssl-dev
  libxxhash-dev                          # XXH3-64 tensor checksums (header-only use)
  prometheus-cpp-dev                     # --metrics-listen: the text format (core only)
  libsystemd-dev                         # sd_notify (Type=notify) and socket activation
  python3-dev python3-venv               # pip install ./python: the genomed._native extension
)
test_packages=(
  python3                                # tests/docs/check_cli_docs.py (ctest Docs.CommandLineFlags)
  dpkg-dev file                          # cpack -G DEB: dpkg-shlibdeps finds Depends, file finds ELF files
  systemd                                # systemd-analyze verify of dist/systemd/ in the tests
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-14                               # scripts/thread-safety.sh: clang's -Wthread-safety
  libclang-rt-14-dev                     # scripts/fuzz.sh: libFuzzer, ASan and UBSan runtimes for clang
)

case "${1:-}" in
  "") packages=("${build_packages[@]}" "${test_packages[@]}") ;;
  --demo) packages=("${build_packages[@]}") ;;
  *) echo "usage: $0 [--demo]" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
