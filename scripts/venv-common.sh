# Shared by scripts/python-env.sh and scripts/vllm-env.sh (sourced, not run).

build_dir="${BUILD_DIR:-build}"
PYTHON="${PYTHON:-python3}"

# venv_current VENV STAMP: true when VENV exists and was built from STAMP
# (what the script hashes: requirements and package sources).
venv_current() {
  [ -x "$1/bin/python" ] && [ "$(cat "$1/.genomed-stamp" 2>/dev/null)" = "$2" ]
}

# venv_create PYTHON VENV: creates VENV unless it exists, installing Debian's
# python3-venv first when PYTHON lacks the venv module.
venv_create() {
  if ! "$1" -c 'import venv, ensurepip' 2>/dev/null; then
    echo "installing python3-venv" >&2
    local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv >&2
  fi
  [ -x "$2/bin/python" ] || "$1" -m venv "$2" >&2
}
