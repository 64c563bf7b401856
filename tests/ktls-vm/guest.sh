#!/bin/bash
# tests/ktls-vm/guest.sh - PID 1 of the VM that scripts/test-ktls-vm.sh boots
# (`make test-ktls-vm`): Debian's kernel, which has kernel TLS, on a root into
# which synapserve_*.deb was installed with apt. No systemd: under emulation
# its boot costs minutes; the initramfs mounts the root and execs this script.
#
# It mounts what the checks need, loads the tls module, proves that kernel TLS
# works in this guest without synapserve (Python's ssl, ktls_sanity.py), then
# runs synapserve (one worker, a TLS listener) in front of backend.py and sends
# it HTTPS with curl: with TLS 1.3 and with TLS 1.2, a 1 MiB GET, a 1 MiB POST
# echoed back, and a keep-alive connection of four requests. Then the evidence
# that the kernel did the encryption: /proc/net/tls_stat must have counted each
# of those connections in both directions, without a decrypt error, and so must
# synapserve's synapserve_tls_ktls_connections_total.
#
# One line per check, to the console (after "KTLSVM| ") and to $OUT/results.txt:
# "ok <name>", "FAIL <name>: <why>" or "INFO <what>: <figures>"; the last is
# "RESULT: PASS" or "RESULT: FAIL". The details of every check and the logs of
# synapserve and the backend go to $OUT as well; then the machine powers off.
set -uo pipefail

# listeners.https.tls.ktls: "require", so that synapserve refuses to start
# unless the guest kernel takes TLS keys. `ktlsvm.ktls=VALUE` on the kernel
# command line (KTLS=VALUE for scripts/test-ktls-vm.sh) overrides it.
KTLS=require

export PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/root
HERE=/usr/local/lib/synapserve-ktlsvm # this script, backend.py, ktls_sanity.py, tls/
OUT=/results
RESULTS=$OUT/results.txt
DETAILS=$OUT/details.log
WORK=/run/ktlsvm # config/, tls/, bodies and scratch
BACKEND_PORT=8080
HTTPS_PORT=8443
ADMIN=http://127.0.0.1:9180
NAME=pkgtest.example # a name of the test certificate
URL=https://$NAME:$HTTPS_PORT
KTLS_METRIC=synapserve_tls_ktls_connections_total
failed=0
backend_pid=0
synapserve_pid=0
conns=0 # TLS connections made to synapserve, counted before each check that makes one

# ---- reporting ---------------------------------------------------------------------

uptime_s() { cut -d' ' -f1 /proc/uptime; }
log() {
	printf '%s\n' "$*" >>"$RESULTS"
	printf 'KTLSVM| %s\n' "$*" >/dev/console
}
note() { printf '%s\n' "$*" >&2; } # into the check's details; its last line is the reason

# run NAME FUNCTION [ARG...]: one check, in a subshell with `set -e` in force, so that
# any failing command fails it; its output goes to $DETAILS, its last line is the reason.
run() {
	local name=$1 rc
	shift
	(
		set -e
		"$@"
	) >"$WORK/check.out" 2>&1
	rc=$?
	{
		printf '\n==== %s (exit %d, at %s s)\n' "$name" "$rc" "$(uptime_s)"
		cat "$WORK/check.out"
	} >>"$DETAILS"
	if [ "$rc" -eq 0 ]; then
		log "ok $name"
	else
		failed=1
		log "FAIL $name: $(tail -n 1 "$WORK/check.out")"
	fi
	return "$rc"
}

# expect WHAT ACTUAL EXPECTED: a comparison that says what it saw.
expect() {
	if [ "$2" != "$3" ]; then
		note "$1: got '$2', expected '$3'"
		return 1
	fi
}

power_off() {
	[ "$backend_pid" -gt 0 ] && kill -TERM "$backend_pid" 2>/dev/null
	[ "$synapserve_pid" -gt 0 ] && kill -KILL "$synapserve_pid" 2>/dev/null
	sync
	mount -o remount,ro / 2>/dev/null
	echo o >/proc/sysrq-trigger # asynchronous: wait for it
	sleep 60
}

