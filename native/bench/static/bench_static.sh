#!/usr/bin/env bash
# native/bench/static/bench_static.sh - synapserve's static-file handler
# against Debian's nginx and a floor, serving a 1 KiB and a 1 MiB file
# (`make bench`, issue 5).
#
# The servers serve /1k and /1m (1024 and 1048576 bytes) from one temp
# directory, with one worker pinned to BENCH_SERVER_CPU; wrk (1 thread) runs on
# BENCH_LOAD_CPU.  Each server is started fresh for each size, in the
# configuration an expert would deploy for it:
#   synapserve  workers = 1, access log off, a site "*" with one route "/",
#               static = { root = DIR, compress = false }
#   nginx       worker_processes 1, access_log off, open_file_cache,
#               keepalive_requests 10^9; for 1 KiB `sendfile off` (read into
#               a buffer, head and body in one writev), for 1 MiB `sendfile on`
#               + `tcp_nopush on`: the faster of the two for each size.
#   floor       floor.c (built here with gcc -O2 into OUT/floor): the issue's
#               "deliberately minimal io_uring server", one thread: for 1 KiB
#               a fixed prebuilt response with one send, for 1 MiB the head
#               and then the file by IORING_OP_SPLICE through a pipe.  The
#               goals are judged against its figures from the same run (the
#               issue's floors were measured on another day).
# Per server and size: a warm-up run, then a timed wrk run (BENCH_CONNS
# connections, --latency); around the timed run it reads the server's CPU
# time (whole process: every thread, and nginx's master + worker) from
# /proc/PID/stat and its peak RSS (VmHWM).  It also measures how much CPU
# other processes on the machine used during each run, and waits (up to
# BENCH_IDLE_WAIT s) for the machine to be quiet before each run.
# Last, syscalls per request of each server and size (strace -c -f, a short
# run of its own; strace slows the servers, so those runs are not in the
# tables).
#
# Output: build/bench-static/results.md (printed), results.tsv, syscalls.tsv,
# doc-section.md (the section for docs/benchmarks.md), runs/ (every wrk
# output, server stderr, config, response heads), floor (the binary).
# Installs nginx and wrk (and gcc and liburing-dev for the floor) when
# missing (root or sudo).
#
# Environment: BENCH_DURATION (10 s), BENCH_WARMUP (2 s), BENCH_SERVER_CPU (0),
# BENCH_LOAD_CPU (1), BENCH_SIZES ("1k 1m"), BENCH_CONNS (256),
# BENCH_SERVERS ("synapserve nginx floor"), BENCH_STRACE (1; 0 skips the
# syscall counts), BENCH_PORT_BASE (27110; uses 4 ports from there),
# BENCH_IDLE_MAX (15: % of one CPU used by other processes above which a run
# waits, and is marked), BENCH_IDLE_WAIT (20 s at most per run),
# BENCH_WAIT_BUDGET (200 s: no more waiting after the bench has run this
# long), BENCH_RETRY_BUDGET (150 s: a run during which others were busy is
# repeated once while the bench has run for less than this),
# BENCH_FLOOR_1M_US (92: the issue's CPU us per 1 MiB file of the minimal
# splice server, measured on another day; used only when the floor is not
# run), BENCH_GOAL_1K_US (6: the issue's goal for CPU us per 1 KiB file) and
# BENCH_FLOOR_1K_US (5: the issue's floor for it; with the floor measured,
# the goal is the measured floor x GOAL_1K / FLOOR_1K), BENCH_NO_BUILD (1: do
# not run `make native`), BENCH_OUT, BENCH_SYN_CMD (.venv/bin/synapserve: the
# command that runs synapserve); BENCH_NGINX_1K and BENCH_NGINX_1M replace
# nginx's per-size tuning (to try other variants, e.g.
# BENCH_NGINX_1K="sendfile on; tcp_nopush on;").
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
ROOT=$PWD
if [ ! -f appliance/synapserve/supervisor.py ]; then
	echo "bench_static.sh: run it inside the synapserve tree" >&2
	exit 1
fi
export PATH="$PATH:/usr/sbin:/sbin"

DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
LOAD_CPU=${BENCH_LOAD_CPU:-1}
SIZES=${BENCH_SIZES:-"1k 1m"}
CONNS=${BENCH_CONNS:-256}
SERVERS=${BENCH_SERVERS:-"synapserve nginx floor"}
STRACE=${BENCH_STRACE:-1}
PORT_BASE=${BENCH_PORT_BASE:-27110}
IDLE_MAX=${BENCH_IDLE_MAX:-15}
IDLE_WAIT=${BENCH_IDLE_WAIT:-20}
RETRY_BUDGET=${BENCH_RETRY_BUDGET:-150}
WAIT_BUDGET=${BENCH_WAIT_BUDGET:-200}
FLOOR_1M=${BENCH_FLOOR_1M_US:-92}
GOAL_1K=${BENCH_GOAL_1K_US:-6}
FLOOR_1K=${BENCH_FLOOR_1K_US:-5}
OUT=${BENCH_OUT:-build/bench-static}
SYN_CMD=${BENCH_SYN_CMD:-.venv/bin/synapserve}
NGINX_1K=${BENCH_NGINX_1K:-"sendfile off;"}
NGINX_1M=${BENCH_NGINX_1M:-"sendfile on; tcp_nopush on;"}

SYN_PORT=$PORT_BASE
SYN_ADMIN=$((PORT_BASE + 1))
NGX_PORT=$((PORT_BASE + 2))
FLOOR_PORT=$((PORT_BASE + 3))

HZ=$(getconf CLK_TCK)
START_TIME=$(date +%s)

log() { echo "bench_static: $*" >&2; }
die() {
	log "error: $*"
	exit 1
}

for s in $SIZES; do
	case $s in 1k | 1m) ;; *) die "unknown size $s (1k or 1m)" ;; esac
done
for s in $SERVERS; do
	case $s in synapserve | nginx | floor) ;; *) die "unknown server $s (synapserve, nginx or floor)" ;; esac
done

# ---- what is needed, installed when absent ---------------------------------

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q ' installed$'; }

missing=()
have_nginx=
for p in nginx nginx-light nginx-core nginx-full nginx-extras; do
	if pkg_installed "$p" && command -v nginx >/dev/null 2>&1; then
		have_nginx=1
		break
	fi
done
[ -n "$have_nginx" ] || missing+=(nginx)
pkg_installed wrk || missing+=(wrk)
pkg_installed curl || missing+=(curl)
if [ "$STRACE" = 1 ] && ! command -v strace >/dev/null 2>&1; then
	missing+=(strace)
fi
[ -x /usr/bin/time ] || missing+=(time)
case " $SERVERS " in
*" floor "*)
	command -v gcc >/dev/null 2>&1 || missing+=(gcc)
	[ -f /usr/include/liburing.h ] || missing+=(liburing-dev)
	;;
esac
installed_now=()
if [ ${#missing[@]} -gt 0 ]; then
	log "installing ${missing[*]}"
	if [ "$(id -u)" = 0 ]; then
		SUDO=
	elif command -v sudo >/dev/null 2>&1; then
		SUDO=sudo
	else
		die "need root or sudo to install: ${missing[*]}"
	fi
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
	installed_now=("${missing[@]}")
fi

# The nginx package's postinst may have started its system service: stop it
# (only when we just installed it), by its own pid file, nothing else.
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
for p in "${installed_now[@]}"; do
	case $p in
	nginx*) stop_service nginx /run/nginx.pid ;;
	esac
done

case " $SERVERS " in
*" synapserve "*)
	if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
		log "make native"
		make -s native >&2 || die "make native failed"
	fi
	[ "$SYN_CMD" != .venv/bin/synapserve ] || [ -x .venv/bin/synapserve ] ||
		die ".venv/bin/synapserve missing: run make native"
	;;
esac

# ---- limits, ports, scratch space -------------------------------------------

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
[ "$NOFILE" -ge 4096 ] || die "ulimit -n is $NOFILE; need >= 4096"

for p in $SYN_PORT $SYN_ADMIN $NGX_PORT $FLOOR_PORT; do
	if ss -Htln "sport = :$p" | grep -q .; then
		die "port $p is in use (set BENCH_PORT_BASE)"
	fi
done

