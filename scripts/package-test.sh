#!/usr/bin/env bash
# Builds the Debian package (cmake/Package.cmake) and checks it without
# installing anything on this machine:
#   file name       podfence_<project version>_<dpkg arch>.deb
#   control fields  Package, Version, Architecture, Maintainer, Description,
#                   Section, Priority, Depends (libc6 and libmnl0, from dpkg-shlibdeps)
#   contents        ./opt/cni/bin/podfence 0755 root/root and stripped, README,
#                   copyright, changelog.gz, example conflists; dirs 0755 root/root
#   lintian         no E: line (its whole output is printed); SKIP when not installed
#   the binary      extracted with dpkg-deb -x: stripped, Depends covers each
#                   NEEDED library, `podfence version` and a CNI VERSION call
# Usage: scripts/package-test.sh [BUILD_DIR]   (default build/package)
# A fresh BUILD_DIR is configured as the README's Release build, without the
# tests (PODFENCE_TESTS=OFF); an existing Release tree (scripts/test.sh's
# `build`) keeps its cache, so passing it costs no rebuild.
set -euo pipefail
cd "$(dirname "$0")/.."
bdir=${1:-build/package}

fail() { echo "package-test: FAIL: $*" >&2; exit 1; }
ok() { echo "package-test: ok   $*"; }

command -v jq >/dev/null || fail "jq is missing (scripts/install-deps.sh installs it)"

work=$(mktemp -d /tmp/podfence-package-test.XXXXXX)
trap 'rm -rf "$work"' EXIT

extra=()
[ -e "$bdir/CMakeCache.txt" ] || extra=(-DPODFENCE_TESTS=OFF)
cmake -S . -B "$bdir" -DCMAKE_BUILD_TYPE=Release "${extra[@]}" >/dev/null
cmake --build "$bdir" -j"$(nproc)"
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$bdir/CMakeCache.txt")
[ -n "$version" ] || fail "no CMAKE_PROJECT_VERSION in $bdir/CMakeCache.txt"
arch=$(dpkg --print-architecture)
deb=$(cd "$bdir" && pwd)/podfence_${version}_${arch}.deb
rm -f "$bdir"/podfence_*.deb
(cd "$bdir" && cpack -G DEB >"$work/cpack.log") || { cat "$work/cpack.log" >&2; fail "cpack -G DEB"; }
[ -f "$deb" ] || fail "cpack wrote $(ls "$bdir"/*.deb 2>/dev/null || echo nothing), not $deb"
ok "file name $(basename "$deb")"

# Control fields.
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = podfence ] || fail "Package: $(field Package)"
[ "$(field Version)" = "$version" ] || fail "Version: $(field Version), want $version"
[ "$(field Architecture)" = "$arch" ] || fail "Architecture: $(field Architecture), want $arch"
[ "$(field Section)" = net ] || fail "Section: $(field Section)"
[ "$(field Priority)" = optional ] || fail "Priority: $(field Priority)"
[[ $(field Maintainer) =~ ^[^\<]+\ \<[^@\>]+@[^\>]+\>$ ]] || fail "Maintainer: $(field Maintainer)"
desc=$(field Description)
(($(wc -l <<<"$desc") >= 3)) || fail "Description has no long description: $desc"
depends=$(field Depends)
for lib in libc6 libmnl0; do
  grep -Eq "(^|, )$lib \(>= [^)]+\)" <<<"$depends" || fail "Depends lacks a versioned $lib: $depends"
done
ok "control: Package podfence, Version $version, Architecture $arch, Section net, Priority optional"
ok "control: Maintainer $(field Maintainer)"
ok "control: Depends $depends"
ok "control: Description '$(head -1 <<<"$desc")' + $(($(wc -l <<<"$desc") - 1)) lines"

# Contents: mode, owner and path of every entry.
dpkg-deb -c "$deb" | awk '{print $1, $2, $6}' >"$work/contents"
expect() { # mode owner path
  grep -qxF -- "$1 $2 $3" "$work/contents" || fail "no '$1 $2 $3' in the package:$(printf '\n%s' "$(cat "$work/contents")")"
}
expect -rwxr-xr-x root/root ./opt/cni/bin/podfence
doc=./usr/share/doc/podfence
for f in README.md copyright changelog.gz; do expect -rw-r--r-- root/root "$doc/$f"; done
for f in conf/*.conflist conf/README.md; do expect -rw-r--r-- root/root "$doc/examples/$(basename "$f")"; done
expect -rw-r--r-- root/root ./usr/share/lintian/overrides/podfence
extra_files=$(grep -v '^d' "$work/contents" |
  grep -vE "^-[rwx-]{9} root/root (\./opt/cni/bin/podfence|$doc/.*|\./usr/share/lintian/overrides/podfence)$" || true)
[ -z "$extra_files" ] || fail "unexpected entries: $extra_files"
if grep '^d' "$work/contents" | grep -vq '^drwxr-xr-x root/root '; then
  fail "directories not 0755 root/root: $(grep '^d' "$work/contents" | grep -v '^drwxr-xr-x root/root ')"
fi
ok "contents: ./opt/cni/bin/podfence 0755 root/root, $doc/{README.md,copyright,changelog.gz}, $(ls conf | wc -l) examples, lintian override, dirs 0755 root/root"

# lintian: print everything, fail on errors. Without lintian (not yet in
# scripts/install-deps.sh) a loud SKIP: the other checks still run.
if ! command -v lintian >/dev/null; then
  echo "package-test: SKIP lintian: not installed (apt-get install lintian)"
else
  lintian --display-info --pedantic --show-overrides "$deb" >"$work/lintian" 2>&1 || true
  sed 's/^/package-test: lintian: /' "$work/lintian"
  if grep -q '^E:' "$work/lintian"; then fail "lintian reports errors"; fi
  ok "lintian: no error ($(grep -c '^W:' "$work/lintian" || true) warnings, $(grep -c '^[IP]:' "$work/lintian" || true) info/pedantic, $(grep -c '^O:' "$work/lintian" || true) overridden)"
fi

# The packaged binary, extracted (not installed).
dpkg-deb -x "$deb" "$work/root"
bin=$work/root/opt/cni/bin/podfence
file "$bin" | grep -q ', stripped' || fail "binary not stripped: $(file "$bin")"
# Depends names the package of every shared library the binary needs.
for so in $(objdump -p "$bin" | awk '$1 == "NEEDED" && $2 !~ /^ld-linux/ {print $2}'); do
  pkg=$(dpkg -S "*/$so" 2>/dev/null | head -1 | cut -d: -f1)
  [ -n "$pkg" ] || fail "no package owns $so"
  grep -Eq "(^|, )$pkg( |,|$)" <<<"$depends" || fail "$so is in $pkg, missing from Depends: $depends"
done
ok "extracted binary: stripped; every NEEDED library's package is in Depends"
out=$(env -u CNI_COMMAND "$bin" version)
grep -qx "podfence $version" <<<"$(head -1 <<<"$out")" || fail "podfence version printed: $out"
ok "extracted binary: 'podfence version' -> $(head -1 <<<"$out")"
out=$(echo '{"cniVersion":"1.0.0"}' | CNI_COMMAND=VERSION "$bin")
jq -e '.supportedVersions | index("1.0.0") != null' <<<"$out" >/dev/null || fail "CNI VERSION printed: $out"
ok "extracted binary: CNI VERSION -> $out"
echo "package-test: $(basename "$deb") passed"
