#!/bin/bash
# scripts/build-deb.sh - `make deb`: build synapserve_<version>_<arch>.deb with
# dpkg-buildpackage, then check the result with lintian.
#
# dpkg-buildpackage wants debian/ at the top of the source tree, so the tree
# is assembled under build/deb/: the files git knows (tracked, plus new files
# that are not ignored, so the working tree is what gets built) that the
# package is made from, packed as synapserve_<upstream>.orig.tar.gz, unpacked
# as build/deb/synapserve-<upstream>/, with packaging/deb/debian on top.
# Everything dpkg-buildpackage produces lands in build/deb/, with the build
# log (build.log) and lintian's report (lintian.txt).
#
# Installs what is missing (scripts/deps.sh, then apt-get build-dep), as
# `make run` and `make test` do. Exit status: 0 built and lintian found no
# error, 1 otherwise.
# Env: LINTIAN=0 skips lintian; DEB_BUILD_OPTIONS as usual (nocheck skips
# dh_auto_test); REUSE_DEB=1 keeps the package of the last build when the files it
# is made from (the source tree below and packaging/deb/debian) are unchanged since.
set -euo pipefail

cd "$(dirname "$0")/.."
top=$PWD
# A Debian package is built with Debian's toolchain and python3, not with a
# pyenv, virtualenv or /usr/local one that happens to come first in PATH.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
unset PYTHONPATH PYTHONHOME PYTHONSTARTUP VIRTUAL_ENV PYENV_VERSION CFLAGS CPPFLAGS LDFLAGS
out=$top/build/deb
debian=$top/packaging/deb/debian

# What the package is built from (paths relative to the repository).
SOURCES=(setup.py pyproject.toml MANIFEST.in README.md appliance native/include native/src
	native/tests docs etc packaging/deb)

say() { printf '== %s\n' "$*"; }

say "tools and build dependencies"
sh scripts/deps.sh dpkg-dev debhelper lintian git
upstream=$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
debver=$(dpkg-parsechangelog -l "$debian/changelog" -S Version)
if [ "${debver%-*}" != "$upstream" ]; then
	echo "build-deb: packaging/deb/debian/changelog is at $debver but pyproject.toml at $upstream;" >&2
	echo "build-deb: add a changelog entry (dch -v $upstream-1) first" >&2
	exit 1
fi
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
epoch=$(dpkg-parsechangelog -l "$debian/changelog" -S Timestamp)
src=$out/synapserve-$upstream
orig=$out/synapserve_$upstream.orig.tar.gz
deb=$out/synapserve_${debver}_$arch.deb

say "source tree $src"
mkdir -p "$out"
git ls-files -z --cached --others --exclude-standard -- "${SOURCES[@]}" |
	while IFS= read -r -d '' f; do
		# tracked but deleted in the working tree: not part of it
		[ -e "$f" ] || continue
		case $f in packaging/deb/debian/*) continue ;; esac
		printf '%s\0' "$f"
	done |
	tar --create --null --files-from=- --sort=name --mtime="@$epoch" --owner=0 --group=0 \
		--numeric-owner --transform="s,^,synapserve-$upstream/," |
	gzip -n9 >"$out/orig.tmp"
# what the package is made from, as one checksum; written beside it after a good build
fingerprint=$( (
	cat "$out/orig.tmp"
	tar --create --sort=name --mtime="@$epoch" --owner=0 --group=0 --numeric-owner \
		-C "$(dirname "$debian")" debian
) | sha256sum | cut -d' ' -f1)
if [ "${REUSE_DEB:-0}" = 1 ] && [ -f "$deb" ] && [ "$(cat "$out/sources.sha256" 2>/dev/null)" = "$fingerprint" ]; then
	rm -f "$out/orig.tmp"
	say "unchanged since the last build: ${deb#"$top"/} (REUSE_DEB=1)"
	exit 0
fi
rm -rf "$src" "$out"/synapserve_* "$out"/synapserve-dbgsym_* "$out/sources.sha256"
mv "$out/orig.tmp" "$orig"
tar -xzf "$orig" -C "$out"
cp -a "$debian" "$src/debian"

if ! (cd "$src" && dpkg-checkbuilddeps >/dev/null 2>&1); then
	say "installing build dependencies"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -qq "$src"
fi

say "dpkg-buildpackage (log: build/deb/build.log)"
start=$(date +%s)
if ! (cd "$src" && dpkg-buildpackage --no-sign) >"$out/build.log" 2>&1; then
	tail -n 40 "$out/build.log" >&2
	echo "build-deb: dpkg-buildpackage failed; full log in build/deb/build.log" >&2
	exit 1
fi
grep -E '^(smoke|== native)' "$out/build.log" || true
[ -f "$deb" ] || {
	echo "build-deb: dpkg-buildpackage did not produce $deb" >&2
	exit 1
}
say "built in $(($(date +%s) - start)) s: ${deb#"$top"/}"

if [ "${LINTIAN:-1}" != 0 ]; then
	say "lintian (report: build/deb/lintian.txt)"
	rc=0
	lintian --info --display-info --fail-on error "$out/synapserve_${debver}_$arch.changes" \
		>"$out/lintian.txt" 2>&1 || rc=$?
	if [ -s "$out/lintian.txt" ]; then
		grep -E '^[EWIP]: ' "$out/lintian.txt" | sort -u || true
	else
		echo "lintian: no tags"
	fi
	if [ "$rc" -ne 0 ]; then
		echo "build-deb: lintian reported errors (exit $rc); see build/deb/lintian.txt" >&2
		exit 1
	fi
fi
echo "$fingerprint" >"$out/sources.sha256"
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
