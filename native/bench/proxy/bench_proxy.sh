#!/usr/bin/env bash
# native/bench/proxy/bench_proxy.sh - synapserve against Debian's nginx and
# HAProxy as reverse proxies, and a minimal io_uring relay as the floor, in
# one run (`make bench`).
#
# One backend for all: an nginx (1 worker) serving /1k and /1m from files,
# pinned to BENCH_LOAD_CPU together with wrk.  Each proxy runs with one worker,
# pinned to BENCH_PROXY_CPU, started fresh for each scenario, in the
# configuration an expert would deploy for it:
#   synapserve  workers = 1, access log off, upstream keepalive 1024
#   nginx       worker_processes 1, upstream keepalive 1024 (+ keepalive_requests,
#               HTTP/1.1, Connection ""), access_log off; for 1 MiB unbuffered
#               through a 256 KiB buffer (see nginx_conf below)
#   haproxy     nbthread 1, http-reuse always, no logging; for 1 MiB
#               option splice-response/splice-request and 1 MiB pipes
#   relay       relay.c (built here with gcc -O2 into OUT/relay): the issue's
#               "deliberately minimal io_uring relay", one thread, one
#               upstream connection per client connection, bytes forwarded
#               without parsing: for 1 KiB recv/send through the ring
#               (`copy`), for 1 MiB upstream -> client by splice(2) through a
#               1 MiB pipe per connection (`splice`).  The goal for CPU per
#               1 KiB request is judged against its figure from the same run
#               (the issue's figure was measured on another day).
# Scenarios: 1 KiB and 1 MiB responses at 256 connections, 1 KiB at 1000.
# Per proxy and scenario: a warm-up run, then a timed wrk run (1 thread,
# --latency); around the timed run it reads the proxy's CPU time (whole
# process: every thread, and nginx's master + worker) from /proc/PID/stat,
# its peak RSS (VmHWM), and the backend's stub_status accepts (= upstream
# connections the proxy opened).  It also measures how much CPU other
# processes on the machine used during each run, and waits (up to
# BENCH_IDLE_WAIT s) for the machine to be quiet before each run.
# Last, syscalls per request of each proxy at 1 KiB / 256 connections
# (strace -c -f, a short run of its own; strace slows the proxies, so those
# runs are not in the tables).
#
# Output: build/bench-proxy/results.md (printed), results.tsv, doc-section.md
# (the section for docs/benchmarks.md), runs/ (every wrk output, proxy stderr,
# config), relay (the binary).  Installs nginx, haproxy and wrk (and gcc and
# liburing-dev for the relay) when missing (root or sudo).
#
# Environment: BENCH_DURATION (10 s), BENCH_WARMUP (2 s), BENCH_PROXY_CPU (0),
# BENCH_LOAD_CPU (1), BENCH_SCENARIOS ("1k-256 1m-256 1k-1000"),
# BENCH_PROXIES ("synapserve nginx haproxy relay"), BENCH_STRACE (1; 0 skips
# the syscall counts), BENCH_PORT_BASE (27100; uses 6 ports from there),
# BENCH_IDLE_MAX (15: % of one CPU used by other processes above which a run
# waits, and is marked), BENCH_IDLE_WAIT (20 s at most per run),
# BENCH_WAIT_BUDGET (270 s: no more waiting after the bench has run this
# long), BENCH_RETRY_BUDGET (200 s: a run during which others were busy is
# repeated once while the bench has run for less than this), BENCH_SYN_KEEPALIVE (1024),
# BENCH_FLOOR_1K_US (12: the issue's CPU us per 1 KiB request of a minimal
# io_uring relay, measured on another day; the goal uses it only when the
# relay is not run), BENCH_NO_BUILD (1: do not run `make native`), BENCH_OUT,
# BENCH_SYN_CMD (.venv/bin/synapserve: the command that runs synapserve);
# BENCH_NGINX_1M and BENCH_HAPROXY_1M_GLOBAL replace the peers' 1 MiB tuning
# (to try other variants), BENCH_RELAY_1M (splice) the relay's mode for 1 MiB
# (copy: recv/send through its 16 KiB buffers, as for 1 KiB).
set -euo pipefail

