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

BENCH_NAME=bench_static
# shellcheck source=SCRIPTDIR/../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

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

for s in $SIZES; do
	case $s in 1k | 1m) ;; *) die "unknown size $s (1k or 1m)" ;; esac
done
for s in $SERVERS; do
	case $s in synapserve | nginx | floor) ;; *) die "unknown server $s (synapserve, nginx or floor)" ;; esac
done

# ---- what is needed, installed when absent ---------------------------------

need_nginx
need_pkg wrk curl
if [ "$STRACE" = 1 ]; then need_cmd strace; fi
need_file -x /usr/bin/time time
case " $SERVERS " in
*" floor "*)
	need_cmd gcc
	need_file -f /usr/include/liburing.h liburing-dev
	;;
esac
install_missing

case " $SERVERS " in
*" synapserve "*)
	build_native
	[ "$SYN_CMD" != .venv/bin/synapserve ] || [ -x .venv/bin/synapserve ] ||
		die ".venv/bin/synapserve missing: run make native"
	;;
esac

# ---- limits, ports, scratch space -------------------------------------------

raise_nofile
check_ports "$SYN_PORT" "$SYN_ADMIN" "$NGX_PORT" "$FLOOR_PORT"

scratch bench-static cache
CACHE=$ROOT/$OUT/cache
SYSC=$ROOT/$OUT/syscalls.tsv
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

# The files, in a directory every user can read (synapserve runs as the
# current user, nginx's worker as root or the current user).
WWW=$T/www
mkdir -p "$WWW"
head -c 1024 /dev/urandom | base64 -w 0 | head -c 1024 >"$WWW/1k"
head -c 1048576 /dev/urandom >"$WWW/1m"
chmod 755 "$WWW"
chmod 644 "$WWW/1k" "$WWW/1m"

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

# start_target server size dir (see lib.sh)
start_target() {
	local d=$3
	TARGET_DIR=$d
	case $1 in
	synapserve)
		syn_conf "$d/conf"
		cp "$d/conf/bench.toml" "$RUNS/$2-synapserve.toml"
		# shellcheck disable=SC2086 # SYN_CMD is a command line
		taskset -c "$SERVER_CPU" $SYN_CMD run --config-dir "$d/conf" >"$d/stderr" 2>&1 &
		TARGET_PID=$!
		TARGET_URL=http://127.0.0.1:$SYN_PORT
		PIDS+=("$TARGET_PID")
		wait_http "http://127.0.0.1:$SYN_ADMIN/healthz" "" "$TARGET_PID" || return 1
		;;
	nginx)
		nginx_conf "$2" "$d"
		cp "$d/nginx.conf" "$RUNS/$2-nginx.conf"
		taskset -c "$SERVER_CPU" nginx -p "$d/" -c "$d/nginx.conf" -e "$d/error.log" >"$d/stderr" 2>&1 &
		TARGET_PID=$!
		TARGET_URL=http://127.0.0.1:$NGX_PORT
		PIDS+=("$TARGET_PID")
		;;
	floor)
		local mode=small
		[ "$2" = 1m ] && mode=splice
		echo "$FLOOR_BIN $FLOOR_PORT $WWW/$2 $mode" >"$RUNS/$2-floor.cmd"
		taskset -c "$SERVER_CPU" "$FLOOR_BIN" "$FLOOR_PORT" "$WWW/$2" "$mode" >"$d/stderr" 2>&1 &
		TARGET_PID=$!
		TARGET_URL=http://127.0.0.1:$FLOOR_PORT
		PIDS+=("$TARGET_PID")
		;;
	esac
	wait_http "$TARGET_URL/$2" "$(size_bytes "$2")" "$TARGET_PID" || return 1
	# the right bytes, and the head each server sends (bytes per response)
	if ! curl -s --max-time 10 "$TARGET_URL/$2" | cmp -s - "$WWW/$2"; then
		log "$1: the body of /$2 differs from the file"
		return 1
	fi
	curl -s --max-time 10 -o /dev/null -D "$RUNS/$2-$1.head.txt" "$TARGET_URL/$2" || true
	target_pids "$1"
}

