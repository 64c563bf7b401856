# shellcheck shell=bash
# native/bench/proxy/targets.sh - the proxies as bench_proxy.sh measures them:
# their configurations and start_target (see lib.sh), shared with
# bench_rss.sh so that both start them alike.  Sourced after lib.sh; reads
# the script's PROXY_CPU, SYN_CMD, SYN_KEEPALIVE, NOFILE, RUNS, RELAY_BIN,
# RELAY_1M and the ports BACKEND_PORT, SYN_PORT, SYN_ADMIN, NGX_PORT,
# HAP_PORT, RELAY_PORT.

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

[listeners.http]
bind = "127.0.0.1:$SYN_PORT"

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
	# variants tried: the default (buffered, 8 x 4 KiB, spills to temp files)
	# costs about 4x the CPU; buffered with 32 x 64 KiB and no temp files
	# about 1.2x.  (proxy_buffers only to pass nginx's size checks.)
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
    upstream backend {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 1024;
        keepalive_requests 1000000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:$NGX_PORT backlog=4096;
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
	local glob="" opts=""
	mkdir -p "$2"
	case $1 in
	1m-*)
		# 1 MiB pipes: a little cheaper than 256 KiB or the default 64 KiB
		glob="    ${BENCH_HAPROXY_1M_GLOBAL:-tune.pipesize 1048576}"
		opts="    option splice-request
    option splice-response"
		;;
	esac
	cat >"$2/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4000
    # keep an idle server connection per client connection (the defaults,
    # 20% / 25% of the fds, close them above about 800 client connections)
    tune.pool-low-fd-ratio 90
    tune.pool-high-fd-ratio 95
$glob

defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
    http-reuse always
$opts

frontend fe
    bind 127.0.0.1:$HAP_PORT
    default_backend be

backend be
    server b1 127.0.0.1:$BACKEND_PORT pool-purge-delay 60s
EOF
}

# start_target proxy scenario dir (see lib.sh)
start_target() {
	local d=$3
	# shellcheck disable=SC2034 # lib.sh reads it
	TARGET_DIR=$d
	case $1 in
	synapserve)
		syn_conf "$2" "$d/conf"
		cp "$d/conf/bench.toml" "$RUNS/$2-synapserve.toml"
		# shellcheck disable=SC2086 # SYN_CMD is a command line
		taskset -c "$PROXY_CPU" $SYN_CMD run --config-dir "$d/conf" >"$d/stderr" 2>&1 &
		TARGET_PID=$!
		TARGET_URL=http://127.0.0.1:$SYN_PORT
		;;
	nginx)
		nginx_conf "$2" "$d"
		cp "$d/nginx.conf" "$RUNS/$2-nginx.conf"
		taskset -c "$PROXY_CPU" nginx -p "$d/" -c "$d/nginx.conf" -e "$d/error.log" >"$d/stderr" 2>&1 &
		TARGET_PID=$!
		TARGET_URL=http://127.0.0.1:$NGX_PORT
		;;
	haproxy)
		haproxy_conf "$2" "$d"
		cp "$d/haproxy.cfg" "$RUNS/$2-haproxy.cfg"
		taskset -c "$PROXY_CPU" haproxy -db -f "$d/haproxy.cfg" >"$d/stderr" 2>&1 &
		TARGET_PID=$!
		TARGET_URL=http://127.0.0.1:$HAP_PORT
		;;
	relay)
		local mode=copy
		case $2 in 1m-*) mode=$RELAY_1M ;; esac
		echo "$RELAY_BIN $RELAY_PORT 127.0.0.1:$BACKEND_PORT $mode" >"$RUNS/$2-relay.cmd"
		taskset -c "$PROXY_CPU" "$RELAY_BIN" "$RELAY_PORT" "127.0.0.1:$BACKEND_PORT" "$mode" \
			>"$d/stderr" 2>&1 &
		TARGET_PID=$!
		TARGET_URL=http://127.0.0.1:$RELAY_PORT
		;;
	esac
	PIDS+=("$TARGET_PID")
	wait_http "$TARGET_URL/1k" 1024 || return 1
	case $2 in 1m-*) wait_http "$TARGET_URL/1m" 1048576 || return 1 ;; esac
	target_pids "$1"
}