T=$(mktemp -d /tmp/bench-static.XXXXXX)
chmod 755 "$T"
rm -rf "$OUT"
mkdir -p "$OUT/runs" "$OUT/cache"
RUNS=$ROOT/$OUT/runs
CACHE=$ROOT/$OUT/cache
TSV=$ROOT/$OUT/results.tsv
SYSC=$ROOT/$OUT/syscalls.tsv
NOTES=$ROOT/$OUT/notes.txt
: >"$NOTES"
printf 'size\tserver\tstatus\trps\tp50_ms\tp99_ms\tuser_us\tsys_us\ttotal_us\thwm_kib\terrors\tothers_pct\tsteal_pct\tbytes_per_req\twrk_us\textra\n' >"$TSV"
printf 'server\tsize\trequests\tsyscalls\tper_request\ttop\n' >"$SYSC"

FLOOR_BIN=$ROOT/$OUT/floor
case " $SERVERS " in
*" floor "*)
	log "gcc floor.c"
	gcc -std=c11 -O2 -Wall -Wextra -o "$FLOOR_BIN" native/bench/static/floor.c -luring >&2 ||
		die "building native/bench/static/floor.c failed"
	;;
esac

PIDS=()
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
trap cleanup EXIT

# The files, in a directory every user can read (synapserve runs as the
# current user, nginx's worker as root or the current user).
WWW=$T/www
mkdir -p "$WWW"
head -c 1024 /dev/urandom | base64 -w 0 | head -c 1024 >"$WWW/1k"
head -c 1048576 /dev/urandom >"$WWW/1m"
chmod 755 "$WWW"
chmod 644 "$WWW/1k" "$WWW/1m"
file_bytes() { case $1 in 1k) echo 1024 ;; 1m) echo 1048576 ;; esac }

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

now() { date +%s.%N; }

# Wait until other processes use less than IDLE_MAX % of one CPU (sampled
# over 1 s), up to IDLE_WAIT s.  Prints the last figure.  (No server of ours
# runs while it waits.)
wait_quiet() {
	local b0 b1 pct waited=0
	while :; do
		read -r b0 _ < <(machine_ticks)
		sleep 1
		read -r b1 _ < <(machine_ticks)
		pct=$(awk -v d=$((b1 - b0)) -v hz="$HZ" 'BEGIN { p = d * 100 / hz; if (p < 0) p = 0; printf "%.0f", p }')
		waited=$((waited + 1))
		if [ "$pct" -le "$IDLE_MAX" ] || [ "$waited" -ge "$IDLE_WAIT" ] ||
			[ $(($(date +%s) - START_TIME)) -ge "$WAIT_BUDGET" ]; then
			[ "$waited" -gt 1 ] && log "waited ${waited}s for a quiet machine (others: ${pct}% of a CPU)"
			echo "$pct"
			return
		fi
	done
}

wait_http() { # url [size]: until it answers 200 (with that many bytes) (10 s)
	local _i r
	for _i in $(seq 100); do
		kill -0 "$SERVER_PID" 2>/dev/null || break
		r=$(curl -s -o /dev/null --max-time 5 -w '%{http_code} %{size_download}' "$1" || true)
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

# ---- the servers' configurations ---------------------------------------------

syn_conf() { # dir
	mkdir -p "$1"
	cat >"$1/bench.toml" <<EOF
[server]
workers = 1
user = "$(id -un)"
max_connections = 4096
cache_dir = "$CACHE"

[admin]
bind = "127.0.0.1:$SYN_ADMIN"

[log]
level = "warning"
access = "off"

[listeners.http]
bind = "127.0.0.1:$SYN_PORT"

[sites.all]
hosts = ["*"]
[[sites.all.routes]]
path = "/"
static = { root = "$WWW", compress = false }
EOF
}

nginx_conf() { # size dir
	local tune user=""
	mkdir -p "$2/tmp"
	case $1 in
	1k) tune=$NGINX_1K ;;
	1m) tune=$NGINX_1M ;;
	esac
	[ "$(id -u)" = 0 ] && user="user root;"
	cat >"$2/nginx.conf" <<EOF
$user
daemon off;
worker_processes 1;
worker_rlimit_nofile $NOFILE;
pid $2/nginx.pid;
error_log $2/error.log warn;
events { worker_connections 16384; }
http {
    access_log off;
    keepalive_requests 1000000000;
    keepalive_timeout 300s;
    tcp_nodelay on;
    open_file_cache max=16 inactive=600s;
    open_file_cache_valid 600s;
    default_type application/octet-stream;
    client_body_temp_path $2/tmp;
    proxy_temp_path $2/tmp;
    fastcgi_temp_path $2/tmp;
    uwsgi_temp_path $2/tmp;
    scgi_temp_path $2/tmp;
    $tune
    server {
        listen 127.0.0.1:$NGX_PORT backlog=4096;
        root $WWW;
    }
}
EOF
}