BENCH_NAME=bench_proxy
# shellcheck source=SCRIPTDIR/../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
PROXY_CPU=${BENCH_PROXY_CPU:-0}
LOAD_CPU=${BENCH_LOAD_CPU:-1}
SCENARIOS=${BENCH_SCENARIOS:-"1k-256 1m-256 1k-1000"}
PROXIES=${BENCH_PROXIES:-"synapserve nginx haproxy relay"}
STRACE=${BENCH_STRACE:-1}
PORT_BASE=${BENCH_PORT_BASE:-27100}
IDLE_MAX=${BENCH_IDLE_MAX:-15}
IDLE_WAIT=${BENCH_IDLE_WAIT:-20}
RETRY_BUDGET=${BENCH_RETRY_BUDGET:-200}
WAIT_BUDGET=${BENCH_WAIT_BUDGET:-270}
SYN_KEEPALIVE=${BENCH_SYN_KEEPALIVE:-1024}
FLOOR_1K=${BENCH_FLOOR_1K_US:-12}
OUT=${BENCH_OUT:-build/bench-proxy}
SYN_CMD=${BENCH_SYN_CMD:-.venv/bin/synapserve}
RELAY_1M=${BENCH_RELAY_1M:-splice}

BACKEND_PORT=$PORT_BASE
SYN_PORT=$((PORT_BASE + 1))
SYN_ADMIN=$((PORT_BASE + 2))
NGX_PORT=$((PORT_BASE + 3))
HAP_PORT=$((PORT_BASE + 4))
RELAY_PORT=$((PORT_BASE + 5))

for px in $PROXIES; do
	case $px in
	synapserve | nginx | haproxy | relay) ;;
	*) die "unknown proxy $px (synapserve, nginx, haproxy or relay)" ;;
	esac
done
case $RELAY_1M in copy | splice) ;; *) die "BENCH_RELAY_1M: copy or splice, not $RELAY_1M" ;; esac

# ---- what is needed, installed when absent ---------------------------------

need_nginx
need_pkg haproxy wrk curl
if [ "$STRACE" = 1 ]; then need_cmd strace; fi
need_file -x /usr/bin/time time
case " $PROXIES " in
*" relay "*)
	need_cmd gcc
	need_file -f /usr/include/liburing.h liburing-dev
	;;
esac
install_missing

build_native
[ -x .venv/bin/synapserve ] || die ".venv/bin/synapserve missing: run make native"

# ---- limits, ports, scratch space -------------------------------------------

raise_nofile "1000 connections"
check_ports "$BACKEND_PORT" "$SYN_PORT" "$SYN_ADMIN" "$NGX_PORT" "$HAP_PORT" "$RELAY_PORT"

scratch bench-proxy
SYSC=$ROOT/$OUT/syscalls.tsv
printf 'scenario\tproxy\tstatus\trps\tp50_ms\tp99_ms\tuser_us\tsys_us\ttotal_us\thwm_kib\tup_new_timed\tup_new_warm\terrors\tothers_pct\tsteal_pct\tbytes_per_req\twrk_us\tbackend_us\textra\n' >"$TSV"
printf 'proxy\trequests\tsyscalls\tper_request\ttop\n' >"$SYSC"

RELAY_BIN=$ROOT/$OUT/relay
case " $PROXIES " in
*" relay "*)
	log "gcc relay.c"
	gcc -std=c11 -O2 -Wall -Wextra -o "$RELAY_BIN" native/bench/proxy/relay.c -luring >&2 ||
		die "building native/bench/proxy/relay.c failed"
	;;
esac

# ---- the backend ------------------------------------------------------------

start_backend

# ---- the proxies: configurations and start_target ---------------------------

# shellcheck source=SCRIPTDIR/targets.sh
. "$ROOT/native/bench/proxy/targets.sh"

# ---- one measured run ---------------------------------------------------------

