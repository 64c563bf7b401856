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
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
BACKEND=${TEST_DEB_BACKEND:-auto}
work=$top/build/test-deb
run=$work/run
root=$run/root
apt_cache=$work/apt-archives
# what the test itself uses in the guest, beside what the package pulls in
BASE_PACKAGES=systemd,systemd-sysv,dbus,curl,logrotate,procps,iproute2
t_start=$(date +%s)

say() { printf '== [%3ds] %s\n' "$(($(date +%s) - t_start))" "$*"; }
skip() {
	echo "test-deb: SKIP: $*" >&2
	exit 77
}
fail() {
	echo "test-deb: FAIL: $*" >&2
	exit 1
}

[ "$(id -u)" -eq 0 ] || skip "needs root (debootstrap, chroot, systemd-nspawn or QEMU)"
case $BACKEND in auto | nspawn | qemu) ;; *) fail "TEST_DEB_BACKEND=$BACKEND: auto, nspawn or qemu" ;; esac
mkdir -p "$work" "$apt_cache"

# in_root COMMAND...: run COMMAND chrooted in the test root with /proc, /sys,
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

# ---- 1. tools, package ---------------------------------------------------------------

say "host tools"
tools=(debootstrap systemd-container e2fsprogs curl)
[ "$BACKEND" = qemu ] && tools+=(qemu-system-x86)
sh scripts/deps.sh "${tools[@]}" ||
	skip "cannot install ${tools[*]} on this host"
curl -sf --max-time 30 -o /dev/null "$MIRROR/dists/$SUITE/InRelease" ||
	skip "the Debian mirror $MIRROR is not reachable (debootstrap and apt need it)"

if [ -z "${DEB:-}" ]; then
	say "building the package (scripts/build-deb.sh)"
	bash scripts/build-deb.sh >"$work/build-deb.log" 2>&1 || {
		tail -n 30 "$work/build-deb.log" >&2
		fail "make deb failed (log: build/test-deb/build-deb.log)"
	}
	grep -E '^(== built|[EW]: )' "$work/build-deb.log" || true
	arch=$(dpkg-architecture -qDEB_HOST_ARCH)
	DEB=$(echo "$top"/build/deb/synapserve_[0-9]*_"$arch".deb)
fi
[ -f "$DEB" ] || fail "no package at $DEB"
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

base=$work/base-$SUITE
key="$SUITE $MIRROR minbase $BASE_PACKAGES"
if [ ! -f "$base.ok" ] || [ "$(cat "$base.ok")" != "$key" ]; then
	say "debootstrap $SUITE from $MIRROR (once; cached in build/test-deb/base-$SUITE)"
	no_mounts_under "$base"
	rm -rf "$base" "$base.tmp" "$base.ok"
	debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$base.tmp" "$MIRROR" \
		>"$work/debootstrap.log" 2>&1 || {
		tail -n 20 "$work/debootstrap.log" >&2
		skip "debootstrap $SUITE failed (log: build/test-deb/debootstrap.log)"
	}
	cat >"$base.tmp/etc/apt/sources.list" <<-EOF
		deb $MIRROR $SUITE main
		deb $MIRROR $SUITE-updates main
		deb http://deb.debian.org/debian-security $SUITE-security main
	EOF
	mv "$base.tmp/var/cache/apt/archives/"*.deb "$apt_cache/" 2>/dev/null || true
	mv "$base.tmp" "$base"
	echo "$key" >"$base.ok"
fi

# ---- 3. install the package with apt, in a chroot -------------------------------------

say "fresh copy of the root; apt-get install ./$(basename "$DEB")"
mkdir -p "$run"
no_mounts_under "$run"
rm -rf "$run"
mkdir -p "$run/results"
cp -a "$base" "$root"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mkdir -p "$root/root/pkgtest" "$root/results"
cp -a "$pkgs/install" "$pkgs/upgrade" "$root/root/pkgtest/"
# nothing starts in a chroot (deb-systemd-invoke would not, without systemd
# running; this makes it explicit)
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
t0=$(date +%s)
if ! in_root "$root" /bin/sh -c "apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y /root/pkgtest/install/$(basename "$DEB")" \
	>"$run/apt-install.log" 2>&1; then
	tail -n 30 "$run/apt-install.log" >&2
	fail "apt-get install of the package failed in a clean $SUITE (log: build/test-deb/run/apt-install.log)"
