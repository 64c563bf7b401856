# shellcheck shell=bash
# native/bench/lib.sh - what bench_proxy.sh, bench_static.sh and bench_tls.sh
# share.  Each sources it right after `set -euo pipefail`:
#
#   BENCH_NAME=bench_proxy
#   # shellcheck source=SCRIPTDIR/../lib.sh
#   . "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
#
# Sourcing it goes to the top of the tree (and checks that it is one), adds
# /usr/sbin and /sbin to PATH and sets ROOT, HZ and START_TIME; the rest are
# functions, which read the script's settings: OUT, LOAD_CPU, WARMUP,
# DURATION, IDLE_MAX, IDLE_WAIT, WAIT_BUDGET, RETRY_BUDGET, SYN_CMD,
# SYN_ADMIN and, with a backend, BACKEND_PORT; the knobs (BENCH_*) and their
# defaults stay in each script, documented in its header.
#
# What is measured, a proxy or a server, is the target here.  The script
# defines two functions for it:
#   start_target NAME CASE DIR  starts NAME for CASE (a scenario or a size),
#                               its files in DIR: sets TARGET_PID, TARGET_URL
#                               and TARGET_DIR, adds the pid to PIDS, waits
#                               until it answers, then calls target_pids NAME;
#                               non-zero when it did not start
#   measure_once CASE NAME      one measured run: one row into $ROW, its
#                               others_pct column filled (see run_one)

cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
ROOT=$PWD
if [ ! -f appliance/synapserve/supervisor.py ]; then
	echo "$BENCH_NAME.sh: run it inside the synapserve tree" >&2
	exit 1
fi
export PATH="$PATH:/usr/sbin:/sbin"

HZ=$(getconf CLK_TCK)
START_TIME=$(date +%s)
BACKEND_PIDS=()
PIDS=()

log() { echo "$BENCH_NAME: $*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# ---- what is needed, installed when absent ---------------------------------

# need_* add the Debian packages that are missing to MISSING; install_missing
# installs them.
MISSING=()

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q ' installed$'; }

need_pkg() { # package...
	local p
	for p in "$@"; do
		pkg_installed "$p" || MISSING+=("$p")
	done
}

need_cmd() { # command [package, default: the command]
	command -v "$1" >/dev/null 2>&1 || MISSING+=("${2:-$1}")
}

need_file() { # test-flag file package: e.g. need_file -x /usr/bin/time time
	test "$1" "$2" || MISSING+=("$3")
}

need_nginx() { # any of Debian's nginx packages, with its command
	local p
	for p in nginx nginx-light nginx-core nginx-full nginx-extras; do
		if pkg_installed "$p" && command -v nginx >/dev/null 2>&1; then
			return 0
		fi
	done
	MISSING+=(nginx)
}

# The packages' postinst may have started their system services: stop those
# (only those we just installed), by their own pid files, nothing else.
stop_service() { # name pidfile
	local pid
	[ -s "$2" ] || return 0
	pid=$(cat "$2" 2>/dev/null) || return 0
	kill -0 "$pid" 2>/dev/null || return 0
	log "stopping the $1 service the package started (pid $pid)"
	if command -v service >/dev/null 2>&1; then
		${SUDO:-} service "$1" stop >/dev/null 2>&1 || true
	fi
	sleep 0.5
	if kill -0 "$pid" 2>/dev/null; then
		${SUDO:-} kill "$pid" 2>/dev/null || true
	fi
}

install_missing() { # apt-get install MISSING (root or sudo)
	local p
	[ ${#MISSING[@]} -gt 0 ] || return 0
	log "installing ${MISSING[*]}"
	if [ "$(id -u)" = 0 ]; then
		SUDO=
	elif command -v sudo >/dev/null 2>&1; then
		SUDO=sudo
	else
		die "need root or sudo to install: ${MISSING[*]}"
	fi
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq --no-install-recommends "${MISSING[@]}" >&2
	for p in "${MISSING[@]}"; do
		case $p in
		nginx*) stop_service nginx /run/nginx.pid ;;
		haproxy) stop_service haproxy /run/haproxy.pid ;;
		esac
	done
}

