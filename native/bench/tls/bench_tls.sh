#!/usr/bin/env bash
# native/bench/tls/bench_tls.sh - TLS termination: synapserve against
# Debian's nginx and HAProxy, each terminating TLS 1.3 in front of the same
# plain-HTTP backend, in one run (`make bench`, issue 6).
#
# One backend for all, as in bench_proxy.sh: an nginx (1 worker) serving /1k
# and /1m from files, pinned to BENCH_LOAD_CPU together with wrk.  Each proxy
# runs with one worker, pinned to BENCH_PROXY_CPU, started fresh for each
# scenario, with one self-signed ECDSA P-256 certificate (made here with the
# openssl CLI into OUT/cert/), in the TLS configuration an expert would
# deploy for it:
#   synapserve  workers = 1, a listener with tls = { certificates = [...],
#               min_version = "1.3" }, access log off, upstream keepalive 1024
#   nginx       worker_processes 1, ssl_protocols TLSv1.3, ssl_session_cache
#               shared:SSL:10m (tickets on, the default), upstream keepalive
#               1024, proxy_http_version 1.1, Connection "", access_log off;
#               for 1 MiB unbuffered through a 256 KiB buffer (as bench_proxy)
#   haproxy     nbthread 1, bind ... ssl crt ... ssl-min-ver TLSv1.3 alpn
#               http/1.1, http-reuse always, no logging
# Kernel TLS is used by none of them (synapserve does not use it yet, and
# the peers are not configured for it): every byte is encrypted by OpenSSL in
# user space, and the report says so.
# Scenarios (BENCH_SCENARIOS):
#   1k-N, 1m-N  TLS keep-alive requests for 1 KiB / 1 MiB responses over N
#               connections (each connection one handshake, at the start).
#   hs-N        new TLS connections: `Connection: close`, so every 1 KiB
#               request opens a connection with a full handshake.  wrk on its
#               own would resume its previous TLS 1.3 session (it keeps the
#               session in its SSL object across reconnects), so wrk runs
#               with wrk_tls.so (LD_PRELOAD, built here with gcc) that drops
#               the session before each handshake, and counts the full and
#               resumed handshakes.
#   resume-N    the same with wrk as it is: every connection resumes the
#               session from the server's last ticket (counted likewise).
# Per proxy and scenario: a warm-up run, then a timed wrk run (1 thread,
# --latency); around the timed run it reads the proxy's CPU time (whole
# process: every thread, and nginx's master + worker) from /proc/PID/stat,
# its peak RSS (VmHWM), and the backend's stub_status accepts (= upstream
# connections the proxy opened).  It also measures how much CPU other
# processes on the machine used during each run, and waits (up to
# BENCH_IDLE_WAIT s) for the machine to be quiet before each run.  Each
# proxy's negotiated protocol, cipher suite and group (openssl s_client)
# are recorded once.
#
# Output: build/bench-tls/results.md (printed), results.tsv, doc-section.md
# (the section for docs/benchmarks.md), runs/ (every wrk output, proxy stderr,
# config, s_client output), cert/ (the certificate and key), wrk_tls.so.
# Installs nginx, haproxy and wrk (and gcc and libssl-dev for wrk_tls.so)
# when missing (root or sudo).
#
# Environment: BENCH_DURATION (10 s), BENCH_WARMUP (2 s), BENCH_PROXY_CPU (0),
# BENCH_LOAD_CPU (1), BENCH_SCENARIOS ("1k-256 1m-256 hs-64 resume-64"),
# BENCH_PROXIES ("synapserve nginx haproxy"), BENCH_PORT_BASE (27130; uses 5
# ports from there), BENCH_IDLE_MAX (15: % of one CPU used by other processes
# above which a run waits, and is marked), BENCH_IDLE_WAIT (20 s at most per
# run), BENCH_WAIT_BUDGET (270 s: no more waiting after the bench has run this
# long), BENCH_RETRY_BUDGET (200 s: a run during which others were busy is
# repeated once while the bench has run for less than this),
# BENCH_SYN_KEEPALIVE (1024), BENCH_NO_BUILD (1: do not run `make native`),
# BENCH_OUT, BENCH_SYN_CMD (.venv/bin/synapserve: the command that runs
# synapserve); BENCH_NGINX_1M replaces nginx's 1 MiB tuning (to try others).
set -euo pipefail

