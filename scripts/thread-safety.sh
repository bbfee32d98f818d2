#!/usr/bin/env bash
# Runs clang's thread-safety analysis (-Wthread-safety) over every source of
# the supervisor, the cache and the client library, and over anything else that uses
# common/mutex.h, with the flags the build uses (from compile_commands.json);
# g++ ignores the annotations, so this is the only check of GUARDED_BY /
# REQUIRES. Fails on any warning. Called by scripts/test.sh.
#
# usage: scripts/thread-safety.sh [BUILD_DIR]   (default: $BUILD_DIR or build)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${1:-${BUILD_DIR:-build}}"
clang="${CLANGXX:-clang++-14}"
db="$build_dir/compile_commands.json"
command -v "$clang" >/dev/null || { echo "thread-safety: $clang not found (scripts/install-deps.sh installs clang-14)" >&2; exit 2; }
[ -r "$db" ] || { echo "thread-safety: no $db; build first (scripts/build.sh)" >&2; exit 2; }

mapfile -t sources < <({
  ls loader/*.cc cache/*.cc client/*.cc
  grep -rl --include='*.cc' '"common/mutex.h"' common cache client ipc jobs layout loader tools worker || true
  # .cc files whose own header uses it
  for h in $(grep -rl --include='*.h' '"common/mutex.h"' cache client ipc jobs layout loader tools worker || true); do
    [ -f "${h%.h}.cc" ] && echo "${h%.h}.cc"
  done
} | sort -u)

python3 - "$db" "$clang" "${sources[@]}" <<'PY' >"$build_dir/thread-safety.commands"
import json, os, shlex, sys
db, clang, sources = sys.argv[1], sys.argv[2], sys.argv[3:]
entries = {os.path.realpath(e["file"]): e for e in json.load(open(db))}
for src in sources:
    e = entries.get(os.path.realpath(src))
    if e is None:
        sys.exit(f"thread-safety: {src} is not in {db} (not built?)")
    args = shlex.split(e["command"]) if "command" in e else e["arguments"]
    keep = [clang, "-fsyntax-only", "-Wthread-safety", "-Werror"]
    skip = False
    for a in args[1:]:
        if skip:
            skip = False
            continue
        if a in ("-o", "-c"):
            skip = a == "-o"
            continue
        # Only the analysis decides: g++'s warning set is not clang's.
        if a.startswith("-W") or a.startswith("-f") and "diagnostics" in a:
            continue
        keep.append(a)
    print(e["directory"] + "\t" + shlex.join(keep))
PY

status=0
checked=0
while IFS=$'\t' read -r dir cmd; do
  if ! (cd "$dir" && eval "$cmd"); then status=1; fi
  checked=$((checked + 1))
done <"$build_dir/thread-safety.commands"
if [ $status -ne 0 ]; then
  echo "thread-safety: FAILED (see the warnings above)" >&2
  exit 1
fi
echo "thread-safety: $checked files clean under $clang -Wthread-safety"