build_native() { # make native, unless BENCH_NO_BUILD=1; then byte_compile
	if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
		log "make native"
		make -s native >&2 || die "make native failed"
	fi
	byte_compile
}

# The package's .pyc files, as an installed package has them (Debian's
# python3 byte-compiles it at install): where PYTHONDONTWRITEBYTECODE is set,
# each start would compile it from source again, and the compiler's garbage
# would count in synapserve's peak RSS (about 1.5 MiB).
byte_compile() {
	[ -x .venv/bin/python ] || return 0
	.venv/bin/python -m compileall -q appliance/synapserve >/dev/null || log "warning: compileall failed"
}

# ---- limits, ports, scratch space -------------------------------------------

# raise_nofile [what needs it]: sets NOFILE, which must be >= 4096
# shellcheck disable=SC2120 # the argument is optional
raise_nofile() {
	ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
	NOFILE=$(ulimit -n)
	[ "$NOFILE" -ge 4096 ] || die "ulimit -n is $NOFILE; ${1:+$1 }need >= 4096"
}

check_ports() { # port...: none of them may be listened on
	local p
	for p in "$@"; do
		if ss -Htln "sport = :$p" | grep -q .; then
			die "port $p is in use (set BENCH_PORT_BASE)"
		fi
	done
}

# scratch name [dir...]: the temp dir T (/tmp/NAME.XXXXXX, removed at exit,
# with every process in PIDS stopped), OUT made afresh with runs/ and the
# dirs given, RUNS, TSV (results.tsv) and NOTES (notes.txt, empty).
scratch() {
	local s
	T=$(mktemp -d "/tmp/$1.XXXXXX")
	chmod 755 "$T"
	trap cleanup EXIT
	rm -rf "$OUT"
	mkdir -p "$OUT/runs"
	for s in "${@:2}"; do mkdir -p "$OUT/$s"; done
	RUNS=$ROOT/$OUT/runs
	TSV=$ROOT/$OUT/results.tsv
	NOTES=$ROOT/$OUT/notes.txt
	: >"$NOTES"
}

cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	sleep 0.3
	for p in "${PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
	done
	rm -rf "$T"
}

# ---- measuring --------------------------------------------------------------

# utime+stime, in clock ticks, summed over the processes given (all threads).
proc_ticks() { # pid... -> "user sys"
	local f=()
	local p
	for p in "$@"; do f+=("/proc/$p/stat"); done
	awk '{ sub(/^.*\) /, ""); u += $12; s += $13 } END { print u + 0, s + 0 }' "${f[@]}"
}

# busy (user+nice+system+irq+softirq) and steal ticks of the whole machine.
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $9 }' /proc/stat; }

# user+sys ticks of the backend (BACKEND_PIDS), 0 when there is none.
backend_ticks() {
	if [ ${#BACKEND_PIDS[@]} -gt 0 ]; then
		proc_ticks "${BACKEND_PIDS[@]}" | awk '{ print $1 + $2 }'
	else
		echo 0
	fi
}

now() { date +%s.%N; }

vm_hwm() { # pid fallback: its peak RSS in KiB
	awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo "$2"
}

# Wait until other processes (not the backend) use less than IDLE_MAX % of
# one CPU (sampled over 1 s), up to IDLE_WAIT s.  Prints the last figure.
# (No target runs while it waits.)
wait_quiet() {
	local b0 b1 bk0 bk1 pct waited=0
	while :; do
		read -r b0 _ < <(machine_ticks)
		read -r bk0 < <(backend_ticks)
		sleep 1
		read -r b1 _ < <(machine_ticks)
		read -r bk1 < <(backend_ticks)
		pct=$(awk -v d=$((b1 - b0 - (bk1 - bk0))) -v hz="$HZ" 'BEGIN { p = d * 100 / hz; if (p < 0) p = 0; printf "%.0f", p }')
		waited=$((waited + 1))
		if [ "$pct" -le "$IDLE_MAX" ] || [ "$waited" -ge "$IDLE_WAIT" ] ||
			[ $(($(date +%s) - START_TIME)) -ge "$WAIT_BUDGET" ]; then
			[ "$waited" -gt 1 ] && log "waited ${waited}s for a quiet machine (others: ${pct}% of a CPU)"
			echo "$pct"
			return
		fi
	done
}

# wait_http url [size [pid]]: until it answers 200 (with that many bytes),
# 10 s at most, and no longer than the process pid lives.  (The certificates
# are not verified.)
wait_http() {
	local _i r
	for _i in $(seq 100); do
		[ -z "${3:-}" ] || kill -0 "$3" 2>/dev/null || break
		r=$(curl -sk -o /dev/null --max-time 5 -w '%{http_code} %{size_download}' "$1" || true)
		if [ -n "${2:-}" ]; then
			[ "$r" = "200 $2" ] && return 0
		else
			case $r in "200 "*) return 0 ;; esac
		fi
		sleep 0.1
	done
	log "$1 did not answer 200${2:+ with $2 bytes} (last: ${r:-nothing})"
	return 1
}

wait_exit() { # pid seconds: 0 when it exited in time
	local _i
	for _i in $(seq $(($2 * 10))); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}

forget_pid() {
	local p keep=()
	for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}

size_bytes() { # 1k or 1m: the size of /1k or /1m
	case $1 in 1k) echo 1024 ;; *) echo 1048576 ;; esac
}