BENCH_NAME=bench_tls
# shellcheck source=SCRIPTDIR/../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
PROXY_CPU=${BENCH_PROXY_CPU:-0}
LOAD_CPU=${BENCH_LOAD_CPU:-1}
SCENARIOS=${BENCH_SCENARIOS:-"1k-256 1m-256 hs-64 resume-64"}
PROXIES=${BENCH_PROXIES:-"synapserve nginx haproxy"}
PORT_BASE=${BENCH_PORT_BASE:-27130}
IDLE_MAX=${BENCH_IDLE_MAX:-15}
IDLE_WAIT=${BENCH_IDLE_WAIT:-20}
RETRY_BUDGET=${BENCH_RETRY_BUDGET:-200}
WAIT_BUDGET=${BENCH_WAIT_BUDGET:-270}
SYN_KEEPALIVE=${BENCH_SYN_KEEPALIVE:-1024}
OUT=${BENCH_OUT:-build/bench-tls}
SYN_CMD=${BENCH_SYN_CMD:-.venv/bin/synapserve}

BACKEND_PORT=$PORT_BASE
SYN_PORT=$((PORT_BASE + 1))
SYN_ADMIN=$((PORT_BASE + 2))
NGX_PORT=$((PORT_BASE + 3))
HAP_PORT=$((PORT_BASE + 4))

for px in $PROXIES; do
	case $px in
	synapserve | nginx | haproxy) ;;
	*) die "unknown proxy $px (synapserve, nginx or haproxy)" ;;
	esac
done
for sc in $SCENARIOS; do
	case $sc in
	1k-[0-9]* | 1m-[0-9]* | hs-[0-9]* | resume-[0-9]*) ;;
	*) die "unknown scenario $sc (1k-N, 1m-N, hs-N or resume-N)" ;;
	esac
done

# ---- what is needed, installed when absent ---------------------------------

need_nginx
need_pkg haproxy wrk curl
need_cmd openssl
need_file -x /usr/bin/time time
need_cmd gcc
need_file -f /usr/include/openssl/ssl.h libssl-dev
install_missing

nginx -V 2>&1 | grep -q -- --with-http_ssl_module || die "this nginx has no http_ssl_module"

build_native
[ -x .venv/bin/synapserve ] || die ".venv/bin/synapserve missing: run make native"

# ---- limits, ports, scratch space -------------------------------------------

raise_nofile
check_ports "$BACKEND_PORT" "$SYN_PORT" "$SYN_ADMIN" "$NGX_PORT" "$HAP_PORT"

scratch bench-tls cert
TLSV=$ROOT/$OUT/tls.tsv
printf 'scenario\tproxy\tstatus\trps\tp50_ms\tp99_ms\tuser_us\tsys_us\ttotal_us\thwm_kib\tup_new_timed\tup_new_warm\terrors\tothers_pct\tsteal_pct\tbytes_per_req\twrk_us\tbackend_us\ths_full\ths_resumed\trequests\textra\n' >"$TSV"
printf 'proxy\tprotocol\tcipher\tgroup\tsignature\n' >"$TLSV"

# The certificate: self-signed ECDSA P-256, for localhost and 127.0.0.1
# (wrk does not verify it; curl and s_client are told not to).
CERT=$ROOT/$OUT/cert/cert.pem
KEY=$ROOT/$OUT/cert/key.pem
HAP_PEM=$ROOT/$OUT/cert/haproxy.pem
CERT_CMD="openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 -nodes -days 365 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout key.pem -out cert.pem"
log "certificate: ECDSA P-256, self-signed"
# shellcheck disable=SC2086 # CERT_CMD is a command line (no spaces in its words)
(cd "$OUT/cert" && $CERT_CMD) >"$RUNS/cert.txt" 2>&1 || die "openssl req failed: $(cat "$RUNS/cert.txt")"
cat "$CERT" "$KEY" >"$HAP_PEM"
chmod 644 "$CERT" "$KEY" "$HAP_PEM"
chmod 755 "$OUT/cert"

