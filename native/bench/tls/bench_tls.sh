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

cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
ROOT=$PWD
if [ ! -f appliance/synapserve/supervisor.py ]; then
	echo "bench_tls.sh: run it inside the synapserve tree" >&2
	exit 1
fi
export PATH="$PATH:/usr/sbin:/sbin"

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

HZ=$(getconf CLK_TCK)
START_TIME=$(date +%s)

log() { echo "bench_tls: $*" >&2; }
die() {
	log "error: $*"
	exit 1
}

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
pkg_installed haproxy || missing+=(haproxy)
pkg_installed wrk || missing+=(wrk)
pkg_installed curl || missing+=(curl)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
[ -x /usr/bin/time ] || missing+=(time)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
[ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
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
for p in "${installed_now[@]}"; do
	case $p in
	nginx*) stop_service nginx /run/nginx.pid ;;
	haproxy) stop_service haproxy /run/haproxy.pid ;;
	esac
done

nginx -V 2>&1 | grep -q -- --with-http_ssl_module || die "this nginx has no http_ssl_module"

if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
	log "make native"
	make -s native >&2 || die "make native failed"
fi
[ -x .venv/bin/synapserve ] || die ".venv/bin/synapserve missing: run make native"

# ---- limits, ports, scratch space -------------------------------------------

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
[ "$NOFILE" -ge 4096 ] || die "ulimit -n is $NOFILE; need >= 4096"

for p in $BACKEND_PORT $SYN_PORT $SYN_ADMIN $NGX_PORT $HAP_PORT; do
	if ss -Htln "sport = :$p" | grep -q .; then
		die "port $p is in use (set BENCH_PORT_BASE)"
	fi
done

T=$(mktemp -d /tmp/bench-tls.XXXXXX)
chmod 755 "$T"
rm -rf "$OUT"
mkdir -p "$OUT/runs" "$OUT/cert"
RUNS=$ROOT/$OUT/runs
TSV=$ROOT/$OUT/results.tsv
TLSV=$ROOT/$OUT/tls.tsv
NOTES=$ROOT/$OUT/notes.txt
: >"$NOTES"
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

backend_accepts() {
	curl -s --max-time 5 "http://127.0.0.1:$BACKEND_PORT/stub_status" | awk 'NR == 3 { print $1 }'
}

# Wait until other processes use less than IDLE_MAX % of one CPU (sampled
# over 1 s), up to IDLE_WAIT s.  Prints the last figure.
wait_quiet() {
	local b0 b1 bk0 bk1 pct waited=0
	while :; do
		read -r b0 _ < <(machine_ticks)
		read -r bk0 < <(proc_ticks "${BACKEND_PIDS[@]}" | awk '{ print $1 + $2 }')
		sleep 1
		read -r b1 _ < <(machine_ticks)
		read -r bk1 < <(proc_ticks "${BACKEND_PIDS[@]}" | awk '{ print $1 + $2 }')
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

wait_http() { # url size: until it answers 200 with that many bytes (10 s)
	local _i r
	for _i in $(seq 100); do
		r=$(curl -sk -o /dev/null --max-time 5 -w '%{http_code} %{size_download}' "$1" || true)
		[ "$r" = "200 $2" ] && return 0
		sleep 0.1
	done
	log "$1 did not answer 200 with $2 bytes (last: $r)"
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

# ---- the backend ------------------------------------------------------------

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
BACKEND_MASTER=$!
PIDS+=("$BACKEND_MASTER")
wait_http "http://127.0.0.1:$BACKEND_PORT/1k" 1024 || die "backend nginx did not start: $(cat "$T/backend/stderr")"
wait_http "http://127.0.0.1:$BACKEND_PORT/1m" 1048576 || die "backend: /1m"
[ -n "$(backend_accepts)" ] || die "backend nginx has no stub_status"
mapfile -t BACKEND_PIDS < <(echo "$BACKEND_MASTER"; pgrep -P "$BACKEND_MASTER")

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

# start_proxy proxy scenario dir: sets PROXY_PID, MEASURE_PIDS, MAIN_PID (the
# process whose VmHWM is the proxy's peak), PROXY_URL
start_proxy() {
	local d=$3
	PROXY_DIR=$d
	case $1 in
	synapserve)
		syn_conf "$2" "$d/conf"
		cp "$d/conf/bench.toml" "$RUNS/$2-synapserve.toml"
		# shellcheck disable=SC2086 # SYN_CMD is a command line
		taskset -c "$PROXY_CPU" $SYN_CMD run --config-dir "$d/conf" >"$d/stderr" 2>&1 &
		PROXY_PID=$!
		PROXY_URL=https://127.0.0.1:$SYN_PORT
		;;
	nginx)
		nginx_conf "$2" "$d"
		cp "$d/nginx.conf" "$RUNS/$2-nginx.conf"
		taskset -c "$PROXY_CPU" nginx -p "$d/" -c "$d/nginx.conf" -e "$d/error.log" >"$d/stderr" 2>&1 &
		PROXY_PID=$!
		PROXY_URL=https://127.0.0.1:$NGX_PORT
		;;
	haproxy)
		haproxy_conf "$2" "$d"
		cp "$d/haproxy.cfg" "$RUNS/$2-haproxy.cfg"
		taskset -c "$PROXY_CPU" haproxy -db -f "$d/haproxy.cfg" >"$d/stderr" 2>&1 &
		PROXY_PID=$!
		PROXY_URL=https://127.0.0.1:$HAP_PORT
		;;
	esac
	PIDS+=("$PROXY_PID")
	wait_http "$PROXY_URL/1k" 1024 || return 1
	case $2 in 1m-*) wait_http "$PROXY_URL/1m" 1048576 || return 1 ;; esac
	MAIN_PID=$PROXY_PID
	MEASURE_PIDS=("$PROXY_PID")
	if [ "$1" = nginx ]; then
		MAIN_PID=$(pgrep -P "$PROXY_PID" | head -n 1)
		[ -n "$MAIN_PID" ] || return 1
		MEASURE_PIDS+=("$MAIN_PID")
	fi
}