# ---- the backend (bench_proxy.sh, bench_tls.sh) ------------------------------

# An nginx (1 worker) serving /1k and /1m from files and its stub_status on
# BACKEND_PORT, pinned to LOAD_CPU: sets BACKEND_PIDS (master and worker).
start_backend() {
	local master
	mkdir -p "$T/backend/www" "$T/backend/tmp"
	head -c 1024 /dev/zero | tr '\0' 'k' >"$T/backend/www/1k"
	head -c 1048576 /dev/zero | tr '\0' 'm' >"$T/backend/www/1m"
	cat >"$T/backend/nginx.conf" <<EOF
user root;
daemon off;
worker_processes 1;
worker_rlimit_nofile $NOFILE;
pid $T/backend/nginx.pid;
error_log $T/backend/error.log warn;
events { worker_connections 16384; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000000;
    keepalive_timeout 600s;
    open_file_cache max=16 inactive=600s;
    open_file_cache_valid 600s;
    default_type application/octet-stream;
    client_body_temp_path $T/backend/tmp;
    server {
        listen 127.0.0.1:$BACKEND_PORT backlog=4096;
        root $T/backend/www;
        location = /stub_status { stub_status; }
    }
}
EOF
	cp "$T/backend/nginx.conf" "$RUNS/backend-nginx.conf"
	taskset -c "$LOAD_CPU" nginx -p "$T/backend/" -c "$T/backend/nginx.conf" -e "$T/backend/error.log" \
		>"$T/backend/stderr" 2>&1 &
	master=$!
	PIDS+=("$master")
	wait_http "http://127.0.0.1:$BACKEND_PORT/1k" 1024 || die "backend nginx did not start: $(cat "$T/backend/stderr")"
	wait_http "http://127.0.0.1:$BACKEND_PORT/1m" 1048576 || die "backend: /1m"
	[ -n "$(backend_accepts)" ] || die "backend nginx has no stub_status"
	mapfile -t BACKEND_PIDS < <(echo "$master"; pgrep -P "$master")
}

backend_accepts() {
	curl -s --max-time 5 "http://127.0.0.1:$BACKEND_PORT/stub_status" | awk 'NR == 3 { print $1 }'
}

# ---- the target ---------------------------------------------------------------

# target_pids name: MAIN_PID (the process whose VmHWM is the target's peak:
# nginx's worker) and MEASURE_PIDS (those whose CPU time counts: nginx's
# master and worker).
target_pids() {
	MAIN_PID=$TARGET_PID
	MEASURE_PIDS=("$TARGET_PID")
	if [ "$1" = nginx ]; then
		MAIN_PID=$(pgrep -P "$TARGET_PID" | head -n 1)
		[ -n "$MAIN_PID" ] || return 1
		MEASURE_PIDS+=("$MAIN_PID")
	fi
}

target_alive() {
	kill -0 "$TARGET_PID" 2>/dev/null && kill -0 "$MAIN_PID" 2>/dev/null
}