# ---- the system ----------------------------------------------------------------------

setup_system() {
	mountpoint -q /proc || mount -t proc proc /proc
	mountpoint -q /sys || mount -t sysfs sysfs /sys
	mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
	mountpoint -q /run || mount -t tmpfs -o mode=755 tmpfs /run
	mountpoint -q /tmp || mount -t tmpfs -o mode=1777 tmpfs /tmp
	mount -o remount,rw /
	mkdir -p "$OUT" "$WORK"
	: >"$RESULTS"
	: >"$DETAILS"
	ip link set lo up
	local w words
	read -ra words </proc/cmdline
	for w in "${words[@]}"; do
		case $w in ktlsvm.ktls=*) KTLS=${w#*=} ;; esac
	done
}

# ---- checks ----------------------------------------------------------------------------

check_tls_module() {
	modprobe tls
	modinfo -F filename tls
	[ -r /proc/net/tls_stat ] || {
		note "no /proc/net/tls_stat after modprobe tls"
		return 1
	}
	cat /proc/net/tls_stat
}

check_ktls_without_synapserve() {
	local line
	line=$(timeout 120 python3 "$HERE/ktls_sanity.py" "$WORK/tls/pkgtest.pem" "$WORK/tls/pkgtest.key") || {
		note "${line:-ktls_sanity.py failed (its output above)}"
		return 1
	}
	log "INFO kTLS without synapserve: $line"
}

# Informative: a splice into a kTLS socket with TCP_NOTSENT_LOWAT set, without synapserve (see
# ktls_lowat_probe.py). Unset it must get through; with synapserve's 16 KiB the line is logged.
check_ktls_lowat_probe() {
	local lowat line rc
	for lowat in 0 16384; do
		rc=0
		line=$(timeout 120 python3 "$HERE/ktls_lowat_probe.py" "$WORK/tls/pkgtest.pem" \
			"$WORK/tls/pkgtest.key" "$lowat") || rc=$?
		log "INFO kTLS splice without synapserve: ${line:-ktls_lowat_probe.py exited $rc}"
		if [ "$lowat" = 0 ] && [ "$rc" != 0 ]; then
			note "a splice into a kTLS socket failed with the kernel's default: $line"
			return 1
		fi
	done
}

check_backend_answers() {
	wait_for 60 curl -sf --max-time 5 "http://127.0.0.1:$BACKEND_PORT/hello"
}

write_config() {
	mkdir -p "$WORK/config"
	cat >"$WORK/config/synapserve.toml" <<-EOF
		[server]
		workers = 1

		[admin]
		bind = "${ADMIN#http://}"

		[log]
		level = "info"
		access = "off"

		[listeners.https]
		bind = "127.0.0.1:$HTTPS_PORT"
		tls = { certificates = [{ cert = "$WORK/tls/pkgtest.pem", key = "$WORK/tls/pkgtest.key" }], ktls = "$KTLS" }

		[upstreams.backend]
		servers = [{ address = "127.0.0.1:$BACKEND_PORT" }]

		[sites.ktlsvm]
		hosts = ["*"]
		[[sites.ktlsvm.routes]]
		path = "/"
		upstream = "backend"
		[[sites.ktlsvm.routes]]
		path = "/static/"
		static = { root = "$WORK/www" }
	EOF
	# a static file of 1 MiB, served from $WORK/www/static/ (root as nginx's root)
	install -d -m 755 "$WORK/www/static"
	head -c 1048576 /dev/urandom >"$WORK/www/static/file.bin"
	chmod 644 "$WORK/www/static/file.bin"
}

# wait_for SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
	local end=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		if [ "$SECONDS" -ge "$end" ]; then
			note "timed out after $1 s waiting for: $*"
			return 1
		fi
		sleep 0.2
	done
}