# stop_proxy proxy: SIGTERM, 15 s to exit, then SIGKILL.  Sets STOP_NOTE.
stop_proxy() {
	local rc=0
	STOP_NOTE=
	if ! kill -0 "$PROXY_PID" 2>/dev/null; then
		wait "$PROXY_PID" 2>/dev/null || rc=$?
		STOP_NOTE="exited by itself, status $rc"
		if grep -q "stopping (signal)" "$PROXY_DIR/stderr" 2>/dev/null; then
			STOP_NOTE="$STOP_NOTE: it was sent a stop signal, not by this script (another job's cleanup?)"
		fi
		[ "$rc" -gt 128 ] && STOP_NOTE="$STOP_NOTE (SIG$(kill -l $((rc - 128)) 2>/dev/null || echo ?))"
		forget_pid "$PROXY_PID"
		return
	fi
	kill -TERM "$PROXY_PID"
	if ! wait_exit "$PROXY_PID" 15; then
		STOP_NOTE="did not exit within 15 s of SIGTERM; killed"
		kill -KILL "$PROXY_PID" 2>/dev/null || true
	fi
	wait "$PROXY_PID" 2>/dev/null || true
	forget_pid "$PROXY_PID"
}

# The protocol, cipher suite, key exchange group and signature a client
# gets from the proxy (once per proxy), into tls.tsv.
tls_params() { # proxy
	local out="$RUNS/$1.s_client.txt"
	[ -e "$out" ] && return 0
	openssl s_client -connect "127.0.0.1:${PROXY_URL##*:}" -servername localhost -brief \
		</dev/null >"$out" 2>&1 || true
	awk -F': ' -v px="$1" '
	/^Protocol version/ { p = $2 }
	/^Ciphersuite/ { c = $2 }
	/^(Server Temp Key|Negotiated TLS1.3 group)/ { g = $2 }
	/^Signature type/ { s = $2 }
	END { printf "%s\t%s\t%s\t%s\t%s\n", px, p ? p : "?", c ? c : "?", g ? g : "?", s ? s : "?" }' "$out" >>"$TLSV"
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
	/requests in/ { req = $1; b = $5; sub(/,$/, "", b); by = bytes(b); d = $4; sub(/s,$/, "", d); sub(/m$/, "", d) }
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

syn_ops() { # "op=count ..." from synapserve's /metrics
	curl -s --max-time 5 "http://127.0.0.1:$SYN_ADMIN/metrics" |
		awk -F'[{}"]' '/^synapserve_io_uring_ops_total\{/ { split($0, a, " "); printf "%s=%d ", $3, a[2] }'
}

syn_hs() { # "success failure": synapserve's TLS handshakes so far
	curl -s --max-time 5 "http://127.0.0.1:$SYN_ADMIN/metrics" | awk '
	/^synapserve_tls_handshakes_total\{.*result="success"/ { s += $NF }
	/^synapserve_tls_handshakes_total\{.*result="failure"/ { f += $NF }
	END { printf "%d %d\n", s, f }'
}

crash_report() { # scenario proxy dir phase
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

# wrk_cmd scenario seconds hs-file [--latency]: sets WRK_CMD, wrk against
# PROXY_URL for the scenario pinned to LOAD_CPU (new connections:
# `Connection: close`, with wrk_tls.so writing its handshake counts into
# hs-file).
wrk_cmd() {
	local sc=$1 secs=$2 hsf=$3 size conns
	shift 3
	conns=${sc##*-}
	size=${sc%%-*}
	WRK_CMD=(taskset -c "$LOAD_CPU")
	case $size in
	hs | resume)
		local mode=full
		[ "$size" = resume ] && mode=count
		WRK_CMD+=(env LD_PRELOAD="$WRK_TLS" WRK_TLS_MODE="$mode" WRK_TLS_OUT="$hsf")
		WRK_CMD+=(wrk -H "Connection: close")
		size=1k
		;;
	*) WRK_CMD+=(wrk) ;;
	esac
	WRK_CMD+=(-t1 -c"$conns" -d"${secs}s" "$@" "$PROXY_URL/$size")
}

# ---- one measured run ---------------------------------------------------------

measure_once() { # scenario proxy: one row into $ROW
	local sc=$1 px=$2 size=${1%%-*}
	local d="$T/$sc-$px" status=ok extra="" others notes=""
	local acc0 acc1 acc2 u1 s1 u2 s2 m1 st1 m2 st2 bk1 bk2 w1 w2 wu ws hwm ops1="" ops2=""
	local rps p50 p99 req by err hsf="-" hsr="-" hs1="" hs2=""
	case $size in hs | resume) size=1k ;; esac
	mkdir -p "$d"
	others=$(wait_quiet)
	RUN_UPTIME=$(awk '{ print $1 }' /proc/uptime)
	log "$sc $px (others before: ${others}% of a CPU)"
	if ! start_proxy "$px" "$sc" "$d"; then
		stop_proxy
		cp "$d/stderr" "$RUNS/$sc-$px.stderr" 2>/dev/null || true
		STOP_NOTE="did not start: $STOP_NOTE"
		crash_report "$sc" "$px" "$d" start
		printf '%s\t%s\tno start\t0\t0\t0\t0\t0\t0\t0\t0\t0\t-\t%s\t0\t0\t0\t0\t-\t-\t0\t-\n' "$sc" "$px" "$others" >>"$ROW"
		return
	fi
	tls_params "$px"
	acc0=$(backend_accepts)
	wrk_cmd "$sc" "$WARMUP" "$d/hs-warmup.txt"
	"${WRK_CMD[@]}" >"$d/wrk-warmup.out" 2>&1 || true
	cp "$d/wrk-warmup.out" "$RUNS/$sc-$px.wrk-warmup.txt"
	if ! kill -0 "$PROXY_PID" 2>/dev/null || ! kill -0 "$MAIN_PID" 2>/dev/null; then
		stop_proxy
		cp "$d/stderr" "$RUNS/$sc-$px.stderr"
		crash_report "$sc" "$px" "$d" warmup
		read -r rps p50 p99 req by err < <(parse_wrk <"$d/wrk-warmup.out")
		printf '%s\t%s\tcrashed (warm-up)\t%s\t%s\t%s\t0\t0\t0\t0\t0\t0\t%s\t%s\t0\t0\t0\t0\t-\t-\t%s\t-\n' \
			"$sc" "$px" "$rps" "$p50" "$p99" "$err" "$others" "$req" >>"$ROW"
		return
	fi
	acc1=$(backend_accepts)
	if [ "$px" = synapserve ]; then
		ops1=$(syn_ops)
		hs1=$(syn_hs)
	fi
	read -r u1 s1 < <(proc_ticks "${MEASURE_PIDS[@]}")
	read -r m1 st1 < <(machine_ticks)
	read -r bk1 < <(proc_ticks "${BACKEND_PIDS[@]}" | awk '{ print $1 + $2 }')
	w1=$(now)
	wrk_cmd "$sc" "$DURATION" "$d/hs-timed.txt" --latency
	/usr/bin/time -f '%U %S' -o "$d/wrk.time" "${WRK_CMD[@]}" >"$d/wrk-timed.out" 2>&1 || true
	w2=$(now)
	read -r m2 st2 < <(machine_ticks)
	read -r bk2 < <(proc_ticks "${BACKEND_PIDS[@]}" | awk '{ print $1 + $2 }')
	cp "$d/wrk-timed.out" "$RUNS/$sc-$px.wrk.txt"
	if [ -s "$d/hs-timed.txt" ]; then
		read -r _ hsf _ hsr <"$d/hs-timed.txt"
	fi
	if ! kill -0 "$PROXY_PID" 2>/dev/null || ! kill -0 "$MAIN_PID" 2>/dev/null; then
		stop_proxy
		cp "$d/stderr" "$RUNS/$sc-$px.stderr"
		crash_report "$sc" "$px" "$d" timed
		read -r rps p50 p99 req by err < <(parse_wrk <"$d/wrk-timed.out")
		printf '%s\t%s\tcrashed (timed run)\t%s\t%s\t%s\t0\t0\t0\t0\t0\t0\t%s\t-\t-\t0\t0\t0\t%s\t%s\t%s\t-\n' \
			"$sc" "$px" "$rps" "$p50" "$p99" "$err" "$hsf" "$hsr" "$req" >>"$ROW"
		return
	fi
	read -r u2 s2 < <(proc_ticks "${MEASURE_PIDS[@]}")
	hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$MAIN_PID/status" 2>/dev/null || echo 0)
	if [ "$px" = nginx ]; then
		extra="master VmHWM $(awk '/^VmHWM:/ { print $2 }' "/proc/$PROXY_PID/status" 2>/dev/null || echo ?) KiB"
	fi
	if [ "$px" = synapserve ]; then
		ops2=$(syn_ops)
		hs2=$(syn_hs)
	fi
	acc2=$(backend_accepts)
	read -r wu ws <"$d/wrk.time"
	read -r rps p50 p99 req by err < <(parse_wrk <"$d/wrk-timed.out")
	if [ "$px" = synapserve ] && [ -n "$ops1" ] && [ -n "$ops2" ] && [ "$req" -gt 0 ]; then
		extra=$(awk -v a="$ops1" -v b="$ops2" -v n="$req" 'BEGIN {
			na = split(a, x, " "); split(b, y, " ")
			for (i = 1; i <= na; i++) { split(x[i], p, "="); split(y[i], q, "="); v = (q[2] - p[2]) / n
				if (v > 0.005) s = s sprintf("%s%s %.2f", (s ? ", " : ""), p[1], v) }
			print "io_uring ops/req: " s }')
	fi
	if [ "$px" = synapserve ] && [ -n "$hs1" ] && [ -n "$hs2" ]; then
		# (its own count: handshakes that succeeded / failed during the timed run)
		extra="$extra; TLS handshakes (its metrics): $(awk -v a="$hs1" -v b="$hs2" 'BEGIN {
			split(a, x, " "); split(b, y, " "); printf "%d ok, %d failed", y[1] - x[1], y[2] - x[2] }')"
		if awk -v a="$hs1" -v b="$hs2" 'BEGIN { split(a, x, " "); split(b, y, " "); exit !(y[2] > x[2]) }'; then
			notes="$sc synapserve: TLS handshakes failed during the timed run (its metrics: $hs1 -> $hs2 success/failure); see runs/$sc-synapserve.stderr"
		fi
	fi
	stop_proxy
	cp "$d/stderr" "$RUNS/$sc-$px.stderr"
	[ -n "$notes" ] && echo "$notes" >>"$NOTES"
	[ -n "$STOP_NOTE" ] && echo "$sc $px: on SIGTERM after the run: $STOP_NOTE" >>"$NOTES"
	[ "$err" != - ] && status="errors"
	[ "$req" -gt 0 ] || status="no requests"
	# (wrk prints the bytes read with 3 significant digits or so)
	awk -v r="$req" -v b="$by" -v s="$size" 'BEGIN { want = (s == "1k") ? 1024 : 1048576; exit !(r > 0 && b / r < want * 0.995) }' &&
		status="short bodies"
	awk -v \
		sc="$sc" -v px="$px" -v st="$status" -v rps="$rps" -v p50="$p50" -v p99="$p99" \
		-v req="$req" -v du=$((u2 - u1)) -v ds=$((s2 - s1)) -v hz="$HZ" -v hwm="$hwm" \
		-v nt=$((acc2 - acc1 - 1)) -v nw=$((acc1 - acc0 - 1)) -v err="$err" \
		-v busy=$((m2 - m1)) -v steal=$((st2 - st1)) -v bk=$((bk2 - bk1)) -v wu="$wu" -v ws="$ws" \
		-v wall="$(awk -v a="$w1" -v b="$w2" 'BEGIN { print b - a }')" -v by="$by" \
		-v hsf="$hsf" -v hsr="$hsr" -v extra="$extra" 'BEGIN {
		n = (req > 0) ? req : 1
		us = du * 1e6 / hz / n; ss = ds * 1e6 / hz / n
		ours = du + ds + bk + (wu + ws) * hz
		oth = (busy - ours) * 100 / hz / wall; if (oth < 0) oth = 0
		printf "%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%.2f\t%.2f\t%s\t%d\t%d\t%s\t%.0f\t%.0f\t%.0f\t%.2f\t%.2f\t%s\t%s\t%d\t%s\n",
			sc, px, st, rps, p50, p99, us, ss, us + ss, hwm, nt, nw, err, oth,
			steal * 100 / hz / wall, by / n, (wu + ws) * 1e6 / n, bk * 1e6 / hz / n, hsf, hsr, req,
			(extra ? extra : "-")
	}' >>"$ROW"
	tail -n 1 "$ROW" | awk -F'\t' '{ printf "bench_tls:   %s %s: %s req/s, p50 %s ms, p99 %s ms, CPU %s+%s us/req, VmHWM %s KiB, new upstream %s, handshakes full/resumed %s/%s, errors %s, others %s%%\n", $1, $2, $4, $5, $6, $7, $8, $10, $11, $19, $20, $13, $14 }' >&2
}