measure_once() { # scenario proxy: one row into $ROW
	local sc=$1 px=$2 size=${1%%-*} conns=${1##*-}
	local d="$T/$sc-$px" status extra acc0 acc1 acc2 ops1="" ops2=""
	local rps p50 p99 req by err us ss tot oth steal bpr wus bkus
	mkdir -p "$d"
	run_begin "$sc" "$px"
	if ! start_target "$px" "$sc" "$d"; then
		start_failed "$sc" "$px" "$d"
		printf '%s\t%s\tno start\t0\t0\t0\t0\t0\t0\t0\t0\t0\t-\t%s\t0\t0\t0\t0\t-\n' "$sc" "$px" "$OTHERS" >>"$ROW"
		return
	fi
	acc0=$(backend_accepts)
	wrk_cmd "$conns" "$WARMUP" "$TARGET_URL/$size"
	warmup_run "$d" "$sc-$px"
	if ! target_alive; then
		crashed "$sc" "$px" "$d" warmup
		read -r rps p50 p99 req by err < <(parse_wrk <"$d/wrk-warmup.out")
		printf '%s\t%s\tcrashed (warm-up)\t%s\t%s\t%s\t0\t0\t0\t0\t0\t0\t%s\t%s\t0\t0\t0\t0\t-\n' \
			"$sc" "$px" "$rps" "$p50" "$p99" "$err" "$OTHERS" >>"$ROW"
		return
	fi
	acc1=$(backend_accepts)
	[ "$px" = synapserve ] && ops1=$(syn_ops)
	wrk_cmd "$conns" "$DURATION" "$TARGET_URL/$size" --latency
	timed_run "$d" "$sc-$px"
	if ! target_alive; then
		crashed "$sc" "$px" "$d" timed
		read -r rps p50 p99 req by err < <(parse_wrk <"$d/wrk-timed.out")
		printf '%s\t%s\tcrashed (timed run)\t%s\t%s\t%s\t0\t0\t0\t0\t0\t0\t%s\t-\t-\t0\t0\t0\t-\n' \
			"$sc" "$px" "$rps" "$p50" "$p99" "$err" >>"$ROW"
		return
	fi
	timed_end "$px"
	extra=$EXTRA
	if [ "$px" = relay ]; then
		# (io-wq workers would be threads of its own)
		extra="mode $(awk '{ print $NF }' "$RUNS/$sc-relay.cmd" 2>/dev/null); threads at the end of the run: $(awk '/^Threads:/ { print $2 }' "/proc/$TARGET_PID/status" 2>/dev/null || echo ?)"
	fi
	[ "$px" = synapserve ] && ops2=$(syn_ops)
	acc2=$(backend_accepts)
	read -r rps p50 p99 req by err < <(parse_wrk <"$d/wrk-timed.out")
	if [ "$px" = synapserve ] && [ -n "$ops1" ] && [ -n "$ops2" ] && [ "$req" -gt 0 ]; then
		extra=$(ops_per_req "$ops1" "$ops2" "$req")
	fi
	stop_after "$sc" "$px" "$d"
	status=$(run_status "$err" "$req" "$by" "$size")
	read -r us ss tot oth steal bpr wus bkus < <(run_figures "$d" "$req" "$by")
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
		"$sc" "$px" "$status" "$rps" "$p50" "$p99" "$us" "$ss" "$tot" "$HWM" \
		$((acc2 - acc1 - 1)) $((acc1 - acc0 - 1)) "$err" "$oth" "$steal" "$bpr" "$wus" "$bkus" "${extra:--}" >>"$ROW"
	tail -n 1 "$ROW" | awk -F'\t' '{ printf "bench_proxy:   %s %s: %s req/s, p50 %s ms, p99 %s ms, CPU %s+%s us/req, VmHWM %s KiB, new upstream %s, errors %s, others %s%%\n", $1, $2, $4, $5, $6, $7, $8, $10, $11, $13, $14 }' >&2
}

# ---- the run -------------------------------------------------------------------

bench_begin
for sc in $SCENARIOS; do
	case $sc in 1k-* | 1m-*) ;; *) die "unknown scenario $sc (1k-N or 1m-N)" ;; esac
	for px in $PROXIES; do
		run_one "$sc" "$px"
	done
done
# syscalls per request, 1 KiB at 256 connections
if [ "$STRACE" = 1 ]; then
	for px in $PROXIES; do
		strace_one "$px" 1k-256 256 "$px" "$px" "$px"
	done
fi
bench_end

# ---- the report -------------------------------------------------------------------

export_report_env
export BENCH_REPORT_SYSC=$SYSC FLOOR_1K PROXY_CPU SYN_KEEPALIVE PROXIES RELAY_1M
VER_HAPROXY="$(haproxy -v 2>&1 | head -n 1 | awk '{ print $3 }' || true)"
VER_SYN=$(syn_version)
export VER_HAPROXY VER_SYN
python3 "$ROOT/native/bench/proxy/report.py"