synapserve_ready() {
	kill -0 "$synapserve_pid" || return 2
	[ "$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$ADMIN/healthz")" = 200 ] &&
		grep -q 'serving: ' "$OUT/synapserve.log"
}

# (synapserve runs as a child of the main shell, which waits for it at the end)
check_synapserve_ready() {
	local end=$((SECONDS + 120)) rc
	until synapserve_ready 2>/dev/null; do
		rc=$?
		if [ "$rc" -eq 2 ] || [ "$SECONDS" -ge "$end" ]; then
			tail -n 20 "$OUT/synapserve.log"
			note "synapserve did not come up (ktls = \"$KTLS\"): $(tail -n 1 "$OUT/synapserve.log")"
			return 1
		fi
		sleep 0.2
	done
	grep 'serving: ' "$OUT/synapserve.log"
}

check_version() {
	local out
	out=$(synapserve version)
	printf '%s\n' "$out"
	while IFS= read -r line; do log "INFO synapserve version: $line"; done <<<"$out"
}

sha256() { sha256sum <"$1" | cut -d' ' -f1; }

# tls_opts VERSION: the curl options of one request to synapserve with TLS VERSION
# (1.3 or 1.2, and that version only), the certificate verified.
tls_opts() {
	TLS=(--silent --show-error --fail --max-time 120 --cacert "$WORK/tls/pkgtest.pem"
		--resolve "$NAME:$HTTPS_PORT:127.0.0.1")
	case $1 in
	1.3) TLS+=(--tlsv1.3) ;;
	1.2) TLS+=(--tlsv1.2 --tls-max 1.2) ;;
	esac
}

# https VERSION CURL-ARGS...: curl, verbose into $WORK/curl.err; on failure, curl's own
# message is the last line.
https() {
	local v=$1
	shift
	tls_opts "$v"
	if ! curl "${TLS[@]}" -v "$@" 2>"$WORK/curl.err"; then
		grep -v '^[*<>{}]' "$WORK/curl.err" | tail -n 5
		return 1
	fi
}

check_get() {
	https "$1" -o "$WORK/get.out" "$URL/blob"
	log "INFO TLS $1 GET: $(grep -o 'SSL connection using .*' "$WORK/curl.err" | tr -d '\r')"
	expect "sha256 of GET /blob" "$(sha256 "$WORK/get.out")" "$(sha256 "$WORK/get.bin")"
}

check_post() {
	https "$1" -o "$WORK/post.out" --data-binary "@$WORK/post.bin" \
		-H 'Content-Type: application/octet-stream' "$URL/echo"
	expect "sha256 of the echo of POST /echo" "$(sha256 "$WORK/post.out")" "$(sha256 "$WORK/post.bin")"
}

# Four requests on one connection (curl's --next keeps it): GET 1 MiB, POST 1 MiB,
# GET a short body, GET 1 MiB; curl must have connected once.
check_keepalive() {
	local each args=() got
	tls_opts "$1"
	each=("${TLS[@]}" -w '%{num_connects} %{http_code}\n') # options are per URL after --next
	args+=("${each[@]}" -o "$WORK/ka1" "$URL/blob" --next)
	args+=("${each[@]}" -o "$WORK/ka2" --data-binary "@$WORK/post.bin" "$URL/echo" --next)
	args+=("${each[@]}" -o "$WORK/ka3" "$URL/hello" --next)
	args+=("${each[@]}" -o "$WORK/ka4" "$URL/blob")
	got=$(curl "${args[@]}" | tr '\n' ' ')
	expect "connections made and statuses (num_connects status, per request)" "$got" "1 200 0 200 0 200 0 200 "
	expect "sha256 of GET /blob, first" "$(sha256 "$WORK/ka1")" "$(sha256 "$WORK/get.bin")"
	expect "sha256 of the POST echo" "$(sha256 "$WORK/ka2")" "$(sha256 "$WORK/post.bin")"
	expect "body of GET /hello" "$(cat "$WORK/ka3")" "hello from the ktls-vm backend"
	expect "sha256 of GET /blob, second" "$(sha256 "$WORK/ka4")" "$(sha256 "$WORK/get.bin")"
}

