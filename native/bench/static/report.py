"""The report of bench_static.sh: results.md (printed) and doc-section.md.

Reads the results.tsv and syscalls.tsv the script wrote; everything else comes
from the environment (see the end of bench_static.sh).  Standard library only.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from report_common import (  # noqa: E402
    Goals,
    cpu_cells,
    env,
    fmt,
    group,
    has_extra,
    load_line,
    load_notes,
    load_rows,
    load_rows_if,
    machine_line,
    master_rss_line,
    now,
    num,
    others_cell,
    problems,
    quiet_lines,
    ratio_cells,
    rss_cell,
    run_line,
    write,
)

SERVERS = ("synapserve", "nginx", "floor")
SIZE_TITLES = {"1k": "1 KiB file", "1m": "1 MiB file"}
# nginx's tuning per size by default (bench_static.sh), and what it does
NGINX_DEFAULT = {
    "1k": ("sendfile off;", "read into a buffer, head and body in one `writev`"),
    "1m": ("sendfile on; tcp_nopush on;", "the file goes out with `sendfile`"),
}


def title(size: str) -> str:
    return f"{SIZE_TITLES.get(size, size)}, {env('CONNS', '256')} connections"


def tuning_note(size: str) -> str:
    default, what = NGINX_DEFAULT[size]
    if env(f"NGINX_{size.upper()}") == default:
        return f"{what}; the faster variant at this size"
    return f"**`BENCH_NGINX_{size.upper()}`**, not the default `{default}`"


def measured(row: dict | None) -> bool:
    """Stricter than report_common's: CPU figures too."""
    return (
        row is not None
        and row["status"] in ("ok", "errors")
        and num(row["rps"]) > 0
        and num(row["total_us"]) > 0
    )