# wrk's TLS helper (see wrk_tls.c)
WRK_TLS=$ROOT/$OUT/wrk_tls.so
log "gcc wrk_tls.c"
gcc -std=gnu11 -O2 -Wall -Wextra -shared -fPIC -o "$WRK_TLS" native/bench/tls/wrk_tls.c -ldl >&2 ||
	die "building native/bench/tls/wrk_tls.c failed"

# ---- the backend ------------------------------------------------------------

start_backend

# ---- the proxies' configurations -------------------------------------------

syn_conf() { # scenario dir
	mkdir -p "$2"
	cat >"$2/bench.toml" <<EOF
[server]
workers = 1
max_connections = 4096

[admin]
bind = "127.0.0.1:$SYN_ADMIN"

[log]
level = "warning"
access = "off"

[listeners.https]
bind = "127.0.0.1:$SYN_PORT"
tls = { certificates = [{ cert = "$CERT", key = "$KEY" }], min_version = "1.3" }

[upstreams.backend]
servers = [{ address = "127.0.0.1:$BACKEND_PORT" }]
keepalive = $SYN_KEEPALIVE

[sites.all]
hosts = ["*"]
[[sites.all.routes]]
path = "/"
upstream = "backend"
EOF
}

nginx_conf() { # scenario dir
	local extra=""
	mkdir -p "$2/tmp"
	# 1 MiB: unbuffered relay through one 256 KiB buffer, the cheapest of the
	# variants bench_proxy.sh tried in clear text.
	case $1 in
	1m-*) extra=${BENCH_NGINX_1M:-"proxy_buffering off; proxy_buffer_size 256k; proxy_buffers 4 256k; proxy_busy_buffers_size 512k;"} ;;
	esac
	cat >"$2/nginx.conf" <<EOF
user root;
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
    client_body_temp_path $2/tmp;
    proxy_temp_path $2/tmp;
    fastcgi_temp_path $2/tmp;
    uwsgi_temp_path $2/tmp;
    scgi_temp_path $2/tmp;
    ssl_protocols TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    ssl_session_timeout 1h;
    upstream backend {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 1024;
        keepalive_requests 1000000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:$NGX_PORT ssl backlog=4096;
        ssl_certificate $CERT;
        ssl_certificate_key $KEY;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            $extra
        }
    }
}
EOF
}

haproxy_conf() { # scenario dir
	mkdir -p "$2"
	cat >"$2/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4000
    # keep an idle server connection per client connection (the defaults,
    # 20% / 25% of the fds, close them above about 800 client connections)
    tune.pool-low-fd-ratio 90
    tune.pool-high-fd-ratio 95
    ssl-default-bind-options ssl-min-ver TLSv1.3

defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
    http-reuse always

frontend fe
    bind 127.0.0.1:$HAP_PORT ssl crt $HAP_PEM ssl-min-ver TLSv1.3 alpn http/1.1
    default_backend be

backend be
    server b1 127.0.0.1:$BACKEND_PORT pool-purge-delay 60s
EOF
}

# start_target proxy scenario dir (see lib.sh)
start_target() {
	local d=$3
	TARGET_DIR=$d
	case $1 in
	synapserve)
		syn_conf "$2" "$d/conf"
		cp "$d/conf/bench.toml" "$RUNS/$2-synapserve.toml"
		# shellcheck disable=SC2086 # SYN_CMD is a command line
		taskset -c "$PROXY_CPU" $SYN_CMD run --config-dir "$d/conf" >"$d/stderr" 2>&1 &
		TARGET_PID=$!
		TARGET_URL=https://127.0.0.1:$SYN_PORT
		;;
	nginx)
		nginx_conf "$2" "$d"
		cp "$d/nginx.conf" "$RUNS/$2-nginx.conf"
		taskset -c "$PROXY_CPU" nginx -p "$d/" -c "$d/nginx.conf" -e "$d/error.log" >"$d/stderr" 2>&1 &
		TARGET_PID=$!
		TARGET_URL=https://127.0.0.1:$NGX_PORT
		;;
	haproxy)
		haproxy_conf "$2" "$d"
		cp "$d/haproxy.cfg" "$RUNS/$2-haproxy.cfg"
		taskset -c "$PROXY_CPU" haproxy -db -f "$d/haproxy.cfg" >"$d/stderr" 2>&1 &
		TARGET_PID=$!
		TARGET_URL=https://127.0.0.1:$HAP_PORT
		;;
	esac
	PIDS+=("$TARGET_PID")
	wait_http "$TARGET_URL/1k" 1024 || return 1
	case $2 in 1m-*) wait_http "$TARGET_URL/1m" 1048576 || return 1 ;; esac
	target_pids "$1"
}