# A static file of 1 MiB over kernel TLS: sent by splice from the file.
check_static() {
	https "$1" -o "$WORK/static.out" "$URL/static/file.bin"
	expect "sha256 of GET /static/file.bin" "$(sha256 "$WORK/static.out")" "$(sha256 "$WORK/www/static/file.bin")"
}

# metric NAME LABEL-SUBSTRING: one sample's value from /metrics (0 when absent)
metric() {
	curl -sf --max-time 10 "$ADMIN/metrics" |
		awk -v m="$1{" -v l="$2" 'index($1, m) == 1 && index($1, l) { v = $2 } END { print v + 0 }'
}

# The 1 MiB bodies of the runs above went by splice (through the kernel TLS socket).
check_spliced() {
	local after
	after=$(metric synapserve_io_uring_ops_total 'op="splice"')
	note "io_uring splice ops went from $splice_before to $after"
	awk -v a="$splice_before" -v b="$after" 'BEGIN { exit !(b > a) }'
}

# close_notify both ways over kernel TLS: Python's ssl sends the client's with unwrap() and
# waits for synapserve's (which the kernel encrypts: a record of type alert); then the
# proxy still serves.
check_close_notify() {
	timeout 60 python3 - "$WORK/tls/pkgtest.pem" "$NAME" "$HTTPS_PORT" "$1" <<-'PY'
		import socket, ssl, sys
		ca, name, port, version = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
		ctx = ssl.create_default_context(cafile=ca)
		v = ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2
		ctx.minimum_version = ctx.maximum_version = v
		raw = socket.create_connection(("127.0.0.1", port))
		s = ctx.wrap_socket(raw, server_hostname=name)
		s.sendall(b"GET /hello HTTP/1.1\r\nHost: " + name.encode() + b"\r\n\r\n")
		got = b""
		while b"ktls-vm backend" not in got:
		    chunk = s.recv(65536)
		    if not chunk:
		        sys.exit("connection closed before the response")
		    got += chunk
		raw2 = s.unwrap()  # sends close_notify, reads synapserve's
		print("response and close_notify both ways:", got.split(b"\r\n", 1)[0].decode())
		raw2.close()
	PY
}

# tls_run NAME FUNCTION VERSION: a check that makes one TLS connection to synapserve.
tls_run() {
	conns=$((conns + 1))
	run "$@"
}

# stat_delta NAME: how much a /proc/net/tls_stat counter went up since tls_stat.before
stat_delta() {
	awk -v n="$1" '$1 == n { v[FILENAME] = $2 } END { print v[ARGV[2]] - v[ARGV[1]] }' \
		"$WORK/tls_stat.before" "$WORK/tls_stat.after"
}

check_stat_at_least() {
	local d
	d=$(stat_delta "$1")
	note "$1 went up by $d for $conns connection(s)"
	[ "$d" -ge "$conns" ]
}

check_no_decrypt_errors() {
	local d
	d=$(stat_delta TlsDecryptError)
	note "TlsDecryptError went up by $d"
	[ "$d" -eq 0 ]
}