fi
rm -f "$root/usr/sbin/policy-rc.d"
say "installed in $(($(date +%s) - t0)) s; new packages: $(awk '/NEW packages/ { on = 1; next }
	/^[^ ]/ { on = 0 } on' "$run/apt-install.log" | tr -s ' \n' ' ')"
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

kernel_root() {
	# Debian's kernel and an initramfs that finds an ext4 root on virtio
	local kbase=$work/base-$SUITE-kernel kkey="$key linux-image-amd64"
	if [ ! -f "$kbase.ok" ] || [ "$(cat "$kbase.ok")" != "$kkey" ]; then
		say "adding linux-image-amd64 to a copy of the base (once; cached)" >&2
		no_mounts_under "$kbase"
		rm -rf "$kbase" "$kbase.ok"
		mkdir -p "$kbase"
		cp -a "$base/." "$kbase/"
		cp /etc/resolv.conf "$kbase/etc/resolv.conf"
		in_root "$kbase" /bin/sh -c 'apt-get update -qq &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends linux-image-amd64' \
			>"$work/kernel-install.log" 2>&1 || fail "installing Debian's kernel failed (build/test-deb/kernel-install.log)"
		echo "$kkey" >"$kbase.ok"
	fi
	echo "$kbase"
}

boot_qemu() {
	command -v qemu-system-x86_64 >/dev/null || sh scripts/deps.sh qemu-system-x86 e2fsprogs ||
		skip "neither systemd-nspawn nor QEMU can run here"
	local kbase kver img size rc=0 f
	kbase=$(kernel_root)
	kver=$(basename "$(echo "$kbase"/boot/vmlinuz-*)")
	kver=${kver#vmlinuz-}
	# the kernel's modules go into the test root too (the initramfs loads the
	# disk drivers; the booted system may want more), and udev, as on any
	# machine (without it the boot waits 90 s for /dev/ttyS0's device unit)
	cp -a "$kbase/lib/modules" "$root/lib/"
	in_root "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends udev \
		>"$run/udev-install.log" 2>&1 || fail "installing udev failed (build/test-deb/run/udev-install.log)"
	img=$run/disk.img
	size=$(($(du -sm "$root" | cut -f1) + 1024))
	truncate -s "${size}M" "$img"
	mkfs.ext4 -q -F -L pkgtest -d "$root" "$img"
	say "booting Debian's kernel $kver under QEMU (TCG, 1 CPU; console: build/test-deb/run/console.log)"
	timeout "${BOOT_TIMEOUT:-1500}" qemu-system-x86_64 -accel tcg -cpu max -m 2048 -smp 1 \
		-nodefaults -no-user-config -display none -no-reboot -nic none \
		-serial "file:$run/console.log" \
		-kernel "$kbase/boot/vmlinuz-$kver" -initrd "$kbase/boot/initrd.img-$kver" \
		-append "root=/dev/vda rw console=ttyS0 panic=-1 systemd.show_status=1" \
		-drive "file=$img,if=virtio,format=raw" </dev/null || rc=$?
	say "QEMU exited ($rc)"
	for f in started results.txt details.log journal.txt; do
		debugfs -R "dump /results/$f $run/results/$f" "$img" >/dev/null 2>&1 || true
	done
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

results=$run/results/results.txt
if [ ! -f "$results" ]; then
	tail -n 40 "$run/console.log" >&2 || true
	fail "the guest wrote no results (console: build/test-deb/run/console.log)"
fi
cat "$results"
grep -q '^RESULT: ' "$results" ||
	fail "the guest did not finish its checks (timeout or crash; console: build/test-deb/run/console.log)"
say "done in $(($(date +%s) - t_start)) s; details: build/test-deb/run/results/"
grep -qx 'RESULT: PASS' "$results" || exit 1
exit 0