def size_table(size: str, rows: dict, idle_max: float, level: str = "###") -> list[str]:
    out = [
        f"{level} {title(size)}",
        "",
        "| server | req/s | p50 ms | p99 ms | CPU µs/req user | sys | total | server CPU busy % "
        "| peak RSS MiB | bytes/response | wrk µs/req | errors | other load % CPU | status |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for s in [s for s in SERVERS if s in rows]:
        r = rows[s]
        if measured(r):
            cells = [
                fmt(num(r["rps"]), 0),
                fmt(num(r["p50_ms"]), 2),
                fmt(num(r["p99_ms"]), 2),
                *cpu_cells(r),
                rss_cell(r),
                fmt(num(r["bytes_per_req"]), 0),
                fmt(num(r["wrk_us"]), 2),
            ]
        else:
            cells = [fmt(num(r["rps"]), 0)] + ["-"] * 9
        others = others_cell(r, idle_max)
        out.append(
            f"| {s} | " + " | ".join(cells) + f" | {r['errors']} | {others} | {r['status']} |"
        )
    syn = rows.get("synapserve")
    for other in ("nginx", "floor"):
        o = rows.get(other)
        if measured(syn) and measured(o):
            cells = ratio_cells(syn, o)
            out.append(f"| synapserve ÷ {other} | " + " | ".join(cells) + " | | | | | |")
    out.append("")
    return out


def goals(by_size: dict, floor_1m: float, goal_1k: float, floor_1k: float) -> list[str]:
    """The issue's goals.  The floors are those the floor server measured in this
    run; the issue's own figures (another day, another load) only as a
    fallback (1 MiB) or next to them (the absolute 1 KiB goal)."""
    lines = Goals()
    line, note = lines.line, lines.note

    for size, rows in by_size.items():
        syn, ngx, flo = rows.get("synapserve"), rows.get("nginx"), rows.get("floor")
        if flo is not None and not measured(flo):
            lines.append(
                f"- {title(size)}: the floor server has no figures ({flo['status']}); "
                "see runs/ and Problems seen"
            )
        if not measured(syn):
            status = syn["status"] if syn else "not run"
            line(None, f"{title(size)}: synapserve has no figures ({status})")
            continue
        t = num(syn["total_us"])
        f = num(flo["total_us"]) if measured(flo) else 0.0
        if size == "1k":
            if measured(ngx):
                a, b = num(syn["rps"]), num(ngx["rps"])
                line(
                    a >= 1.8 * b,
                    f"{title(size)}: {a:,.0f} req/s = {a / b:.2f} x nginx's {b:,.0f} "
                    "(goal >= 1.8 x)",
                )
                if f:
                    c = num(flo["rps"])
                    note(
                        f"for scale: the floor server did {c:,.0f} req/s = {c / b:.2f} x "
                        "nginx's in this run"
                    )
            else:
                line(None, f"{title(size)}: req/s against nginx (nginx not measured)")
            cpu = (
                f"{title(size)}: CPU {t:.2f} µs per file (user {num(syn['user_us']):.2f}, "
                f"system {num(syn['sys_us']):.2f})"
            )
            scale = goal_1k / floor_1k if floor_1k else 0.0
            if f and scale:
                line(
                    t <= f * scale,
                    f"{cpu} = {t / f:.2f} x the floor server's {f:.2f} measured in this run "
                    f"(user {num(flo['user_us']):.2f}, "
                    f"system {num(flo['sys_us']):.2f}); goal <= {scale:.2f} x "
                    f"(the issue's {goal_1k:g} against its floor of {floor_1k:g}): "
                    f"<= {f * scale:.2f}",
                )
            else:
                line(None, f"{cpu}: against the floor server (no figures of it in this run)")
            line(
                t <= goal_1k,
                f"{title(size)}: CPU {t:.2f} µs per file; the issue's absolute goal <= "
                f"{goal_1k:g} (a figure from another day, when its floor took about {floor_1k:g})"
                + (f"; nginx {num(ngx['total_us']):.2f}" if measured(ngx) else ""),
            )
        if size == "1m":
            if f:
                ref, what = f, "the floor server's splice measured in this run"
            else:
                ref = floor_1m
                what = "the issue's splice floor from another day (no floor server figures here)"
            line(
                t <= ref * 1.1,
                f"{title(size)}: CPU {t:.1f} µs per file = {t / ref:.2f} x {what}, {ref:.1f} µs "
                f"(goal within 10%: <= {ref * 1.1:.1f})",
            )
            if measured(ngx):
                b = num(ngx["total_us"])
                line(
                    t < b,
                    f"{title(size)}: CPU {t:.1f} µs per file below nginx's {b:.1f} ({t / b:.2f} x)",
                )
                if f:
                    note(f"for scale: the floor server's {f:.1f} µs = {f / b:.2f} x nginx's")
            else:
                line(None, f"{title(size)}: CPU against nginx (nginx not measured)")
        if syn["errors"] != "-":
            note(f"synapserve's run had errors ({syn['errors']}): figures suspect")
        if measured(flo) and flo["errors"] != "-":
            note(f"the floor server's run had errors ({flo['errors']}): its figures are suspect")
    return lines


def main() -> int:
    rows = load_rows(env("BENCH_REPORT_TSV"))
    sysc = load_rows_if(env("BENCH_REPORT_SYSC"))
    notes = load_notes()
    floor_1m = num(env("FLOOR_1M", "92"))
    floor_1k = num(env("FLOOR_1K", "5"))
    goal_1k = num(env("GOAL_1K", "6"))
    idle_max = num(env("IDLE_MAX", "15"))
    by_size = group(rows, "size", "server")

    when = now()
    versions = [env("VER_SYN")] if env("VER_SYN") else []
    head = [
        run_line(when, [*versions, f"nginx {env('VER_NGINX')}", f"wrk {env('VER_WRK')}"]),
        machine_line(
            f"Server on CPU {env('SERVER_CPU')}, wrk (1 thread, {env('CONNS')} connections) on "
            f"CPU {env('LOAD_CPU')}"
        ),
        load_line(),
        *quiet_lines(rows, ("size", "server"), idle_max),
    ]

    tables: list[str] = []
    doc_tables: list[str] = []
    for size, rs in by_size.items():
        tables += size_table(size, rs, idle_max)
        doc_tables += size_table(size, rs, idle_max, "####")

    legend = [
        "CPU µs/req: the server's utime and stime over the measured run (all threads, the "
        "floor server's io-wq workers included; nginx: master + worker) divided by the "
        "requests wrk completed. Peak RSS: VmHWM of the "
        "process (nginx: its worker), the server started fresh for each size. Server CPU busy: "
        "CPU µs/req x req/s, how much of its core the server used (well below 100%: the server "
        "was not the bottleneck, wrk on the other core set the pace, and req/s says little "
        "about the server). Bytes/response: what wrk read per response, head included. wrk "
        "µs/req: what the client spent per request. Other load: CPU used by processes other "
        "than the server and wrk during the run, in % of one CPU. Ratios: synapserve's figure "
        "over nginx's, and over the floor server's (higher is better for req/s, lower for "
        "the rest).",
    ]

    goal_lines = goals(by_size, floor_1m, goal_1k, floor_1k)

    extra = []
    mem: list[str] = []
    for r in filter(has_extra, rows):
        if r["server"] == "synapserve":
            extra.append(f"- {title(r['size'])}: synapserve {r['extra']}")
        if r["server"] == "nginx":
            mem.append(f"{title(r['size'])}: {r['extra']}")
        if r["server"] == "floor":
            extra.append(f"- {title(r['size'])}: the floor server's {r['extra']}")

    sys_lines = []
    if sysc:
        sys_lines = [
            f"### Syscalls per request (strace -c -f, {env('CONNS')} connections, 3 s)",
            "",
            "strace slows every server down a lot; only the counts per request matter here. "
            "io_uring operations (synapserve's and the floor server's reads, sends and "
            "splices) are not syscalls of their own: they show up as `io_uring_enter` (the "
            "floor server's splices run in io-wq workers, which strace cannot follow).",
            "",
            "| server | file | requests | syscalls | per request | most frequent |",
            "|---|---|---:|---:|---:|---|",
        ]
        for s in sysc:
            sys_lines.append(
                f"| {s['server']} | {SIZE_TITLES.get(s['size'], s['size'])} | {s['requests']} "
                f"| {s['syscalls']} | {s['per_request']} | {s['top']} |"
            )
        sys_lines.append("")

    configs = [
        "Configurations (written to build/bench-static/runs/, with each server's response "
        "head as `SIZE-SERVER.head.txt`):",
        '- synapserve: `workers = 1`, `max_connections = 4096`, `[log] access = "off"`, one '
        'site `*` with one route `path = "/"`, `static = { root = DIR, compress = false }`.',
        "- nginx: `worker_processes 1`, `access_log off`, `open_file_cache max=16 "
        "inactive=600s` with `open_file_cache_valid 600s`, `keepalive_requests` 10^9, "
        "`keepalive_timeout 300s`, `tcp_nodelay on`, `root DIR`; for 1 KiB "
        f"`{env('NGINX_1K')}` ({tuning_note('1k')}), for 1 MiB `{env('NGINX_1M')}` "
        f"({tuning_note('1m')}).",
        "- The files: `/1k` (1024 bytes of base64 text) and `/1m` (1048576 random bytes), "
        "from one temp directory, both served as `application/octet-stream`.",
        "- floor (`native/bench/static/floor.c`, gcc -O2, liburing): the issue's "
        '"deliberately minimal io_uring server", one thread, one ring (SINGLE_ISSUER | '
        "DEFER_TASKRUN), multishot accept, a recv into a fixed buffer per connection until "
        "`\\r\\n\\r\\n` (no parsing), then for 1 KiB a prebuilt response (head + the "
        "file read once at start) in one send; for 1 MiB the head (a send, MSG_MORE) and "
        "the file (opened once, explicit offsets) by IORING_OP_SPLICE into a pipe of 1 MiB "
        "per connection, then IORING_OP_SPLICE from the pipe into the socket; the kernel "
        "runs those splices in io-wq workers, pinned to the server's CPU. Its head: "
        "Content-Type and Content-Length only.",
        f"- Floors (issue 5): the issue measured, on another day, about {floor_1k:g} CPU µs "
        f"per 1 KiB file for such a server (goal for synapserve: <= {goal_1k:g}) and about "
        f"{floor_1m:g} per 1 MiB file with splice (goal: within 10%). "
        + (
            "The goals above are judged against the floor server measured in this run, "
            f"1 KiB as <= {goal_1k / floor_1k if floor_1k else 0:.2f} x its figure."
            if "floor" in env("SERVERS").split()
            else f"The floor server was not run: the 1 MiB goal uses {floor_1m:g} "
            "(`BENCH_FLOOR_1M_US`)."
        ),
    ]
    if mem:
        configs.append(master_rss_line(mem))

    md = ["# Static files benchmark (bench_static.sh)", "", *head, "", *tables, *legend, ""]
    md += ["## Goals", "", *goal_lines, ""]
    md += problems(notes)
    if extra or sys_lines:
        md += ["## Where the CPU goes", ""]
        if extra:
            md += [*extra, ""]
        md += sys_lines
    md += ["## Setup", "", *configs, ""]

    doc = [
        "## Static files: synapserve, nginx and a floor",
        "",
        "`make bench-static` (`bash native/bench/static/bench_static.sh`, part of `make bench`) "
        "serves a 1 KiB and a 1 MiB file from a static route of synapserve, from Debian's nginx "
        "and from a deliberately minimal io_uring server (the floor the issue's goals are "
        "measured against) in turn, each with one worker pinned to CPU 0, and loads them with "
        "wrk (1 thread, 256 connections) pinned to CPU 1. Each server is started fresh for each "
        "size, warmed up for 2 s, then measured for 10 s. The figure that survives a shared "
        "machine best is the CPU microseconds per request (the server's own utime and stime over "
        "the run); req/s and latency depend on the load generator's CPU too. The script waits "
        "for a quiet machine before each run and marks runs during which other processes used "
        "more CPU. Results: `build/bench-static/results.md`; every wrk output, config, response "
        "head and server log: `build/bench-static/runs/`.",
        "",
        "Environment knobs: `BENCH_DURATION`, `BENCH_WARMUP`, `BENCH_SIZES` (default "
        '`"1k 1m"`), `BENCH_SERVERS`, `BENCH_CONNS`, `BENCH_STRACE=0` (skip the syscall '
        "counts), `BENCH_PORT_BASE` (default 27110), `BENCH_IDLE_MAX`, `BENCH_FLOOR_1M_US` "
        "(used only without the floor server), `BENCH_GOAL_1K_US`, `BENCH_FLOOR_1K_US`, "
        "`BENCH_NGINX_1K` / `BENCH_NGINX_1M` (other nginx variants); see the script's header.",
        "",
        *configs,
        "",
        "Commands each run uses (ports from 27110):",
        "",
        "```sh",
        "taskset -c 0 .venv/bin/synapserve run --config-dir $T/conf          # :27110",
        "taskset -c 0 nginx -p $T/ngx/ -c $T/ngx/nginx.conf                  # :27112",
        "taskset -c 0 build/bench-static/floor 27113 $T/www/1k small         # :27113",
        "taskset -c 0 build/bench-static/floor 27113 $T/www/1m splice        # :27113",
        "taskset -c 1 wrk -t1 -c256 -d2s http://127.0.0.1:PORT/1k            # warm-up",
        "taskset -c 1 wrk -t1 -c256 -d10s --latency http://127.0.0.1:PORT/1k # measured",
        "# around the measured run: /proc/PID/stat utime+stime, /proc/PID/status VmHWM",
        "strace -c -f -p PID                                                 # syscalls/request",
        "```",
        "",
        f"### Results ({when})",
        "",
        *head,
        "",
        *doc_tables,
        *legend,
        "",
        *goal_lines,
        "",
    ]
    return write(md, doc)


if __name__ == "__main__":
    sys.exit(main())