# check_metric_at_least DIRECTION: the kTLS metric of the https listener for DIRECTION
# has counted every connection (its labels in whatever order).
check_metric_at_least() {
	local sample="$KTLS_METRIC{listener=\"https\",direction=\"$1\"}" v
	curl -sf --max-time 10 "$ADMIN/metrics" >"$WORK/metrics"
	grep -E "^(synapserve_tls_|# [A-Z]+ $KTLS_METRIC)" "$WORK/metrics" || true
	v=$(awk -v m="$KTLS_METRIC{" -v d="direction=\"$1\"" 'index($1, m) == 1 &&
		index($1, "listener=\"https\"") && index($1, d) { print $2 }' "$WORK/metrics")
	if [ -z "$v" ]; then
		note "no sample $sample in /metrics"
		return 1
	fi
	note "$sample is $v for $conns connection(s)"
	awk -v v="$v" -v n="$conns" 'BEGIN { exit !(v + 0 >= n) }'
}

# stop_synapserve: SIGTERM, and its exit status; SIGKILL after 60 s.
stop_synapserve() {
	local killer rc=0
	kill -TERM "$synapserve_pid"
	(
		sleep 60
		kill -KILL "$synapserve_pid"
	) >/dev/null 2>&1 &
	killer=$!
	wait "$synapserve_pid" || rc=$?
	kill "$killer" 2>/dev/null
	synapserve_pid=0
	return "$rc"
}

check_synapserve_stopped() {
	tail -n 3 "$OUT/synapserve.log"
	expect "synapserve's exit status after SIGTERM" "$1" 0
	if grep -q Traceback "$OUT/synapserve.log"; then
		note "a traceback in synapserve's log"
		return 1
	fi
}

# ---- main ------------------------------------------------------------------------------

trap power_off EXIT
setup_system
boot=$(uptime_s)
log "INFO kernel $(uname -r); ktls = \"$KTLS\"; guest script started $boot s after boot"
log "INFO installed: $(dpkg-query -W -f='${Package} ${Version}\n' synapserve python3 libssl3 curl linux-image-amd64 |
	tr '\n' ',' | sed 's/,$//')"
install -d -m 755 "$WORK/tls"
install -m 644 "$HERE/tls/pkgtest.pem" "$WORK/tls/"
install -m 640 -g synapserve "$HERE/tls/pkgtest.key" "$WORK/tls/"

run tls-module-loaded check_tls_module
run ktls-works-without-synapserve check_ktls_without_synapserve
run ktls-splice-without-synapserve check_ktls_lowat_probe
python3 "$HERE/backend.py" "$BACKEND_PORT" "$WORK" >"$OUT/backend.log" 2>&1 &
backend_pid=$!
run backend-answers check_backend_answers
write_config
synapserve run --config-dir "$WORK/config" >"$OUT/synapserve.log" 2>&1 &
synapserve_pid=$!
# (not `if run ...`: a check run as a condition would have `set -e` ignored in it)
run synapserve-starts check_synapserve_ready
started=$?
run synapserve-version check_version
if [ "$started" -eq 0 ]; then
	cp /proc/net/tls_stat "$WORK/tls_stat.before"
	splice_before=$(metric synapserve_io_uring_ops_total 'op="splice"')
	for v in 1.3 1.2; do
		tls_run "tls$v-get-1mib" check_get "$v"
		tls_run "tls$v-post-1mib-echo" check_post "$v"
		tls_run "tls$v-keepalive-4-requests" check_keepalive "$v"
		tls_run "tls$v-static-1mib" check_static "$v"
		tls_run "tls$v-close-notify-both-ways" check_close_notify "$v"
	done
	run bodies-spliced-through-ktls check_spliced
	tls_run "tls1.3-get-after-alerts" check_get 1.3
	cp /proc/net/tls_stat "$WORK/tls_stat.after"
	log "INFO tls_stat after $conns connection(s): $(
		paste "$WORK/tls_stat.before" "$WORK/tls_stat.after" |
			awk '$4 != $2 || $1 ~ /^Tls(TxSw|RxSw|DecryptError)$/ { printf "%s%s %s->%s", sep, $1, $2, $4; sep = "; " }'
	)"
	run kernel-tls-tx-counted check_stat_at_least TlsTxSw
	run kernel-tls-rx-counted check_stat_at_least TlsRxSw
	run kernel-tls-no-decrypt-errors check_no_decrypt_errors
	run ktls-metric-tx-counted check_metric_at_least tx
	run ktls-metric-rx-counted check_metric_at_least rx
	stop_synapserve
	run synapserve-stops-cleanly check_synapserve_stopped $?
fi
log "INFO checks took $(awk -v a="$boot" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }') s"
if [ "$failed" -eq 0 ]; then log "RESULT: PASS"; else log "RESULT: FAIL"; fi