# "name=count ..." from synapserve's /metrics: io_uring ops by op, and the
# static requests and body bytes (all labels summed), when it has them.
syn_counters() {
	syn_metrics | awk '
	/^#/ { next }
	/^synapserve_io_uring_ops_total\{/ { n = $0; sub(/^[^"]*"/, "", n); sub(/".*/, "", n); c["op:" n] += $NF }
	/^synapserve_static_requests_total[{ ]/ { c["static_requests"] += $NF }
	/^synapserve_static_bytes_sent_total[{ ]/ { c["static_bytes"] += $NF }
	END { for (k in c) printf "%s=%.0f ", k, c[k] }'
}

# ---- one measured run ---------------------------------------------------------

measure_once() { # size server: one row into $ROW
	local size=$1 sv=$2
	local d="$T/$size-$sv" status extra c1="" c2=""
	local rps p50 p99 req by err us ss tot oth steal bpr wus
	rm -rf "$d"
	mkdir -p "$d"
	run_begin "$size" "$sv"
	if ! start_target "$sv" "$size" "$d"; then
		start_failed "$size" "$sv" "$d"
		printf '%s\t%s\tno start\t0\t0\t0\t0\t0\t0\t0\t-\t%s\t0\t0\t0\t-\n' "$size" "$sv" "$OTHERS" >>"$ROW"
		return
	fi
	wrk_cmd "$CONNS" "$WARMUP" "$TARGET_URL/$size"
	warmup_run "$d" "$size-$sv"
	if ! target_alive; then
		crashed "$size" "$sv" "$d" warmup
		read -r rps p50 p99 req by err < <(parse_wrk <"$d/wrk-warmup.out")
		printf '%s\t%s\tcrashed (warm-up)\t%s\t%s\t%s\t0\t0\t0\t0\t%s\t%s\t0\t0\t0\t-\n' \
			"$size" "$sv" "$rps" "$p50" "$p99" "$err" "$OTHERS" >>"$ROW"
		return
	fi
	[ "$sv" = synapserve ] && c1=$(syn_counters)
	wrk_cmd "$CONNS" "$DURATION" "$TARGET_URL/$size" --latency
	timed_run "$d" "$size-$sv"
	if ! target_alive; then
		crashed "$size" "$sv" "$d" timed
		read -r rps p50 p99 req by err < <(parse_wrk <"$d/wrk-timed.out")
		printf '%s\t%s\tcrashed (timed run)\t%s\t%s\t%s\t0\t0\t0\t0\t%s\t-\t-\t0\t0\t-\n' \
			"$size" "$sv" "$rps" "$p50" "$p99" "$err" >>"$ROW"
		return
	fi
	timed_end "$sv"
	extra=$EXTRA
	if [ "$sv" = floor ]; then
		# its splices run in io-wq workers, threads of its own
		extra="threads at the end of the run: $(awk '/^Threads:/ { print $2 }' "/proc/$TARGET_PID/status" 2>/dev/null || echo ?)"
	fi
	[ "$sv" = synapserve ] && c2=$(syn_counters)
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
	stop_after "$size" "$sv" "$d"
	status=$(run_status "$err" "$req" "$by" "$size")
	read -r us ss tot oth steal bpr wus _ < <(run_figures "$d" "$req" "$by")
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
		"$size" "$sv" "$status" "$rps" "$p50" "$p99" "$us" "$ss" "$tot" "$HWM" \
		"$err" "$oth" "$steal" "$bpr" "$wus" "${extra:--}" >>"$ROW"
	tail -n 1 "$ROW" | awk -F'\t' '{ printf "bench_static:   %s %s: %s req/s, p50 %s ms, p99 %s ms, CPU %s+%s us/req, VmHWM %s KiB, errors %s, others %s%%\n", $1, $2, $4, $5, $6, $7, $8, $10, $11, $12 }' >&2
}

# ---- the run -------------------------------------------------------------------

bench_begin
for size in $SIZES; do
	for sv in $SERVERS; do
		run_one "$size" "$sv"
	done
done
# syscalls per request
if [ "$STRACE" = 1 ]; then
	for size in $SIZES; do
		for sv in $SERVERS; do
			strace_one "$sv" "$size" "$CONNS" "$size-$sv" "$size $sv" "$sv"$'\t'"$size"
		done
	done
fi
bench_end

# ---- the report -------------------------------------------------------------------

export_report_env
export BENCH_REPORT_SYSC=$SYSC FLOOR_1M FLOOR_1K GOAL_1K SERVER_CPU CONNS NGINX_1K NGINX_1M SERVERS
VER_SYN=
case " $SERVERS " in *" synapserve "*) VER_SYN=$(syn_version) ;; esac
export VER_SYN
python3 "$ROOT/native/bench/static/report.py"