# stop_target: SIGTERM, 15 s to exit, then SIGKILL.  Sets STOP_NOTE.
stop_target() {
	local rc=0
	STOP_NOTE=
	if ! kill -0 "$TARGET_PID" 2>/dev/null; then
		wait "$TARGET_PID" 2>/dev/null || rc=$?
		STOP_NOTE="exited by itself, status $rc"
		if grep -q "stopping (signal)" "$TARGET_DIR/stderr" 2>/dev/null; then
			STOP_NOTE="$STOP_NOTE: it was sent a stop signal, not by this script (another job's cleanup?)"
		fi
		[ "$rc" -gt 128 ] && STOP_NOTE="$STOP_NOTE (SIG$(kill -l $((rc - 128)) 2>/dev/null || echo ?))"
		forget_pid "$TARGET_PID"
		return
	fi
	kill -TERM "$TARGET_PID"
	if ! wait_exit "$TARGET_PID" 15; then
		STOP_NOTE="did not exit within 15 s of SIGTERM; killed"
		kill -KILL "$TARGET_PID" 2>/dev/null || true
	fi
	wait "$TARGET_PID" 2>/dev/null || true
	forget_pid "$TARGET_PID"
}

# synapserve's /metrics (on SYN_ADMIN)
syn_metrics() { curl -s --max-time 5 "http://127.0.0.1:$SYN_ADMIN/metrics"; }

syn_ops() { # "op=count ..." from synapserve's /metrics
	syn_metrics | awk -F'[{}"]' '/^synapserve_io_uring_ops_total\{/ { split($0, a, " "); printf "%s=%d ", $3, a[2] }'
}

ops_per_req() { # ops-before ops-after requests: "io_uring ops/req: op N, ..."
	awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN {
		na = split(a, x, " "); split(b, y, " ")
		for (i = 1; i <= na; i++) { split(x[i], p, "="); split(y[i], q, "="); v = (q[2] - p[2]) / n
			if (v > 0.005) s = s sprintf("%s%s %.2f", (s ? ", " : ""), p[1], v) }
		print "io_uring ops/req: " s }'
}

# ---- one measured run -----------------------------------------------------------

