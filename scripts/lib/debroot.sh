# shellcheck shell=bash
# scripts/lib/debroot.sh - sourced by scripts/test-deb.sh and scripts/test-ktls-vm.sh:
# a clean Debian root with the package installed by apt, for a test to boot.
#
#  - need_host: the host packages a test needs, and the mirror, or a skip;
#  - build_package: the .deb from scripts/build-deb.sh, unless DEB=path is given;
#  - base_root: a minimal $SUITE root debootstrapped from $MIRROR once, cached in
#    build/test-deb/base-$SUITE/ (and the .debs apt fetches in build/test-deb/apt-archives/);
#  - kernel_root: a copy of that root with Debian's kernel installed, once, cached beside it;
#  - install_package: `apt-get install ./synapserve_*.deb` in a chroot of a copy;
#  - ext4_image, qemu_boot, results_from_image: that copy booted under QEMU with
#    Debian's kernel, and the guest's results read back;
#  - verdict: the guest's results printed, and the exit status they make;
#  - in_root, no_mounts_under, say, skip, fail: what the steps share.
#
# The caller runs as root, from the top of the repository; messages carry its name
# (`prog`, default: the script's name). skip exits 77, fail 1, as automake's tests.
# Env: SUITE (bookworm), MIRROR (http://deb.debian.org/debian), DEB.

: "${top:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${prog:=$(basename "$0" .sh)}"
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
# what the tests use in the guest, beside what the package pulls in
BASE_PACKAGES=systemd,systemd-sysv,dbus,curl,logrotate,procps,iproute2
cache=$top/build/test-deb
apt_cache=$cache/apt-archives
base=$cache/base-$SUITE
key="$SUITE $MIRROR minbase $BASE_PACKAGES"
t_start=$(date +%s)

say() { printf '== [%3ds] %s\n' "$(($(date +%s) - t_start))" "$*"; }
skip() {
	echo "$prog: SKIP: $*" >&2
	exit 77
}
fail() {
	echo "$prog: FAIL: $*" >&2
	exit 1
}
# rel PATH: PATH as messages show it, from the top of the repository
rel() { printf '%s' "${1#"$top"/}"; }

# in_root ROOT COMMAND...: run COMMAND chrooted in ROOT with /proc, /sys,
# /dev and the apt archive cache mounted, in a private mount namespace, so
# that no mount can outlive it (and `rm -rf` of the root never follows one).
in_root() {
	# shellcheck disable=SC2016 # expanded by the inner bash
	unshare --mount --propagation private -- /bin/bash -euo pipefail -c '
		r=$1 cache=$2
		shift 2
		mount -t proc proc "$r/proc"
		mount -t sysfs sysfs "$r/sys"
		mount --rbind /dev "$r/dev"
		mount --bind "$cache" "$r/var/cache/apt/archives"
		chroot "$r" "$@"' in_root "$1" "$apt_cache" "${@:2}"
}

no_mounts_under() {
	if grep -q " $1/" /proc/self/mounts; then
		fail "something is still mounted under $1; not deleting it"
	fi
}

# need_host PACKAGE...: install the host packages that are missing, and reach the
# mirror; or skip, saying which could not be had.
need_host() {
	mkdir -p "$cache" "$apt_cache"
	sh scripts/deps.sh "$@" ||
		skip "cannot install $* on this host"
	curl -sf --max-time 30 -o /dev/null "$MIRROR/dists/$SUITE/InRelease" ||
		skip "the Debian mirror $MIRROR is not reachable (debootstrap and apt need it)"
}

# build_package LOG: DEB, the package to test: scripts/build-deb.sh's (its
# output in LOG) unless DEB is set already.
build_package() {
	if [ -z "${DEB:-}" ]; then
		say "building the package (scripts/build-deb.sh)"
		bash scripts/build-deb.sh >"$1" 2>&1 || {
			tail -n 30 "$1" >&2
			fail "make deb failed (log: $(rel "$1"))"
		}
		grep -E '^(== (built|unchanged)|[EW]: )' "$1" || true
		DEB=$(echo "$top"/build/deb/synapserve_[0-9]*_"$(dpkg-architecture -qDEB_HOST_ARCH)".deb)
	fi
	[ -f "$DEB" ] || fail "no package at $DEB"
}

# base_root: $base, a clean $SUITE root with BASE_PACKAGES, debootstrapped once.
base_root() {
	[ -f "$base.ok" ] && [ "$(cat "$base.ok")" = "$key" ] && return
	say "debootstrap $SUITE from $MIRROR (once; cached in $(rel "$base"))"
	no_mounts_under "$base"
	rm -rf "$base" "$base.tmp" "$base.ok"
	debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$base.tmp" "$MIRROR" \
		>"$cache/debootstrap.log" 2>&1 || {
		tail -n 20 "$cache/debootstrap.log" >&2
		skip "debootstrap $SUITE failed (log: $(rel "$cache")/debootstrap.log)"
	}
	cat >"$base.tmp/etc/apt/sources.list" <<-EOF
		deb $MIRROR $SUITE main
		deb $MIRROR $SUITE-updates main
		deb http://deb.debian.org/debian-security $SUITE-security main
	EOF
	mv "$base.tmp/var/cache/apt/archives/"*.deb "$apt_cache/" 2>/dev/null || true
	mv "$base.tmp" "$base"
	echo "$key" >"$base.ok"
}

