#!/usr/bin/env bash
# Checks that the parsers of untrusted files stay out of the supervisor and
# the client library: no function that libgenomed_format.a defines (its
# strong text symbols, i.e. code, not the inline templates of shared types
# that any user of the layout instantiates) is defined in any of the given
# binaries or archives. Run by ctest (test "Layering.NoParsersOutsideTheWorker").
#
# usage: scripts/check-layering.sh PARSER_ARCHIVE BINARY_OR_ARCHIVE...
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 PARSER_ARCHIVE BINARY_OR_ARCHIVE..." >&2; exit 2; }
parser_archive="$1"
shift
symbols_of() { nm --defined-only "$1" 2>/dev/null | awk '{print $NF}' | sort -u; }

parsers="$(mktemp)"
trap 'rm -f "$parsers"' EXIT
nm --defined-only "$parser_archive" 2>/dev/null | awk '$2 == "T" {print $3}' | sort -u >"$parsers"
count="$(wc -l <"$parsers")"
if [ "$count" -lt 10 ]; then
  # An empty list would make every check pass: refuse it.
  echo "check-layering: only $count parser functions found in $parser_archive" >&2
  exit 2
fi

status=0
for target in "$@"; do
  leaked="$(comm -12 "$parsers" <(symbols_of "$target"))"
  if [ -n "$leaked" ]; then
    echo "FAIL: $(basename "$target") contains $(wc -l <<<"$leaked") parser function(s) of $(basename "$parser_archive"):"
    c++filt <<<"$leaked" | head -20 | sed 's/^/  /'
    status=1
  else
    echo "ok: $(basename "$target") contains none of the $count parser functions"
  fi
done
exit $status