# wrk_cmd [NAME=VALUE...] conns seconds url [option...]: sets WRK_CMD, wrk
# (1 thread) pinned to LOAD_CPU, with the NAME=VALUEs in its environment.
wrk_cmd() {
	local envs=()
	while [[ $1 == *=* ]]; do
		envs+=("$1")
		shift
	done
	WRK_CMD=(taskset -c "$LOAD_CPU")
	[ ${#envs[@]} -eq 0 ] || WRK_CMD+=(env "${envs[@]}")
	WRK_CMD+=(wrk -t1 -c"$1" -d"${2}s" "${@:4}" "$3")
}

# "rps p50_ms p99_ms requests bytes errors" from a wrk output; errors is a
# comma-separated list or "-".
parse_wrk() {
	awk '
	function ms(v) {
		if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
		if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
		if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
		return v + 0
	}
	function bytes(v) {
		if (v ~ /KB$/) return substr(v, 1, length(v) - 2) * 1024
		if (v ~ /MB$/) return substr(v, 1, length(v) - 2) * 1048576
		if (v ~ /GB$/) return substr(v, 1, length(v) - 2) * 1073741824
		if (v ~ /TB$/) return substr(v, 1, length(v) - 2) * 1099511627776
		if (v ~ /B$/) return substr(v, 1, length(v) - 1) + 0
		return v + 0
	}
	$1 == "50%" { p50 = ms($2) }
	$1 == "99%" { p99 = ms($2) }
	/requests in/ { req = $1; b = $5; sub(/,$/, "", b); by = bytes(b) }
	/^Requests\/sec:/ { rps = $2 }
	/Socket errors:/ {
		gsub(/,/, "")
		for (i = 3; i + 1 <= NF; i += 2) if ($(i + 1) > 0) err = err (err ? "," : "") $i "=" $(i + 1)
	}
	/Non-2xx or 3xx responses:/ { err = err (err ? "," : "") "non2xx=" $NF }
	END {
		if (rps == "") rps = 0
		printf "%.0f %.3f %.3f %d %.0f %s\n", rps, p50, p99, req, by, (err ? err : "-")
	}'
}

# run_begin case name: waits for a quiet machine, sets OTHERS (what other
# processes used before the run, % of a CPU) and RUN_UPTIME.
run_begin() {
	OTHERS=$(wait_quiet)
	RUN_UPTIME=$(awk '{ print $1 }' /proc/uptime)
	log "$1 $2 (others before: ${OTHERS}% of a CPU)"
}

crash_report() { # case name dir phase
	local cf="$RUNS/$1-$2.crash.txt"
	{
		echo "== $2 died during the $4 run of $1 (status: $STOP_NOTE)"
		echo "== wrk output"
		cat "$3/wrk-$4.out" 2>/dev/null || true
		echo "== $2 stderr (last 60 lines)"
		tail -n 60 "$3/stderr" 2>/dev/null || true
		echo "== dmesg since the run started (tail)"
		dmesg 2>&1 | awk -v t0="$RUN_UPTIME" '{ t = $0; sub(/^\[ */, "", t); sub(/\].*/, "", t); if (t + 0 >= t0) print }' |
			tail -n 15 || true
	} >"$cf"
	echo "$1 $2: died during the $4 run ($STOP_NOTE); see runs/$1-$2.crash.txt" >>"$NOTES"
	log "$2 died during the $4 run of $1: $STOP_NOTE"
	sed 's/^/    /' "$cf" >&2
}

start_failed() { # case name dir: after start_target failed
	stop_target
	cp "$3/stderr" "$RUNS/$1-$2.stderr" 2>/dev/null || true
	STOP_NOTE="did not start: $STOP_NOTE"
	crash_report "$1" "$2" "$3" start
}

crashed() { # case name dir phase: the target died during the warm-up or timed run
	stop_target
	cp "$3/stderr" "$RUNS/$1-$2.stderr"
	crash_report "$@"
}

# warmup_run dir id: WRK_CMD into DIR/wrk-warmup.out (and runs/ID.wrk-warmup.txt)
warmup_run() {
	"${WRK_CMD[@]}" >"$1/wrk-warmup.out" 2>&1 || true
	cp "$1/wrk-warmup.out" "$RUNS/$2.wrk-warmup.txt"
}

# timed_run dir id: WRK_CMD into DIR/wrk-timed.out (and runs/ID.wrk.txt), its
# CPU time into DIR/wrk.time; around it the CPU ticks of the target (U1 S1),
# of the machine (M1 ST1 M2 ST2: busy, steal) and of the backend (BK1 BK2),
# and the wall clock (W1 W2).
timed_run() {
	read -r U1 S1 < <(proc_ticks "${MEASURE_PIDS[@]}")
	read -r M1 ST1 < <(machine_ticks)
	read -r BK1 < <(backend_ticks)
	W1=$(now)
	/usr/bin/time -f '%U %S' -o "$1/wrk.time" "${WRK_CMD[@]}" >"$1/wrk-timed.out" 2>&1 || true
	W2=$(now)
	read -r M2 ST2 < <(machine_ticks)
	read -r BK2 < <(backend_ticks)
	cp "$1/wrk-timed.out" "$RUNS/$2.wrk.txt"
}

# timed_end name: after a timed run the target survived, its CPU ticks (U2
# S2) and peak RSS (HWM, KiB); EXTRA is nginx's master's peak RSS, or empty.
# shellcheck disable=SC2034 # HWM and EXTRA are the script's
timed_end() {
	read -r U2 S2 < <(proc_ticks "${MEASURE_PIDS[@]}")
	HWM=$(vm_hwm "$MAIN_PID" 0)
	EXTRA=
	if [ "$1" = nginx ]; then
		EXTRA="master VmHWM $(vm_hwm "$TARGET_PID" "?") KiB"
	fi
}

# stop_after case name dir: stops the target after its run, keeps its stderr
# and notes how it stopped when that was not as asked.
stop_after() {
	stop_target
	cp "$3/stderr" "$RUNS/$1-$2.stderr"
	[ -n "$STOP_NOTE" ] && echo "$1 $2: on SIGTERM after the run: $STOP_NOTE" >>"$NOTES"
	return 0
}

# run_status errors requests bytes size: ok, errors, no requests or short bodies
run_status() {
	local st=ok
	[ "$1" != - ] && st="errors"
	[ "$2" -gt 0 ] || st="no requests"
	# (wrk prints the bytes read with 3 significant digits or so)
	awk -v r="$2" -v b="$3" -v want="$(size_bytes "$4")" 'BEGIN { exit !(r > 0 && b / r < want * 0.995) }' &&
		st="short bodies"
	echo "$st"
}

# run_figures dir requests bytes: from the timed run's ticks (timed_run,
# timed_end) and wrk's CPU time (DIR/wrk.time), "user_us sys_us total_us others_pct
# steal_pct bytes_per_req wrk_us backend_us": per request the target's CPU
# (µs), the bytes wrk read, wrk's and the backend's CPU (µs); and what other
# processes used and the hypervisor stole during the run (% of a CPU).
run_figures() {
	local wu ws
	read -r wu ws <"$1/wrk.time"
	awk -v req="$2" -v by="$3" -v du=$((U2 - U1)) -v ds=$((S2 - S1)) -v hz="$HZ" \
		-v busy=$((M2 - M1)) -v steal=$((ST2 - ST1)) -v bk=$((BK2 - BK1)) -v wu="$wu" -v ws="$ws" \
		-v wall="$(awk -v a="$W1" -v b="$W2" 'BEGIN { print b - a }')" 'BEGIN {
		n = (req > 0) ? req : 1
		us = du * 1e6 / hz / n; ss = ds * 1e6 / hz / n
		ours = du + ds + bk + (wu + ws) * hz
		oth = (busy - ours) * 100 / hz / wall; if (oth < 0) oth = 0
		printf "%.2f %.2f %.2f %.0f %.0f %.0f %.2f %.2f\n", us, ss, us + ss, oth,
			steal * 100 / hz / wall, by / n, (wu + ws) * 1e6 / n, bk * 1e6 / hz / n
	}'
}

# run_one case name: measure_once, and once more when other processes were
# busy during the run (while the time budget allows); the quieter row goes
# into the table.
run_one() {
	local a oth st col best="" best_oth=1000000
	col=$(head -n 1 "$TSV" | tr '\t' '\n' | grep -n -x others_pct | cut -d: -f1)
	for a in 1 2; do
		ROW="$T/row.$1.$2.$a"
		: >"$ROW"
		measure_once "$1" "$2"
		[ -s "$ROW" ] || continue
		IFS=$'\t' read -r st oth < <(awk -F'\t' -v c="$col" '{ print $3 "\t" $c }' "$ROW")
		case $oth in '' | *[!0-9]*) oth=0 ;; esac
		if [ -z "$best" ] || [ "$oth" -lt "$best_oth" ]; then
			best=$ROW
			best_oth=$oth
		fi
		case $st in ok | errors) ;; *) break ;; esac
		[ "$oth" -gt "$IDLE_MAX" ] || break
		[ $(($(date +%s) - START_TIME)) -lt "$RETRY_BUDGET" ] || break
		[ "$a" = 2 ] && break
		log "$1 $2: other processes used ${oth}% of a CPU during the run; once more"
		echo "$1 $2: other processes used ${oth}% of a CPU during the first run; run again, the quieter kept" >>"$NOTES"
	done
	[ -n "$best" ] && cat "$best" >>"$TSV"
	if [ "$2" = synapserve ] && [ "$SYN_CMD" = .venv/bin/synapserve ]; then
		local sum
		sum=$(so_sum)
		[ "$sum" = "$SO_SUM" ] || echo "$1 synapserve: the native module changed during the bench (rebuilt by someone else): $SO_SUM -> $sum" >>"$NOTES"
	fi
}

