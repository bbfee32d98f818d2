#!/usr/bin/env bash
# Install.DebianPackage: builds the Debian package of this build with
# `cpack -G DEB`, lists it (dpkg-deb -c) and checks that it holds the daemon,
# the worker, the tools, the headers, the libraries, the CMake and pkg-config
# files (and the systemd units of dist/systemd/, if the tree has any), that
# dpkg-shlibdeps gave it its Depends, then unpacks it into a scratch root and
# runs the unpacked genomectl and genomed --help, and resolves the unpacked
# genomed.pc with pkg-config.
#
# usage: package_test.sh BUILD_DIR SOURCE_DIR CPACK LIBDIR VERSION SOVERSION
set -euo pipefail
[ $# -eq 6 ] || { echo "usage: $0 BUILD_DIR SOURCE_DIR CPACK LIBDIR VERSION SOVERSION" >&2; exit 2; }
build="$1" source="$2" cpack="$3" libdir="$4" version="$5" soversion="$6"

scratch="$(mktemp -d /tmp/genomed-package-XXXXXX)"
trap 'rm -rf "$scratch"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$cpack" -G DEB --config "$build/CPackConfig.cmake" -B "$scratch/out" >"$scratch/cpack.log" 2>&1 ||
  { cat "$scratch/cpack.log"; fail "cpack -G DEB"; }
deb="$(find "$scratch/out" -maxdepth 1 -name 'genomed_*.deb')"
[ -f "$deb" ] || { cat "$scratch/cpack.log"; fail "cpack wrote no genomed_*.deb"; }
echo "ok: built $(basename "$deb") ($(du -h "$deb" | cut -f1))"

dpkg-deb -c "$deb" | awk '{print $6}' | sed 's#/$##' >"$scratch/contents"
expected=(
  ./usr/bin/genomed ./usr/bin/genome-worker ./usr/bin/genomectl ./usr/bin/genome-fixture
  ./usr/bin/genome-stress
  ./usr/include/genomed/genomed.h ./usr/include/genomed/genomed_errc.h
  ./usr/include/genomed/client.h ./usr/include/genomed/errc.h
  "./usr/$libdir/libgenomed-client.so.$version" "./usr/$libdir/libgenomed-client.so.$soversion"
  "./usr/$libdir/libgenomed-client.so" "./usr/$libdir/libgenomed-client.a"
  "./usr/$libdir/cmake/genomed/genomedConfig.cmake"
  "./usr/$libdir/cmake/genomed/genomedConfigVersion.cmake"
  "./usr/$libdir/cmake/genomed/genomedTargets.cmake"
  "./usr/$libdir/pkgconfig/genomed.pc"
  ./usr/share/doc/genomed/README.md ./usr/share/doc/genomed/docs/operations.md
  ./usr/lib/sysusers.d/genomed.conf ./usr/lib/tmpfiles.d/genomed.conf
)
shopt -s nullglob
for unit in "$source"/dist/systemd/*.service "$source"/dist/systemd/*.socket; do
  expected+=("./usr/lib/systemd/system/$(basename "$unit")")
done
for path in "${expected[@]}"; do
  grep -qxF "$path" "$scratch/contents" || fail "the package lacks $path; it holds:
$(cat "$scratch/contents")"
done
echo "ok: the package holds all ${#expected[@]} expected files ($(wc -l <"$scratch/contents") entries)"

[ "$(dpkg-deb -f "$deb" Package)" = genomed ] || fail "Package is not genomed"
[ "$(dpkg-deb -f "$deb" Version)" = "$version" ] || fail "Version is not $version"
depends="$(dpkg-deb -f "$deb" Depends)"
grep -q 'libc6' <<<"$depends" || fail "Depends lacks libc6 (dpkg-shlibdeps did not run?): '$depends'"
echo "ok: Depends: $depends"

root="$scratch/root"
dpkg-deb -x "$deb" "$root"

# The postinst and what it runs: the unit's user and group, created by the
# packaged sysusers.d file in the scratch root (systemd-sysusers --root).
dpkg-deb -e "$deb" "$scratch/control"
[ -x "$scratch/control/postinst" ] || fail "the package has no executable postinst"
grep -q 'systemd-sysusers genomed.conf' "$scratch/control/postinst" ||
  fail "the postinst does not create the genomed user"
command -v systemd-sysusers >/dev/null ||
  fail "systemd-sysusers is missing (scripts/install-deps.sh installs systemd)"
mkdir -p "$root/etc"
systemd-sysusers --root="$root" "$root/usr/lib/sysusers.d/genomed.conf" ||
  fail "systemd-sysusers refused the packaged sysusers.d/genomed.conf"
grep -q '^genomed:' "$root/etc/passwd" || fail "systemd-sysusers made no genomed user"
grep -q '^genomed:' "$root/etc/group" || fail "systemd-sysusers made no genomed group"
unit_user="$(sed -n 's/^User=//p' "$root/usr/lib/systemd/system/genomed.service")"
[ "$unit_user" = genomed ] || fail "genomed.service runs as '$unit_user', not the packaged user"
echo "ok: the packaged sysusers.d file creates the unit's user and group"
"$root/usr/bin/genomectl" --help >"$scratch/help" || fail "the unpacked genomectl --help failed"
grep -q 'genomectl' "$scratch/help" || fail "genomectl --help printed no usage: $(cat "$scratch/help")"
"$root/usr/bin/genomed" --help >"$scratch/help" 2>&1 || fail "the unpacked genomed --help failed"
grep -q -- '--socket' "$scratch/help" || fail "genomed --help printed no usage"
echo "ok: the unpacked genomectl and genomed run (--help)"

includedir="$(PKG_CONFIG_PATH="$root/usr/$libdir/pkgconfig" pkg-config --variable=includedir genomed)"
[ -f "$includedir/genomed/genomed.h" ] ||
  fail "the unpacked genomed.pc points at $includedir, which has no genomed/genomed.h"
echo "ok: the unpacked genomed.pc resolves inside the unpacked root"