# The protocol, cipher suite, key exchange group and signature a client
# gets from the proxy (once per proxy), into tls.tsv.
tls_params() { # proxy
	local out="$RUNS/$1.s_client.txt"
	[ -e "$out" ] && return 0
	openssl s_client -connect "127.0.0.1:${TARGET_URL##*:}" -servername localhost -brief \
		</dev/null >"$out" 2>&1 || true
	awk -F': ' -v px="$1" '
	/^Protocol version/ { p = $2 }
	/^Ciphersuite/ { c = $2 }
	/^(Server Temp Key|Negotiated TLS1.3 group)/ { g = $2 }
	/^Signature type/ { s = $2 }
	END { printf "%s\t%s\t%s\t%s\t%s\n", px, p ? p : "?", c ? c : "?", g ? g : "?", s ? s : "?" }' "$out" >>"$TLSV"
}

syn_hs() { # "success failure": synapserve's TLS handshakes so far
	syn_metrics | awk '
	/^synapserve_tls_handshakes_total\{.*result="success"/ { s += $NF }
	/^synapserve_tls_handshakes_total\{.*result="failure"/ { f += $NF }
	END { printf "%d %d\n", s, f }'
}

# tls_wrk_cmd scenario seconds hs-file [option...]: sets WRK_CMD (lib.sh's
# wrk_cmd) for the scenario; new connections: `Connection: close`, with
# wrk_tls.so writing its handshake counts into hs-file.
tls_wrk_cmd() {
	local sc=$1 secs=$2 hsf=$3 mode=full
	shift 3
	case ${sc%%-*} in
	hs | resume)
		[ "${sc%%-*}" = resume ] && mode=count
		wrk_cmd LD_PRELOAD="$WRK_TLS" WRK_TLS_MODE="$mode" WRK_TLS_OUT="$hsf" \
			"${sc##*-}" "$secs" "$TARGET_URL/1k" -H "Connection: close" "$@"
		;;
	*) wrk_cmd "${sc##*-}" "$secs" "$TARGET_URL/${sc%%-*}" "$@" ;;
	esac
}

# ---- one measured run ---------------------------------------------------------