# start_server server size dir: sets SERVER_PID, MEASURE_PIDS, MAIN_PID (the
# process whose VmHWM is the server's peak), SERVER_URL
start_server() {
	local d=$3 want
	SERVER_DIR=$d
	want=$(file_bytes "$2")
	case $1 in
	synapserve)
		syn_conf "$d/conf"
		cp "$d/conf/bench.toml" "$RUNS/$2-synapserve.toml"
		# shellcheck disable=SC2086 # SYN_CMD is a command line
		taskset -c "$SERVER_CPU" $SYN_CMD run --config-dir "$d/conf" >"$d/stderr" 2>&1 &
		SERVER_PID=$!
		SERVER_URL=http://127.0.0.1:$SYN_PORT
		PIDS+=("$SERVER_PID")
		wait_http "http://127.0.0.1:$SYN_ADMIN/healthz" || return 1
		;;
	nginx)
		nginx_conf "$2" "$d"
		cp "$d/nginx.conf" "$RUNS/$2-nginx.conf"
		taskset -c "$SERVER_CPU" nginx -p "$d/" -c "$d/nginx.conf" -e "$d/error.log" >"$d/stderr" 2>&1 &
		SERVER_PID=$!
		SERVER_URL=http://127.0.0.1:$NGX_PORT
		PIDS+=("$SERVER_PID")
		;;
	floor)
		local mode=small
		[ "$2" = 1m ] && mode=splice
		echo "$FLOOR_BIN $FLOOR_PORT $WWW/$2 $mode" >"$RUNS/$2-floor.cmd"
		taskset -c "$SERVER_CPU" "$FLOOR_BIN" "$FLOOR_PORT" "$WWW/$2" "$mode" >"$d/stderr" 2>&1 &
		SERVER_PID=$!
		SERVER_URL=http://127.0.0.1:$FLOOR_PORT
		PIDS+=("$SERVER_PID")
		;;
	esac
	wait_http "$SERVER_URL/$2" "$want" || return 1
	# the right bytes, and the head each server sends (bytes per response)
	if ! curl -s --max-time 10 "$SERVER_URL/$2" | cmp -s - "$WWW/$2"; then
		log "$1: the body of /$2 differs from the file"
		return 1
	fi
	curl -s --max-time 10 -o /dev/null -D "$RUNS/$2-$1.head.txt" "$SERVER_URL/$2" || true
	MAIN_PID=$SERVER_PID
	MEASURE_PIDS=("$SERVER_PID")
	if [ "$1" = nginx ]; then
		MAIN_PID=$(pgrep -P "$SERVER_PID" | head -n 1)
		[ -n "$MAIN_PID" ] || return 1
		MEASURE_PIDS+=("$MAIN_PID")
	fi
}

