#!/usr/bin/env bash
# native/bench/proxy/bench_rss.sh - peak memory of synapserve and nginx in
# bench_proxy.sh's scenario "1 KiB responses at 1,000 keep-alive
# connections", without the rest of that benchmark (`make bench-rss`: about
# 20 s, light on the machine).
#
# The backend, the proxies' configurations and how they are started are
# bench_proxy.sh's (lib.sh's start_backend, targets.sh).  Per proxy: start it,
# read its memory once it answers, load it with wrk (1 thread, BENCH_CONNS
# connections, /1k) for a warm-up and a measured run as bench_proxy.sh does
# (synapserve's /metrics read after each, as there), read its memory again.
# For synapserve also what Python alone costs: the peak RSS of its
# interpreter running `pass`, and after importing what `synapserve run`
# imports before it reads the config.
#
# Figures, in KiB, from /proc/PID/status and /proc/PID/smaps_rollup: VmHWM
# (peak RSS, what bench_proxy.sh reports: for nginx its worker's), VmRSS,
# RssAnon (heap, stacks, buffers), RssFile (mapped code and data), Pss (the
# RSS with pages shared between processes divided among them: nginx's master
# and worker share most of their code).  nginx's rows: master, worker, and
# the two summed.  The mappings with the most RSS at the end of each run go
# to OUT/runs/<proxy>.smaps.txt (all of them: <proxy>.smaps; synapserve's
# /status: synapserve.status.json).
#
# Output: OUT/results.md (printed) and OUT/runs/.  Environment: BENCH_CONNS
# (1000), BENCH_WARMUP (2 s), BENCH_DURATION (3 s), BENCH_PROXIES
# ("synapserve nginx"), BENCH_PORT_BASE (27200; 4 ports from there),
# BENCH_PROXY_CPU (0), BENCH_LOAD_CPU (1), BENCH_SYN_CMD
# (.venv/bin/synapserve), BENCH_NO_BUILD (1: no `make native`), BENCH_OUT
# (build/bench-rss).
set -euo pipefail

BENCH_NAME=bench_rss
# shellcheck source=SCRIPTDIR/../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

CONNS=${BENCH_CONNS:-1000}
WARMUP=${BENCH_WARMUP:-2}
DURATION=${BENCH_DURATION:-3}
PROXIES=${BENCH_PROXIES:-"synapserve nginx"}
PORT_BASE=${BENCH_PORT_BASE:-27200}
PROXY_CPU=${BENCH_PROXY_CPU:-0}
LOAD_CPU=${BENCH_LOAD_CPU:-1}
SYN_CMD=${BENCH_SYN_CMD:-.venv/bin/synapserve}
OUT=${BENCH_OUT:-build/bench-rss}
SYN_KEEPALIVE=1024

BACKEND_PORT=$PORT_BASE
SYN_PORT=$((PORT_BASE + 1))
SYN_ADMIN=$((PORT_BASE + 2))
NGX_PORT=$((PORT_BASE + 3))

for px in $PROXIES; do
	case $px in
	synapserve | nginx) ;;
	*) die "unknown proxy $px (synapserve or nginx)" ;;
	esac
done

need_nginx
need_pkg wrk curl
need_file -x /usr/bin/time time
install_missing
build_native

raise_nofile "$CONNS connections"
check_ports "$BACKEND_PORT" "$SYN_PORT" "$SYN_ADMIN" "$NGX_PORT"
scratch bench-rss
start_backend
# shellcheck source=SCRIPTDIR/targets.sh
. "$ROOT/native/bench/proxy/targets.sh"

# ---- measuring ------------------------------------------------------------------

ROWS=()

# mem pid: "VmHWM VmRSS RssAnon RssFile Pss" in KiB
mem() {
	awk '/^(VmHWM|VmRSS|RssAnon|RssFile):/ { v[$1] = $2 }
		END { printf "%d %d %d %d ", v["VmHWM:"], v["VmRSS:"], v["RssAnon:"], v["RssFile:"] }' \
		"/proc/$1/status"
	awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup"
}

row() { # proxy stage what figures...
	ROWS+=("$(printf '| %s | %s | %s | %s | %s | %s | %s | %s |' "$@")")
}

# row_mem proxy stage: the target's memory now (nginx: master, worker, both)
row_mem() {
	local m w
	if [ "$1" = nginx ]; then
		read -r -a m < <(mem "$TARGET_PID")
		read -r -a w < <(mem "$MAIN_PID")
		row "$1" "$2" master "${m[@]}"
		row "$1" "$2" worker "${w[@]}"
		row "$1" "$2" "master + worker" $((m[0] + w[0])) $((m[1] + w[1])) $((m[2] + w[2])) \
			$((m[3] + w[3])) $((m[4] + w[4]))
	else
		read -r -a m < <(mem "$TARGET_PID")
		row "$1" "$2" process "${m[@]}"
	fi
}

