#!/bin/bash
# scripts/test-deb.sh - `make test-deb`: the Debian package, proven on a clean
# Debian 12 system booted with systemd as PID 1.
#
#  1. builds the package (scripts/build-deb.sh), unless DEB=path/to.deb is given,
#     and derives an "upgrade" package from it (same files, version +pkgtest1);
#  2. debootstraps a minimal bookworm root from deb.debian.org, once: it is
#     cached in build/test-deb/base-bookworm/ (and the .debs apt fetches in
#     build/test-deb/apt-archives/), so that reruns start from a copy;
#  3. installs the .deb into a fresh copy with `apt-get install ./synapserve_*.deb`
#     in a chroot, which pulls the runtime dependencies from the mirror;
#  4. boots the copy: systemd-nspawn --boot with a private network, or else
#     QEMU (TCG) with Debian's own kernel and an ext4 image of the root;
#  5. tests/packaging/guest-check.sh runs in it as synapserve-pkgtest.service
#     at the end of the boot, writes its verdicts to /results and powers off.
#
# Results, the guest's journal and the logs of every step: build/test-deb/run/.
# Exit status: 0 pass, 1 fail, 77 skip (with the reason), as automake's tests.
# Env: TEST_DEB_BACKEND=auto|nspawn|qemu (auto: nspawn if it can run here,
#      else QEMU), DEB=<.deb to test>, SUITE (bookworm), MIRROR
#      (http://deb.debian.org/debian), BOOT_TIMEOUT (seconds, default 600 for
#      nspawn, 1500 for QEMU).
set -euo pipefail

cd "$(dirname "$0")/.."
top=$PWD
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
# shellcheck source=scripts/lib/debroot.sh
. scripts/lib/debroot.sh
BACKEND=${TEST_DEB_BACKEND:-auto}
work=$cache
run=$work/run
root=$run/root

[ "$(id -u)" -eq 0 ] || skip "needs root (debootstrap, chroot, systemd-nspawn or QEMU)"
case $BACKEND in auto | nspawn | qemu) ;; *) fail "TEST_DEB_BACKEND=$BACKEND: auto, nspawn or qemu" ;; esac

# ---- 1. tools, package ---------------------------------------------------------------

say "host tools"
tools=(debootstrap systemd-container e2fsprogs curl)
[ "$BACKEND" = qemu ] && tools+=(qemu-system-x86)
need_host "${tools[@]}"
build_package "$work/build-deb.log"
version=$(dpkg-deb -f "$DEB" Version)
arch=$(dpkg-deb -f "$DEB" Architecture)

say "upgrade package: $version+pkgtest1 (the same files, a higher version)"
pkgs=$work/pkgs
rm -rf "$pkgs"
mkdir -p "$pkgs/install" "$pkgs/upgrade"
cp "$DEB" "$pkgs/install/"
dpkg-deb -R "$DEB" "$pkgs/unpacked"
sed -i "s/^Version: .*/Version: $version+pkgtest1/" "$pkgs/unpacked/DEBIAN/control"
dpkg-deb --root-owner-group -b "$pkgs/unpacked" \
	"$pkgs/upgrade/synapserve_$version+pkgtest1_$arch.deb" >/dev/null
rm -rf "$pkgs/unpacked"

# ---- 2. a clean Debian root, cached ---------------------------------------------------

base_root

# ---- 3. install the package with apt, in a chroot -------------------------------------

say "fresh copy of the root; apt-get install ./$(basename "$DEB")"
mkdir -p "$run"
no_mounts_under "$run"
rm -rf "$run"
mkdir -p "$run/results"
cp -a "$base" "$root"
mkdir -p "$root/root/pkgtest" "$root/results"
cp -a "$pkgs/install" "$pkgs/upgrade" "$root/root/pkgtest/"
install_package "$root" "/root/pkgtest/install/$(basename "$DEB")" "$run/apt-install.log"
[ -L "$root/etc/systemd/system/multi-user.target.wants/synapserve.service" ] ||
	fail "the package did not enable synapserve.service"

install -D -m 755 tests/packaging/guest-check.sh "$root/usr/local/lib/synapserve-pkgtest/guest-check.sh"
# a certificate for the TLS check (the guest has no openssl command to make one)
install -D -m 644 -t "$root/usr/local/lib/synapserve-pkgtest/tls" tests/packaging/tls/pkgtest.pem \
	tests/packaging/tls/pkgtest.key
install -D -m 644 tests/packaging/synapserve-pkgtest.service \
	"$root/etc/systemd/system/synapserve-pkgtest.service"
ln -s ../synapserve-pkgtest.service "$root/etc/systemd/system/multi-user.target.wants/"

# ---- 4. boot it ---------------------------------------------------------------------

boot_nspawn() {
	say "booting with systemd-nspawn (private network; console: build/test-deb/run/console.log)"
	local rc=0
	# nspawn wants a terminal for the container's console: script(1) gives it one
	timeout "${BOOT_TIMEOUT:-600}" script -qfec \
		"systemd-nspawn -D '$root' --boot --private-network --register=no --keep-unit \
			--bind='$run/results:/results' --machine=synapserve-pkgtest" \
		"$run/console.log" </dev/null >/dev/null 2>&1 || rc=$?
	say "container exited ($rc)"
}

boot_qemu() {
	command -v qemu-system-x86_64 >/dev/null || sh scripts/deps.sh qemu-system-x86 e2fsprogs ||
		skip "neither systemd-nspawn nor QEMU can run here"
	local kbase img rc=0
	kbase=$(kernel_root)
	# the kernel's modules go into the test root too (the initramfs loads the
	# disk drivers; the booted system may want more), and udev, as on any
	# machine (without it the boot waits 90 s for /dev/ttyS0's device unit)
	cp -a "$kbase/lib/modules" "$root/lib/"
	in_root "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends udev \
		>"$run/udev-install.log" 2>&1 || fail "installing udev failed (build/test-deb/run/udev-install.log)"
	img=$run/disk.img
	ext4_image "$root" "$img" 1024 pkgtest
	say "booting Debian's kernel $(kernel_version "$kbase") under QEMU (TCG, 1 CPU; console: build/test-deb/run/console.log)"
	qemu_boot "$kbase" "$img" "$run/console.log" "${BOOT_TIMEOUT:-1500}" \
		"root=/dev/vda rw console=ttyS0 panic=-1 systemd.show_status=1" || rc=$?
	say "QEMU exited ($rc)"
	results_from_image "$img" "$run/results" started results.txt details.log journal.txt
}

nspawn_usable() {
	command -v systemd-nspawn >/dev/null &&
		systemd-nspawn -q -D "$root" --register=no --keep-unit --private-network /bin/true \
			>"$run/nspawn-probe.log" 2>&1
}

case $BACKEND in
nspawn)
	nspawn_usable || skip "systemd-nspawn cannot run a container here ($(tail -n 1 "$run/nspawn-probe.log"))"
	boot_nspawn
	;;
qemu) boot_qemu ;;
auto)
	if nspawn_usable; then
		boot_nspawn
		if [ ! -f "$run/results/started" ]; then
			say "the nspawn container never ran the test; trying QEMU"
			boot_qemu
		fi
	else
		say "systemd-nspawn cannot run here ($(tail -n 1 "$run/nspawn-probe.log")); using QEMU"
		boot_qemu
	fi
	;;
esac

# ---- 5. verdict -----------------------------------------------------------------------

verdict "$run/results/results.txt" "$run/console.log"
