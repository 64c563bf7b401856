#!/usr/bin/env bash
# native/bench/bench_parser.sh - `make bench-parser`: synapserve's request
# parser against llhttp and httparse, on the same three requests
# (native/bench/inputs/{small,medium,large}.http).
#
# Builds native/bench/bench_parser.c (synapserve at every SIMD level the CPU
# has, and llhttp from Debian's node-llhttp sources) and the Rust crate in
# native/bench/httparse (httparse from Debian's librust-httparse-dev, offline),
# runs them pinned to one CPU, and prints their lines and a markdown table.
# Everything it builds goes to build/bench-parser/.  On a fresh Debian 12 it
# installs what is missing: node-llhttp librust-httparse-dev cargo (as root,
# or through sudo).
#
# Environment: CC (default cc); BENCH_SYN_SRC (the parser's C files, default
# native/src/http1*.c native/src/simd*.c); BENCH_SAMPLES (default 31, >= 21)
# and BENCH_SAMPLE_MS (default 20) per measurement; BENCH_CPU (the CPU to pin
# to: default 1 when the machine has two or more, "none" not to pin);
# BENCH_ROUNDS (default 3): runs of all the harnesses one after the other, the
# table taking each parser's lowest median, so that a burst of other work on
# the machine during one round does not skew the comparison.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
if [ ! -f native/include/syn/http1.h ]; then
	echo "bench_parser.sh: run it inside the synapserve tree" >&2
	exit 1
fi

LLHTTP_SRC=/usr/share/llhttp
LLHTTP_INC=/usr/share/include/llhttp
HTTPARSE_DIR=/usr/share/cargo/registry/httparse-1.8.0
INPUTS=native/bench/inputs
B=build/bench-parser
CC=${CC:-cc}

log() { echo "bench_parser.sh: $*" >&2; }

find_cargo() {
	if command -v cargo >/dev/null 2>&1; then
		command -v cargo
	elif [ -x "${HOME:-/root}/.cargo/bin/cargo" ]; then
		echo "${HOME:-/root}/.cargo/bin/cargo"
	fi
}

# ---- what is needed, installed when absent ----
missing=()
for f in "$LLHTTP_SRC/api.c" "$LLHTTP_SRC/http.c" "$LLHTTP_SRC/llhttp.c" "$LLHTTP_INC/llhttp.h"; do
	if [ ! -f "$f" ]; then
		missing+=(node-llhttp)
		break
	fi