# smaps_top pid: its mappings with the most RSS, summed by file ([anon] for
# anonymous memory, [heap], [stack])
smaps_top() {
	awk '/^[0-9a-f]+-[0-9a-f]+ / { name = (NF >= 6) ? $6 : "[anon]"; next }
		/^Rss:/ { rss[name] += $2 }
		END { for (n in rss) if (rss[n] >= 64) printf "%8d KiB  %s\n", rss[n], n }' \
		"/proc/$1/smaps" | sort -rn
}

# The interpreter synapserve runs on, with its options: SYN_CMD's #! line.
syn_python() {
	local f line
	# shellcheck disable=SC2086 # SYN_CMD is a command line
	set -- $SYN_CMD
	f=$(command -v "$1") || return 1
	read -r line <"$f" || return 1
	[[ $line == '#!'* ]] || return 1
	echo "${line#\#!}"
}

python_rows() { # the peak RSS of SYN_CMD's interpreter alone
	local py hwm
	py=$(syn_python) || {
		log "$SYN_CMD is not a Python script: no interpreter rows"
		return 0
	}
	# shellcheck disable=SC2086 # py is a command line
	hwm=$(/usr/bin/time -f %M $py -c pass 2>&1 >/dev/null | tail -n 1)
	row synapserve "interpreter: \`$py -c pass\`" exit "$hwm" - - - -
	# shellcheck disable=SC2086
	hwm=$(/usr/bin/time -f %M $py -c 'import synapserve.cli, synapserve.supervisor' 2>&1 >/dev/null |
		tail -n 1)
	row synapserve "after the imports of \`synapserve run\`" exit "$hwm" - - - -
}

measure() { # proxy
	local px=$1 d="$T/$1"
	mkdir -p "$d"
	log "$px: start"
	start_target "$px" "1k-$CONNS" "$d" || die "$px did not start: $(tail -n 20 "$d/stderr")"
	row_mem "$px" "started, answered one request"
	wrk_cmd "$CONNS" "$WARMUP" "$TARGET_URL/1k"
	"${WRK_CMD[@]}" >"$RUNS/$px.wrk-warmup.txt" 2>&1 || true
	# bench_proxy.sh reads synapserve's /metrics here and after the run
	[ "$px" = synapserve ] && syn_metrics >/dev/null
	wrk_cmd "$CONNS" "$DURATION" "$TARGET_URL/1k"
	"${WRK_CMD[@]}" >"$RUNS/$px.wrk.txt" 2>&1 || true
	target_alive || die "$px died under load: $(tail -n 20 "$d/stderr")"
	[ "$px" = synapserve ] && syn_metrics >/dev/null
	row_mem "$px" "after ${WARMUP} s + ${DURATION} s of wrk, $CONNS connections"
	read -r rps _ _ req _ err < <(parse_wrk <"$RUNS/$px.wrk.txt")
	log "$px: $rps req/s, $req requests, errors: $err"
	[ "$err" = - ] || echo "$px: wrk reported errors ($err)" >>"$NOTES"
	smaps_top "$MAIN_PID" >"$RUNS/$px.smaps.txt"
	cp "/proc/$MAIN_PID/smaps" "$RUNS/$px.smaps"
	[ "$px" = synapserve ] && curl -s --max-time 5 "http://127.0.0.1:$SYN_ADMIN/status" >"$RUNS/$px.status.json"
	[ "$px" = nginx ] && smaps_top "$TARGET_PID" >"$RUNS/nginx-master.smaps.txt"
	stop_target
	cp "$d/stderr" "$RUNS/$px.stderr"
}

for px in $PROXIES; do
	[ "$px" = synapserve ] && python_rows
	measure "$px"
done

{
	echo "# Peak RSS at $CONNS connections ($(date '+%Y-%m-%d %H:%M'), git $(git rev-parse --short HEAD))"
	echo
	echo "bench_proxy.sh's 1 KiB scenario, wrk -t1 -c$CONNS, ${WARMUP} s warm-up + ${DURATION} s."
	echo "synapserve: \`$SYN_CMD\`; $(nginx -v 2>&1 | sed 's/.*: //'). KiB."
	echo
	echo "| proxy | stage | process | VmHWM | VmRSS | RssAnon | RssFile | Pss |"
	echo "|---|---|---|---:|---:|---:|---:|---:|"
	printf '%s\n' "${ROWS[@]}"
	echo
	sed 's/^/- /' "$NOTES"
} >"$OUT/results.md"
cat "$OUT/results.md"