# ---- syscalls per request (strace -c) ----------------------------------------

# strace_one name case conns id label key: strace -c -f of the target's
# MAIN_PID during 3 s of wrk (CONNS connections, /1k or /1m as the case
# begins) after a warm-up, into a row of SYSC: KEY (its first cells), the
# requests, the syscalls, the syscalls per request and the most frequent.
# ID names the files (runs/strace-ID.txt), LABEL the log line.  (strace
# slows the targets: not a measured run.)
strace_one() {
	local name=$1 what=$2 conns=$3 id=$4 key=$6 d="$T/strace-$4" sp req total top
	mkdir -p "$d"
	wait_quiet >/dev/null
	log "syscalls: $5"
	if ! start_target "$name" "$what" "$d"; then
		stop_target
		printf '%s\t0\t0\t-\tdid not start\n' "$key" >>"$SYSC"
		return
	fi
	wrk_cmd "$conns" "$WARMUP" "$TARGET_URL/${what%%-*}"
	"${WRK_CMD[@]}" >/dev/null 2>&1 || true
	if ! kill -0 "$MAIN_PID" 2>/dev/null; then
		stop_target
		printf '%s\t0\t0\t-\tdied in warm-up (%s)\n' "$key" "$STOP_NOTE" >>"$SYSC"
		return
	fi
	strace -c -f -q -p "$MAIN_PID" -o "$d/strace.txt" 2>"$d/strace.err" &
	sp=$!
	sleep 1
	wrk_cmd "$conns" 3 "$TARGET_URL/${what%%-*}"
	"${WRK_CMD[@]}" >"$d/wrk.out" 2>&1 || true
	kill -INT "$sp" 2>/dev/null || true
	wait "$sp" 2>/dev/null || true
	cp "$d/strace.txt" "$RUNS/strace-$id.txt" 2>/dev/null || true
	cp "$d/wrk.out" "$RUNS/strace-$id.wrk.txt"
	read -r _ _ _ req _ _ < <(parse_wrk <"$d/wrk.out")
	total=$(awk '$NF == "total" { print $4 }' "$d/strace.txt" 2>/dev/null)
	top=$(awk '/^-/ { dash++; next } dash == 1 && NF >= 5 { printf "%s%s %s", (n++ ? ", " : ""), $NF, $4 }' "$d/strace.txt" 2>/dev/null | cut -c1-200)
	stop_target
	printf '%s\t%s\t%s\t%s\t%s\n' "$key" "${req:-0}" "${total:-0}" \
		"$(awk -v t="${total:-0}" -v r="${req:-0}" 'BEGIN { if (r > 0) printf "%.2f", t / r; else print "-" }')" \
		"${top:--}" >>"$SYSC"
}

