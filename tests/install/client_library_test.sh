#!/usr/bin/env bash
# Install.ClientLibrary: installs this build into a scratch prefix and checks
# the installed client library itself:
#  - libgenomed-client.so has its SONAME and needs only the C and C++
#    runtimes (no spdlog, Boost, OpenSSL, ...);
#  - neither it nor libgenomed-client.a holds a function of the parsers of
#    untrusted files (worker/format) or anything of nlohmann_json;
#  - the shared library exports only the C interface and the C++ API;
#  - every installed header compiles on its own against the install tree
#    (C++20; genomed.h also as C99), so none reaches an in-tree header.
#
# usage: client_library_test.sh BUILD_DIR CMAKE PARSER_ARCHIVE SOVERSION CHECK_LAYERING_SCRIPT
set -euo pipefail
[ $# -eq 5 ] || { echo "usage: $0 BUILD_DIR CMAKE PARSER_ARCHIVE SOVERSION CHECK_LAYERING" >&2; exit 2; }
build="$1" cmake="$2" parsers="$3" soversion="$4" check_layering="$5"

scratch="$(mktemp -d /tmp/genomed-clientlib-XXXXXX)"
trap 'rm -rf "$scratch"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
prefix="$scratch/prefix"
"$cmake" --install "$build" --prefix "$prefix" >/dev/null

shared="$(find "$prefix" -name "libgenomed-client.so.$soversion.*" -type f)"
static="$(find "$prefix" -name libgenomed-client.a -type f)"
[ -f "$shared" ] || fail "no libgenomed-client.so.$soversion.* installed"
[ -f "$static" ] || fail "no libgenomed-client.a installed"
[ -L "$(dirname "$shared")/libgenomed-client.so.$soversion" ] || fail "no libgenomed-client.so.$soversion link"
[ -L "$(dirname "$shared")/libgenomed-client.so" ] || fail "no libgenomed-client.so link"

soname="$(readelf -d "$shared" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')"
[ "$soname" = "libgenomed-client.so.$soversion" ] || fail "SONAME is '$soname'"
echo "ok: SONAME $soname"

# The C and C++ runtimes, and the sanitizer runtimes of a sanitized build.
allowed='^(libstdc\+\+\.so\.6|libm\.so\.6|libgcc_s\.so\.1|libc\.so\.6|ld-linux[-a-z0-9_]*\.so\.[0-9]+|lib(a|ub|t)san\.so\.[0-9]+)$'
needed="$(readelf -d "$shared" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')"
[ -n "$needed" ] || fail "no NEEDED entries read from $shared"
extra="$(grep -Ev "$allowed" <<<"$needed" || true)"
[ -z "$extra" ] || fail "libgenomed-client.so needs more than the C/C++ runtimes: $extra"
echo "ok: needs only $(tr '\n' ' ' <<<"$needed")"

for lib in "$shared" "$static"; do
  count="$(nm -C "$lib" 2>/dev/null | grep -c nlohmann || true)"
  [ "$count" -eq 0 ] || fail "$(basename "$lib") holds $count nlohmann_json symbols"
  echo "ok: $(basename "$lib") holds no nlohmann_json symbol"
done
bash "$check_layering" "$parsers" "$shared" "$static"

# Exported: genomed_* (C), the version node, and the C++ API classes/functions.
api='^(genomed_[a-z0-9_]+|GENOMED_CLIENT_[0-9]+|genomed::(Client|ClientOptions|Lease|Status)::.*|genomed::(errc_name|errc_from_name|errc_from_int|module_kind_name|module_kind_from_name)\(.*)$'
exported="$(nm -D --defined-only "$shared" | awk '{print $3}' | sed 's/@.*//' | c++filt)"
c_functions="$(grep -c '^genomed_' <<<"$exported" || true)"
[ "$c_functions" -ge 20 ] || fail "only $c_functions C functions exported"
leaked="$(grep -Ev "$api" <<<"$exported" || true)"
[ -z "$leaked" ] || fail "libgenomed-client.so exports symbols outside the API:
$(head -20 <<<"$leaked")"
echo "ok: exports $c_functions C functions and the C++ API, nothing else"

headers="$(find "$prefix/include/genomed" -name '*.h' | sort)"
[ "$(wc -l <<<"$headers")" -ge 7 ] || fail "too few headers installed: $headers"
for h in $headers; do
  name="genomed/$(basename "$h")"
  echo "#include \"$name\"" | c++ -std=c++20 -fsyntax-only -Wall -Wextra -Werror -I"$prefix/include" -x c++ - ||
    fail "$name does not compile alone against the install tree"
done
echo '#include "genomed/genomed.h"' | cc -std=c99 -pedantic -fsyntax-only -Wall -Wextra -Werror -I"$prefix/include" -x c - ||
  fail "genomed/genomed.h is not C99"
echo "ok: $(wc -l <<<"$headers") installed headers compile alone (genomed.h also as C99)"