# kernel_root: prints the path of a copy of the base root with Debian's kernel and
# an initramfs that finds an ext4 root on virtio, made once and cached.
kernel_root() {
	local kbase=$cache/base-$SUITE-kernel kkey="$key linux-image-amd64"
	if [ ! -f "$kbase.ok" ] || [ "$(cat "$kbase.ok")" != "$kkey" ]; then
		say "adding linux-image-amd64 to a copy of the base (once; cached)" >&2
		no_mounts_under "$kbase"
		rm -rf "$kbase" "$kbase.ok"
		mkdir -p "$kbase"
		cp -a "$base/." "$kbase/"
		cp /etc/resolv.conf "$kbase/etc/resolv.conf"
		in_root "$kbase" /bin/sh -c 'apt-get update -qq &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends linux-image-amd64' \
			>"$cache/kernel-install.log" 2>&1 ||
			fail "installing Debian's kernel failed ($(rel "$cache")/kernel-install.log)"
		echo "$kkey" >"$kbase.ok"
	fi
	echo "$kbase"
}

# install_package ROOT DEB LOG: `apt-get install DEB` (DEB: a path inside ROOT) in a
# chroot of ROOT, with apt's output in LOG; says how long it took and what it added.
install_package() {
	local r=$1 t0
	cp /etc/resolv.conf "$r/etc/resolv.conf"
	# nothing starts in a chroot (deb-systemd-invoke would not, without systemd
	# running; this makes it explicit)
	printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
	chmod 755 "$r/usr/sbin/policy-rc.d"
	t0=$(date +%s)
	if ! in_root "$r" /bin/sh -c "apt-get update -qq &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y $2" >"$3" 2>&1; then
		tail -n 30 "$3" >&2
		fail "apt-get install of the package failed in a clean $SUITE (log: $(rel "$3"))"
	fi
	rm -f "$r/usr/sbin/policy-rc.d"
	say "installed in $(($(date +%s) - t0)) s; new packages: $(awk '/NEW packages/ { on = 1; next }
		/^[^ ]/ { on = 0 } on' "$3" | tr -s ' \n' ' ')"
}

kernel_version() { # KBASE: the version of the kernel in KBASE/boot
	local v
	v=$(basename "$(echo "$1"/boot/vmlinuz-*)")
	echo "${v#vmlinuz-}"
}

# ext4_image ROOT IMAGE FREE_MB LABEL [MKFS-OPTION...]: IMAGE, an ext4 file system
# holding ROOT with FREE_MB to spare.
ext4_image() {
	truncate -s "$(($(du -sm "$1" | cut -f1) + $3))M" "$2"
	mkfs.ext4 -q -F -L "$4" "${@:5}" -d "$1" "$2"
}

# qemu_boot KBASE IMAGE CONSOLE SECONDS CMDLINE: Debian's kernel and initramfs from
# KBASE (kernel_root) booted with CMDLINE on IMAGE as a virtio disk, under QEMU with
# TCG (software emulation: no /dev/kvm needed, and the development machines' cannot
# boot a stock kernel), one CPU, no network, the serial console into CONSOLE; stopped
# after SECONDS. QEMU's exit status (124: stopped).
qemu_boot() {
	local kver
	kver=$(kernel_version "$1")
	timeout "$4" qemu-system-x86_64 -accel tcg -cpu max -m 2048 -smp 1 \
		-nodefaults -no-user-config -display none -no-reboot -nic none \
		-serial "file:$3" \
		-kernel "$1/boot/vmlinuz-$kver" -initrd "$1/boot/initrd.img-$kver" \
		-append "$5" \
		-drive "file=$2,if=virtio,format=raw" </dev/null
}

# results_from_image IMAGE DIR FILE...: /results/FILE of IMAGE into DIR, those there are.
results_from_image() {
	local f
	for f in "${@:3}"; do
		debugfs -R "dump /results/$f $2/$f" "$1" >/dev/null 2>&1 || true
	done
}

# verdict RESULTS CONSOLE: print the guest's results and exit: 0 when they end in
# "RESULT: PASS", 1 otherwise, when there are none, or when they stop short.
verdict() {
	if [ ! -f "$1" ]; then
		tail -n 40 "$2" >&2 || true
		fail "the guest wrote no results (console: $(rel "$2"))"
	fi
	cat "$1"
	grep -q '^RESULT: ' "$1" ||
		fail "the guest did not finish its checks (timeout or crash; console: $(rel "$2"))"
	say "done in $(($(date +%s) - t_start)) s; details: $(rel "$(dirname "$1")")/"
	grep -qx 'RESULT: PASS' "$1" || exit 1
	exit 0
}