done
[ -f "$HTTPARSE_DIR/Cargo.toml" ] || missing+=(librust-httparse-dev)
[ -n "$(find_cargo)" ] || missing+=(cargo)
command -v "$CC" >/dev/null 2>&1 || missing+=(gcc libc6-dev)
if [ ${#missing[@]} -gt 0 ]; then
	log "installing ${missing[*]}"
	if [ "$(id -u)" = 0 ]; then
		SUDO=
	elif command -v sudo >/dev/null 2>&1; then
		SUDO=sudo
	else
		log "need root to apt-get install ${missing[*]}"
		exit 1
	fi
	$SUDO apt-get update
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "${missing[@]}"
fi
[ -f "$LLHTTP_SRC/llhttp.c" ] || { log "no llhttp sources in $LLHTTP_SRC"; exit 1; }
[ -f "$HTTPARSE_DIR/Cargo.toml" ] || { log "no httparse crate in $HTTPARSE_DIR"; exit 1; }
CARGO=$(find_cargo)
[ -n "$CARGO" ] || { log "no cargo"; exit 1; }

# The parser and its SIMD dispatch: the rest of native/src (the engine,
# io_uring, ...) is not measured here and needs more to build and link.
# BENCH_SYN_SRC (a glob pattern list) overrides.
shopt -s nullglob
# shellcheck disable=SC2206  # the patterns are meant to be expanded
SYN_SRC=(${BENCH_SYN_SRC:-native/src/http1*.c native/src/simd*.c})
shopt -u nullglob
if [ ${#SYN_SRC[@]} -eq 0 ] || [ ! -f native/src/http1.c ]; then
	log "no parser sources in native/src"
	exit 1
fi
for f in small medium large; do
	[ -s "$INPUTS/$f.http" ] || { log "missing $INPUTS/$f.http"; exit 1; }
done

# ---- build ----
mkdir -p "$B/llhttp" "$B/llhttp-sse42"
log "building bench_parser"
# llhttp is generated code: its own warnings are not ours to fix.
for f in api http llhttp; do
	"$CC" -std=gnu11 -O2 -I"$LLHTTP_INC" -c "$LLHTTP_SRC/$f.c" -o "$B/llhttp/$f.o"
done
"$CC" -std=gnu11 -O2 -Wall -Wextra -Werror -Inative/include -Inative/src -I"$LLHTTP_INC" \
	native/bench/bench_parser.c "${SYN_SRC[@]}" "$B"/llhttp/*.o -o "$B/bench_parser"

# llhttp uses SSE4.2 only when compiled for it (Debian's and Node's default
# builds are not): measure that build too, for information.
LLHTTP_SSE42=
if grep -qw sse4_2 /proc/cpuinfo 2>/dev/null; then
	for f in api http llhttp; do
		"$CC" -std=gnu11 -O2 -msse4.2 -I"$LLHTTP_INC" -c "$LLHTTP_SRC/$f.c" -o "$B/llhttp-sse42/$f.o"
	done
	"$CC" -std=gnu11 -O2 -Wall -Wextra -Werror -Inative/include -Inative/src -I"$LLHTTP_INC" \
		native/bench/bench_parser.c "${SYN_SRC[@]}" "$B"/llhttp-sse42/*.o \
		-o "$B/bench_parser_llhttp_sse42"
	LLHTTP_SSE42=1
fi

log "building bench-httparse ($("$CARGO" --version))"
if ! CARGO_TARGET_DIR="$PWD/$B/cargo" "$CARGO" build --release --offline \
	--manifest-path native/bench/httparse/Cargo.toml >"$B/cargo.log" 2>&1; then
	tail -n 40 "$B/cargo.log" >&2
	log "cargo build failed (full log: $B/cargo.log)"
	exit 1
fi

# ---- run ----
PIN=()
cpu=${BENCH_CPU:-}
if [ -z "$cpu" ] && [ "$(nproc)" -ge 2 ]; then
	cpu=1
fi
if [ -n "$cpu" ] && [ "$cpu" != none ] && command -v taskset >/dev/null 2>&1; then
	PIN=(taskset -c "$cpu")
fi
# Anything else busy (a build, say) makes the figures noisy: say so.
cpu_busy() {
	local a b
	a=$(head -n1 /proc/stat 2>/dev/null) || return 0
	sleep 1
	b=$(head -n1 /proc/stat 2>/dev/null) || return 0
	awk -v a="$a" -v b="$b" -v n="$(nproc)" 'BEGIN {
		na = split(a, x, " "); split(b, y, " ")
		for (i = 2; i <= na; i++) {
			d = y[i] - x[i]; tot += d
			if (i == 5 || i == 6)	# idle, iowait
				idle += d
		}
		if (tot > 0)
			printf "%.0f", 100 * (tot - idle) / tot
	}'
}
busy=$(cpu_busy)
if [ -n "$busy" ] && [ "$busy" -gt 10 ]; then
	log "warning: the CPUs were ${busy}% busy before the run: figures may be noisy"
fi

ROUNDS=${BENCH_ROUNDS:-3}
case $ROUNDS in
[1-9] | [1-9][0-9]) ;;
*) log "BENCH_ROUNDS must be 1..99"; exit 1 ;;
esac
log "running${PIN:+ on CPU $cpu}: $ROUNDS round(s), ${BENCH_SAMPLES:-31} samples of ~${BENCH_SAMPLE_MS:-20} ms each"
OUT="$B/results.txt"
: >"$OUT"
for ((r = 1; r <= ROUNDS; r++)); do
	"${PIN[@]}" "$B/bench_parser" "$INPUTS" | sed "s/\$/ round=$r/" >>"$OUT"
	if [ -n "$LLHTTP_SSE42" ]; then
		BENCH_ONLY=llhttp "${PIN[@]}" "$B/bench_parser_llhttp_sse42" "$INPUTS" |
			sed "s/^parser=llhttp /parser=llhttp-sse42 /; s/\$/ round=$r/" >>"$OUT"
	fi
	"${PIN[@]}" "$B/cargo/release/bench-httparse" "$INPUTS" | sed "s/\$/ round=$r/" >>"$OUT"
done
cat "$OUT"
echo

# ---- the table ----
awk '
{
	delete kv
	for (i = 1; i <= NF; i++) {
		eq = index($i, "=")
		if (eq)
			kv[substr($i, 1, eq - 1)] = substr($i, eq + 1)
	}
	p = kv["parser"]; in_ = kv["input"]
	# with several rounds, the best (lowest) median of each
	if (!((p, in_) in ns) || kv["ns"] + 0 < ns[p, in_] + 0)
		ns[p, in_] = kv["ns"]
	bytes[in_] = kv["bytes"]
	if ((in_ SUBSEP "hdr") in hdr && hdr[in_ SUBSEP "hdr"] != kv["headers"]) {
		printf "header counts differ on %s: %s says %s, others %s\n", in_, p,
		       kv["headers"], hdr[in_ SUBSEP "hdr"] > "/dev/stderr"
		bad = 1
	}
	hdr[in_ SUBSEP "hdr"] = kv["headers"]
	if (p == "synapserve")
		best = kv["level"]
	if (!(p in seen)) {
		seen[p] = 1
		order[++np] = p
	}
}
function ratio(a, b) { return (a > 0 && b > 0) ? sprintf("%.2fx", a / b) : "-" }
function val(p, i) { return ((p, i) in ns) ? ns[p, i] : "-" }
END {
	if (bad)
		exit 1
	split("small medium large", inputs, " ")
	printf "| input | bytes | headers | synapserve ns (%s) | llhttp ns | httparse ns | llhttp/synapserve | httparse/synapserve |\n", best
	printf "|---|---:|---:|---:|---:|---:|---:|---:|\n"
	minr = 0
	for (k = 1; k <= 3; k++) {
		i = inputs[k]
		s = val("synapserve", i); l = val("llhttp", i); h = val("httparse", i)
		printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", i, bytes[i],
		       hdr[i SUBSEP "hdr"], s, l, h, ratio(l, s), ratio(h, s)
		if (h > 0 && s > 0 && (minr == 0 || h / s < minr))
			minr = h / s
		if (l > 0 && s > 0 && (minl == 0 || l / s < minl))
			minl = l / s
	}
	printf "\nEvery variant, ns per parse (httparse/variant):\n\n"
	printf "| parser | small | medium | large |\n|---|---:|---:|---:|\n"
	for (n = 1; n <= np; n++) {
		p = order[n]
		if (p == "synapserve" || p == "llhttp" || p == "httparse")
			continue
		printf "| %s |", p
		for (k = 1; k <= 3; k++) {
			i = inputs[k]
			printf " %s (%s) |", val(p, i), ratio(val("httparse", i), val(p, i))
		}
		printf "\n"
	}
	printf "\nsynapserve (%s) vs httparse: at least %.2fx faster (goal 1.25x): %s\n",
	       best, minr, (minr >= 1.25 ? "met" : "NOT met")
	printf "synapserve (%s) vs llhttp: at least %.2fx faster\n", best, minl
}' "$OUT" | tee "$B/results.md"
