#!/bin/bash
# scripts/test-ktls-vm.sh - `make test-ktls-vm`: kernel TLS in the data plane,
# proven in a virtual machine, since the kernels of the development and CI
# machines have none (TCP_ULP "tls" fails with ENOENT there).
#
#  1. builds the package (scripts/build-deb.sh, which keeps the last package
#     when its sources are unchanged), unless DEB=path/to.deb is given;
#  2. takes a fresh copy of the cached Debian 12 root with Debian's kernel (the
#     one `make test-deb` boots, made once: scripts/lib/debroot.sh) and installs
#     the package into it with `apt-get install ./synapserve_*.deb` in a chroot;
#  3. adds tests/ktls-vm/ (the guest script, the backend, a kTLS check of its
#     own) and the test certificate, and makes an ext4 image of the root;
#  4. boots Debian's kernel and initramfs on it under QEMU (TCG, one CPU) with
#     init=tests/ktls-vm/guest.sh: no systemd; the script runs synapserve with a
#     TLS listener, sends it HTTPS with curl, checks that the kernel encrypted
#     (/proc/net/tls_stat, synapserve's kTLS metric), and powers off;
#  5. reads the guest's results back from the image and prints them.
#
# Results, console and logs: build/ktls-vm/ (results/ holds the guest's results.txt,
# details.log, synapserve.log, backend.log). Exit status: 0 pass, 1 fail, 77 skip (with
# the reason), as automake's tests.
# Env: DEB=<.deb to test>, KTLS=auto|off|require (the listener's ktls; default: the
#      value at the top of tests/ktls-vm/guest.sh), VM_TIMEOUT (seconds for the VM,
#      default 600), SUITE, MIRROR (as test-deb).
set -euo pipefail

cd "$(dirname "$0")/.."
top=$PWD
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
# shellcheck source=scripts/lib/debroot.sh
. scripts/lib/debroot.sh
work=$top/build/ktls-vm
root=$work/root
img=$work/disk.img
guest=/usr/local/lib/synapserve-ktlsvm # tests/ktls-vm/ in the guest
export REUSE_DEB=${REUSE_DEB:-1}

[ "$(id -u)" -eq 0 ] || skip "needs root (debootstrap, chroot)"
case ${KTLS:-} in "" | auto | off | require) ;; *) fail "KTLS=$KTLS: auto, off or require" ;; esac

# ---- 1. tools, package ---------------------------------------------------------------

say "host tools"
need_host debootstrap e2fsprogs curl qemu-system-x86
mkdir -p "$work"
build_package "$work/build-deb.log"

# ---- 2. a root with Debian's kernel and the package --------------------------------------

base_root
kbase=$(kernel_root)
kver=$(kernel_version "$kbase")
say "fresh copy of the root with Debian's kernel $kver; apt-get install ./$(basename "$DEB")"
no_mounts_under "$work"
rm -rf "$root" "$img" "$work/results" "$work/console.log"
mkdir -p "$work/results"
cp -a "$kbase" "$root"
cp "$DEB" "$root/root/"
install_package "$root" "/root/$(basename "$DEB")" "$work/apt-install.log"
rm "$root/root/$(basename "$DEB")"

# ---- 3. the guest's files, the image ------------------------------------------------------

install -D -m 755 tests/ktls-vm/guest.sh "$root$guest/guest.sh"
install -m 644 tests/ktls-vm/backend.py tests/ktls-vm/ktls_sanity.py tests/ktls-vm/ktls_lowat_probe.py \
	"$root$guest/"
install -D -m 644 -t "$root$guest/tls" tests/packaging/tls/pkgtest.pem tests/packaging/tls/pkgtest.key
# no journal: the guest powers off without unmounting, and debugfs reads what is on disk
ext4_image "$root" "$img" 512 ktlsvm -O ^has_journal
rm -rf "$root"

# ---- 4. boot it ---------------------------------------------------------------------

say "booting Debian's kernel $kver under QEMU (TCG, 1 CPU; console: build/ktls-vm/console.log)"
cmdline="root=/dev/vda rw console=ttyS0 quiet panic=-1 init=$guest/guest.sh"
[ -n "${KTLS:-}" ] && cmdline+=" ktlsvm.ktls=$KTLS"
t0=$(date +%s)
rc=0
qemu_boot "$kbase" "$img" "$work/console.log" "${VM_TIMEOUT:-600}" "$cmdline" || rc=$?
[ "$rc" -eq 124 ] && say "the VM did not finish within ${VM_TIMEOUT:-600} s: stopped"
say "QEMU exited ($rc) after $(($(date +%s) - t0)) s (boot, checks, power-off)"
results_from_image "$img" "$work/results" results.txt details.log synapserve.log backend.log

# ---- 5. verdict -----------------------------------------------------------------------

results=$work/results/results.txt
if [ ! -s "$results" ]; then
	# what the guest printed on the console, where the image did not keep it
	sed -n 's/\r$//; s/^KTLSVM| //p' "$work/console.log" >"$results"
	[ -s "$results" ] || rm "$results"
fi
verdict "$results" "$work/console.log"