# run_one scenario proxy: measure_once, and once more when other processes
# were busy during the run (while the time budget allows); the quieter row
# goes into the table.
run_one() {
	local a oth st best="" best_oth=1000000
	for a in 1 2; do
		ROW="$T/row.$1.$2.$a"
		: >"$ROW"
		measure_once "$1" "$2"
		[ -s "$ROW" ] || continue
		IFS=$'\t' read -r _ _ st _ _ _ _ _ _ _ _ _ _ oth _ <"$ROW"
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

# ---- the run -------------------------------------------------------------------

so_sum() { cat appliance/synapserve/_native*.so 2>/dev/null | sha256sum | cut -c1-12; }
SO_SUM=$(so_sum)
UPTIME_START=$(uptime)
log "start: $UPTIME_START"
for sc in $SCENARIOS; do
	for px in $PROXIES; do
		run_one "$sc" "$px"
	done
done
UPTIME_END=$(uptime)
ELAPSED=$(($(date +%s) - START_TIME))

# ---- the report -------------------------------------------------------------------

export BENCH_REPORT_TSV=$TSV BENCH_REPORT_TLS=$TLSV BENCH_REPORT_NOTES=$NOTES
export BENCH_REPORT_OUT=$ROOT/$OUT IDLE_MAX DURATION WARMUP PROXY_CPU LOAD_CPU ELAPSED
export UPTIME_START UPTIME_END SYN_KEEPALIVE SYN_CMD PROXIES CERT_CMD
VER_NGINX="$(nginx -v 2>&1 | sed 's/.*: //' || true)"
VER_HAPROXY="$(haproxy -v 2>&1 | head -n 1 | awk '{ print $3 }' || true)"
# (wrk -v exits with 1)
VER_WRK="$(wrk -v 2>&1 | head -n 1 | awk '{ print $2 }' || true)"
VER_OPENSSL="$(openssl version 2>/dev/null || true)"
export VER_NGINX VER_HAPROXY VER_WRK VER_OPENSSL
# shellcheck disable=SC2086
VER_SYN=$($SYN_CMD version 2>/dev/null || true)
export VER_SYN="${VER_SYN%%$'\n'*}"
GIT_REV="$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- native appliance 2>/dev/null || echo ' (+ uncommitted changes in native/ or appliance/)')"
KERNEL="$(uname -r)"
CPU_MODEL="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
NCPU="$(nproc)"
if [ -e /proc/net/tls_stat ]; then KTLS_KERNEL=yes; else KTLS_KERNEL=no; fi
export GIT_REV KERNEL CPU_MODEL NCPU KTLS_KERNEL
python3 "$ROOT/native/bench/tls/report.py"