# ---- the run and the report -----------------------------------------------------

so_sum() { cat appliance/synapserve/_native*.so 2>/dev/null | sha256sum | cut -c1-12; }

bench_begin() {
	SO_SUM=$(so_sum)
	UPTIME_START=$(uptime)
	log "start: $UPTIME_START"
}

bench_end() {
	UPTIME_END=$(uptime)
	ELAPSED=$(($(date +%s) - START_TIME))
}

syn_version() { # the first line of `SYN_CMD version`
	local v
	# shellcheck disable=SC2086 # SYN_CMD is a command line
	v=$($SYN_CMD version 2>/dev/null || true)
	echo "${v%%$'\n'*}"
}

# What every report reads from the environment (see report_common.py); the
# script exports its own settings besides.
export_report_env() {
	export BENCH_REPORT_TSV=$TSV BENCH_REPORT_NOTES=$NOTES BENCH_REPORT_OUT=$ROOT/$OUT
	export IDLE_MAX DURATION WARMUP LOAD_CPU ELAPSED UPTIME_START UPTIME_END SYN_CMD
	VER_NGINX="$(nginx -v 2>&1 | sed 's/.*: //' || true)"
	# (wrk -v exits with 1)
	VER_WRK="$(wrk -v 2>&1 | head -n 1 | awk '{ print $2 }' || true)"
	GIT_REV="$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- native appliance 2>/dev/null || echo ' (+ uncommitted changes in native/ or appliance/)')"
	KERNEL="$(uname -r)"
	CPU_MODEL="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
	NCPU="$(nproc)"
	export VER_NGINX VER_WRK GIT_REV KERNEL CPU_MODEL NCPU
}