measure_once() { # scenario proxy: one row into $ROW
	local sc=$1 px=$2 size=${1%%-*}
	local d="$T/$sc-$px" status extra notes="" acc0 acc1 acc2 ops1="" ops2=""
	local rps p50 p99 req by err hsf="-" hsr="-" hs1="" hs2="" us ss tot oth steal bpr wus bkus
	case $size in hs | resume) size=1k ;; esac
	mkdir -p "$d"
	run_begin "$sc" "$px"
	if ! start_target "$px" "$sc" "$d"; then
		start_failed "$sc" "$px" "$d"
		printf '%s\t%s\tno start\t0\t0\t0\t0\t0\t0\t0\t0\t0\t-\t%s\t0\t0\t0\t0\t-\t-\t0\t-\n' "$sc" "$px" "$OTHERS" >>"$ROW"
		return
	fi
	tls_params "$px"
	acc0=$(backend_accepts)
	tls_wrk_cmd "$sc" "$WARMUP" "$d/hs-warmup.txt"
	warmup_run "$d" "$sc-$px"
	if ! target_alive; then
		crashed "$sc" "$px" "$d" warmup
		read -r rps p50 p99 req by err < <(parse_wrk <"$d/wrk-warmup.out")
		printf '%s\t%s\tcrashed (warm-up)\t%s\t%s\t%s\t0\t0\t0\t0\t0\t0\t%s\t%s\t0\t0\t0\t0\t-\t-\t%s\t-\n' \
			"$sc" "$px" "$rps" "$p50" "$p99" "$err" "$OTHERS" "$req" >>"$ROW"
		return
	fi
	acc1=$(backend_accepts)
	if [ "$px" = synapserve ]; then
		ops1=$(syn_ops)
		hs1=$(syn_hs)
	fi
	tls_wrk_cmd "$sc" "$DURATION" "$d/hs-timed.txt" --latency
	timed_run "$d" "$sc-$px"
	if [ -s "$d/hs-timed.txt" ]; then
		read -r _ hsf _ hsr <"$d/hs-timed.txt"
	fi
	if ! target_alive; then
		crashed "$sc" "$px" "$d" timed
		read -r rps p50 p99 req by err < <(parse_wrk <"$d/wrk-timed.out")
		printf '%s\t%s\tcrashed (timed run)\t%s\t%s\t%s\t0\t0\t0\t0\t0\t0\t%s\t-\t-\t0\t0\t0\t%s\t%s\t%s\t-\n' \
			"$sc" "$px" "$rps" "$p50" "$p99" "$err" "$hsf" "$hsr" "$req" >>"$ROW"
		return
	fi
	timed_end "$px"
	extra=$EXTRA
	if [ "$px" = synapserve ]; then
		ops2=$(syn_ops)
		hs2=$(syn_hs)
	fi
	acc2=$(backend_accepts)
	read -r rps p50 p99 req by err < <(parse_wrk <"$d/wrk-timed.out")
	if [ "$px" = synapserve ] && [ -n "$ops1" ] && [ -n "$ops2" ] && [ "$req" -gt 0 ]; then
		extra=$(ops_per_req "$ops1" "$ops2" "$req")
	fi
	if [ "$px" = synapserve ] && [ -n "$hs1" ] && [ -n "$hs2" ]; then
		# (its own count: handshakes that succeeded / failed during the timed run)
		extra="$extra; TLS handshakes (its metrics): $(awk -v a="$hs1" -v b="$hs2" 'BEGIN {
			split(a, x, " "); split(b, y, " "); printf "%d ok, %d failed", y[1] - x[1], y[2] - x[2] }')"
		if awk -v a="$hs1" -v b="$hs2" 'BEGIN { split(a, x, " "); split(b, y, " "); exit !(y[2] > x[2]) }'; then
			notes="$sc synapserve: TLS handshakes failed during the timed run (its metrics: $hs1 -> $hs2 success/failure); see runs/$sc-synapserve.stderr"
		fi
	fi
	[ -n "$notes" ] && echo "$notes" >>"$NOTES"
	stop_after "$sc" "$px" "$d"
	status=$(run_status "$err" "$req" "$by" "$size")
	read -r us ss tot oth steal bpr wus bkus < <(run_figures "$d" "$req" "$by")
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n' \
		"$sc" "$px" "$status" "$rps" "$p50" "$p99" "$us" "$ss" "$tot" "$HWM" \
		$((acc2 - acc1 - 1)) $((acc1 - acc0 - 1)) "$err" "$oth" "$steal" "$bpr" "$wus" "$bkus" \
		"$hsf" "$hsr" "$req" "${extra:--}" >>"$ROW"
	tail -n 1 "$ROW" | awk -F'\t' '{ printf "bench_tls:   %s %s: %s req/s, p50 %s ms, p99 %s ms, CPU %s+%s us/req, VmHWM %s KiB, new upstream %s, handshakes full/resumed %s/%s, errors %s, others %s%%\n", $1, $2, $4, $5, $6, $7, $8, $10, $11, $19, $20, $13, $14 }' >&2
}

# ---- the run -------------------------------------------------------------------

bench_begin
for sc in $SCENARIOS; do
	for px in $PROXIES; do
		run_one "$sc" "$px"
	done
done
bench_end

# ---- the report -------------------------------------------------------------------

export_report_env
export BENCH_REPORT_TLS=$TLSV PROXY_CPU SYN_KEEPALIVE PROXIES CERT_CMD
VER_HAPROXY="$(haproxy -v 2>&1 | head -n 1 | awk '{ print $3 }' || true)"
VER_OPENSSL="$(openssl version 2>/dev/null || true)"
VER_SYN=$(syn_version)
if [ -e /proc/net/tls_stat ]; then KTLS_KERNEL=yes; else KTLS_KERNEL=no; fi
export VER_HAPROXY VER_OPENSSL VER_SYN KTLS_KERNEL
python3 "$ROOT/native/bench/tls/report.py"