# stop_server: SIGTERM, 15 s to exit, then SIGKILL.  Sets STOP_NOTE.
stop_server() {
	local rc=0
	STOP_NOTE=
	if ! kill -0 "$SERVER_PID" 2>/dev/null; then
		wait "$SERVER_PID" 2>/dev/null || rc=$?
		STOP_NOTE="exited by itself, status $rc"
		if grep -q "stopping (signal)" "$SERVER_DIR/stderr" 2>/dev/null; then
			STOP_NOTE="$STOP_NOTE: it was sent a stop signal, not by this script (another job's cleanup?)"
		fi
		[ "$rc" -gt 128 ] && STOP_NOTE="$STOP_NOTE (SIG$(kill -l $((rc - 128)) 2>/dev/null || echo ?))"
		forget_pid "$SERVER_PID"
		return
	fi
	kill -TERM "$SERVER_PID"
	if ! wait_exit "$SERVER_PID" 15; then
		STOP_NOTE="did not exit within 15 s of SIGTERM; killed"
		kill -KILL "$SERVER_PID" 2>/dev/null || true
	fi
	wait "$SERVER_PID" 2>/dev/null || true
	forget_pid "$SERVER_PID"
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

# "name=count ..." from synapserve's /metrics: io_uring ops by op, and the
# static requests and body bytes (all labels summed), when it has them.
syn_counters() {
	curl -s --max-time 5 "http://127.0.0.1:$SYN_ADMIN/metrics" | awk '
	/^#/ { next }
	/^synapserve_io_uring_ops_total\{/ { n = $0; sub(/^[^"]*"/, "", n); sub(/".*/, "", n); c["op:" n] += $NF }
	/^synapserve_static_requests_total[{ ]/ { c["static_requests"] += $NF }
	/^synapserve_static_bytes_sent_total[{ ]/ { c["static_bytes"] += $NF }
	END { for (k in c) printf "%s=%.0f ", k, c[k] }'
}

crash_report() { # size server dir phase
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

# ---- one measured run ---------------------------------------------------------

measure_once() { # size server: one row into $ROW
	local size=$1 sv=$2
	local d="$T/$size-$sv" url status=ok extra="" others want
	local u1 s1 u2 s2 m1 st1 m2 st2 w1 w2 wu ws hwm c1="" c2=""
	local rps p50 p99 req by err
	want=$(file_bytes "$size")
	rm -rf "$d"
	mkdir -p "$d"
	others=$(wait_quiet)
	RUN_UPTIME=$(awk '{ print $1 }' /proc/uptime)
	log "$size $sv (others before: ${others}% of a CPU)"
	if ! start_server "$sv" "$size" "$d"; then
		stop_server
		cp "$d/stderr" "$RUNS/$size-$sv.stderr" 2>/dev/null || true
		STOP_NOTE="did not start: $STOP_NOTE"
		crash_report "$size" "$sv" "$d" start
		printf '%s\t%s\tno start\t0\t0\t0\t0\t0\t0\t0\t-\t%s\t0\t0\t0\t-\n' "$size" "$sv" "$others" >>"$ROW"
		return
	fi
	url="$SERVER_URL/$size"
	taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${WARMUP}s" "$url" >"$d/wrk-warmup.out" 2>&1 || true
	cp "$d/wrk-warmup.out" "$RUNS/$size-$sv.wrk-warmup.txt"
	if ! kill -0 "$SERVER_PID" 2>/dev/null || ! kill -0 "$MAIN_PID" 2>/dev/null; then
		stop_server
		cp "$d/stderr" "$RUNS/$size-$sv.stderr"
		crash_report "$size" "$sv" "$d" warmup
		read -r rps p50 p99 req by err < <(parse_wrk <"$d/wrk-warmup.out")
		printf '%s\t%s\tcrashed (warm-up)\t%s\t%s\t%s\t0\t0\t0\t0\t%s\t%s\t0\t0\t0\t-\n' \
			"$size" "$sv" "$rps" "$p50" "$p99" "$err" "$others" >>"$ROW"
		return
	fi
	[ "$sv" = synapserve ] && c1=$(syn_counters)
	read -r u1 s1 < <(proc_ticks "${MEASURE_PIDS[@]}")
	read -r m1 st1 < <(machine_ticks)
	w1=$(now)
	/usr/bin/time -f '%U %S' -o "$d/wrk.time" \
		taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$url" >"$d/wrk-timed.out" 2>&1 || true
	w2=$(now)
	read -r m2 st2 < <(machine_ticks)
	cp "$d/wrk-timed.out" "$RUNS/$size-$sv.wrk.txt"
	if ! kill -0 "$SERVER_PID" 2>/dev/null || ! kill -0 "$MAIN_PID" 2>/dev/null; then
		stop_server
		cp "$d/stderr" "$RUNS/$size-$sv.stderr"
		crash_report "$size" "$sv" "$d" timed
		read -r rps p50 p99 req by err < <(parse_wrk <"$d/wrk-timed.out")
		printf '%s\t%s\tcrashed (timed run)\t%s\t%s\t%s\t0\t0\t0\t0\t%s\t-\t-\t0\t0\t-\n' \
			"$size" "$sv" "$rps" "$p50" "$p99" "$err" >>"$ROW"
		return
	fi
	read -r u2 s2 < <(proc_ticks "${MEASURE_PIDS[@]}")
	hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$MAIN_PID/status" 2>/dev/null || echo 0)
	if [ "$sv" = nginx ]; then
		extra="master VmHWM $(awk '/^VmHWM:/ { print $2 }' "/proc/$SERVER_PID/status" 2>/dev/null || echo ?) KiB"
	fi
	if [ "$sv" = floor ]; then
		# its splices run in io-wq workers, threads of its own
		extra="threads at the end of the run: $(awk '/^Threads:/ { print $2 }' "/proc/$SERVER_PID/status" 2>/dev/null || echo ?)"
	fi
	[ "$sv" = synapserve ] && c2=$(syn_counters)
	read -r wu ws <"$d/wrk.time"
	read -r rps p50 p99 req by err < <(parse_wrk <"$d/wrk-timed.out")
	if [ "$sv" = synapserve ] && [ -n "$c2" ] && [ "$req" -gt 0 ]; then
		# per request over the timed run: io_uring ops by op; and how many of
		# wrk's requests synapserve counted as static, when it counts them
		extra=$(awk -v a="$c1" -v b="$c2" -v n="$req" 'BEGIN {
			na = split(a, x, " "); for (i = 1; i <= na; i++) { split(x[i], p, "="); before[p[1]] = p[2] }
			nb = split(b, y, " ")
			for (i = 1; i <= nb; i++) { split(y[i], q, "="); k = q[1]; v = (q[2] - before[k]) / n
				if (k ~ /^op:/) { if (v > 0.005) ops = ops sprintf("%s%s %.2f", (ops ? ", " : ""), substr(k, 4), v) }
				else if (k == "static_requests") st = sprintf("static requests counted %.3f per wrk request", v)
				else if (k == "static_bytes") sb = sprintf("static body bytes/req %.0f", v) }
			s = "io_uring ops/req: " (ops ? ops : "none counted")
			if (st) s = s "; " st
			if (sb) s = s "; " sb
			print s }')
	fi
	stop_server
	cp "$d/stderr" "$RUNS/$size-$sv.stderr"
	[ -n "$STOP_NOTE" ] && echo "$size $sv: on SIGTERM after the run: $STOP_NOTE" >>"$NOTES"
	[ "$err" != - ] && status="errors"
	[ "$req" -gt 0 ] || status="no requests"
	# (wrk prints the bytes read with 3 significant digits or so)
	awk -v r="$req" -v b="$by" -v want="$want" 'BEGIN { exit !(r > 0 && b / r < want * 0.995) }' &&
		status="short bodies"
	awk -v \
		size="$size" -v sv="$sv" -v st="$status" -v rps="$rps" -v p50="$p50" -v p99="$p99" \
		-v req="$req" -v du=$((u2 - u1)) -v ds=$((s2 - s1)) -v hz="$HZ" -v hwm="$hwm" -v err="$err" \
		-v busy=$((m2 - m1)) -v steal=$((st2 - st1)) -v wu="$wu" -v ws="$ws" \
		-v wall="$(awk -v a="$w1" -v b="$w2" 'BEGIN { print b - a }')" -v by="$by" -v extra="$extra" 'BEGIN {
		n = (req > 0) ? req : 1
		us = du * 1e6 / hz / n; ss = ds * 1e6 / hz / n
		ours = du + ds + (wu + ws) * hz
		oth = (busy - ours) * 100 / hz / wall; if (oth < 0) oth = 0
		printf "%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%.2f\t%.2f\t%s\t%s\t%.0f\t%.0f\t%.0f\t%.2f\t%s\n",
			size, sv, st, rps, p50, p99, us, ss, us + ss, hwm, err, oth,
			steal * 100 / hz / wall, by / n, (wu + ws) * 1e6 / n, (extra ? extra : "-")
	}' >>"$ROW"
	tail -n 1 "$ROW" | awk -F'\t' '{ printf "bench_static:   %s %s: %s req/s, p50 %s ms, p99 %s ms, CPU %s+%s us/req, VmHWM %s KiB, errors %s, others %s%%\n", $1, $2, $4, $5, $6, $7, $8, $10, $11, $12 }' >&2
}

# run_one size server: measure_once, and once more when other processes were
# busy during the run (while the time budget allows); the quieter row goes
# into the table.
run_one() {
	local a oth st best="" best_oth=1000000
	for a in 1 2; do
		ROW="$T/row.$1.$2.$a"
		: >"$ROW"
		measure_once "$1" "$2"
		[ -s "$ROW" ] || continue
		IFS=$'\t' read -r _ _ st _ _ _ _ _ _ _ _ oth _ <"$ROW"
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

# ---- syscalls per request (strace -c) ------------------------------------------

strace_one() { # server size
	local sv=$1 size=$2 d="$T/strace-$2-$1" sp req total top
	mkdir -p "$d"
	wait_quiet >/dev/null
	log "syscalls: $size $sv"
	if ! start_server "$sv" "$size" "$d"; then
		stop_server
		printf '%s\t%s\t0\t0\t-\tdid not start\n' "$sv" "$size" >>"$SYSC"
		return
	fi
	taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${WARMUP}s" "$SERVER_URL/$size" >/dev/null 2>&1 || true
	if ! kill -0 "$MAIN_PID" 2>/dev/null; then
		stop_server
		printf '%s\t%s\t0\t0\t-\tdied in warm-up (%s)\n' "$sv" "$size" "$STOP_NOTE" >>"$SYSC"
		return
	fi
	strace -c -f -q -p "$MAIN_PID" -o "$d/strace.txt" 2>"$d/strace.err" &
	sp=$!
	sleep 1
	taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d3s "$SERVER_URL/$size" >"$d/wrk.out" 2>&1 || true
	kill -INT "$sp" 2>/dev/null || true
	wait "$sp" 2>/dev/null || true
	cp "$d/strace.txt" "$RUNS/strace-$size-$sv.txt" 2>/dev/null || true
	cp "$d/wrk.out" "$RUNS/strace-$size-$sv.wrk.txt"
	read -r _ _ _ req _ _ < <(parse_wrk <"$d/wrk.out")
	total=$(awk '$NF == "total" { print $4 }' "$d/strace.txt" 2>/dev/null)
	top=$(awk '/^-/ { dash++; next } dash == 1 && NF >= 5 { printf "%s%s %s", (n++ ? ", " : ""), $NF, $4 }' "$d/strace.txt" 2>/dev/null | cut -c1-200)
	stop_server
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$sv" "$size" "${req:-0}" "${total:-0}" \
		"$(awk -v t="${total:-0}" -v r="${req:-0}" 'BEGIN { if (r > 0) printf "%.2f", t / r; else print "-" }')" \
		"${top:--}" >>"$SYSC"
}

# ---- the run -------------------------------------------------------------------

so_sum() { cat appliance/synapserve/_native*.so 2>/dev/null | sha256sum | cut -c1-12; }
SO_SUM=$(so_sum)
UPTIME_START=$(uptime)
log "start: $UPTIME_START"
for size in $SIZES; do
	for sv in $SERVERS; do
		run_one "$size" "$sv"
	done
done
if [ "$STRACE" = 1 ]; then
	for size in $SIZES; do
		for sv in $SERVERS; do
			strace_one "$sv" "$size"
		done
	done
fi
UPTIME_END=$(uptime)
ELAPSED=$(($(date +%s) - START_TIME))

# ---- the report -------------------------------------------------------------------

export BENCH_REPORT_TSV=$TSV BENCH_REPORT_SYSC=$SYSC BENCH_REPORT_NOTES=$NOTES
export BENCH_REPORT_OUT=$ROOT/$OUT FLOOR_1M FLOOR_1K GOAL_1K IDLE_MAX DURATION WARMUP SERVER_CPU LOAD_CPU
export CONNS ELAPSED UPTIME_START UPTIME_END SYN_CMD NGINX_1K NGINX_1M SERVERS
# (wrk -v exits with 1)
VER_NGINX="$(nginx -v 2>&1 | sed 's/.*: //' || true)"
VER_WRK="$(wrk -v 2>&1 | head -n 1 | awk '{ print $2 }' || true)"
VER_SYN=
case " $SERVERS " in
*" synapserve "*)
	# shellcheck disable=SC2086 # SYN_CMD is a command line
	VER_SYN=$($SYN_CMD version 2>/dev/null || true)
	VER_SYN="${VER_SYN%%$'\n'*}"
	;;
esac
GIT_REV="$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- native appliance 2>/dev/null || echo ' (+ uncommitted changes in native/ or appliance/)')"
KERNEL="$(uname -r)"
CPU_MODEL="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
NCPU="$(nproc)"
export VER_NGINX VER_WRK VER_SYN GIT_REV KERNEL CPU_MODEL NCPU
python3 "$ROOT/native/bench/static/report.py"
