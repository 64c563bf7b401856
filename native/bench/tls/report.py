"""The report of bench_tls.sh: results.md (printed) and doc-section.md.

Reads the results.tsv and tls.tsv the script wrote; everything else comes from
the environment (see the end of bench_tls.sh).  Standard library only.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from report_common import (  # noqa: E402
    Goals,
    busy_pct,
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
    measured,
    now,
    num,
    others_cell,
    problems,
    quiet_lines,
    ratio,
    ratio_cells,
    rss_cell,
    run_line,
    write,
)

PEERS = ("nginx", "haproxy")
ORDER = ("synapserve", *PEERS)


def kind(sc: str) -> str:
    return sc.split("-", 1)[0]


def conns(sc: str) -> str:
    return sc.split("-", 1)[1]


def title(sc: str) -> str:
    k, n = kind(sc), conns(sc)
    return {
        "1k": f"TLS 1.3 keep-alive, 1 KiB responses, {n} connections",
        "1m": f"TLS 1.3 keep-alive, 1 MiB responses, {n} connections",
        "hs": f"New TLS 1.3 connections (a full handshake and one 1 KiB request each), {n} "
        "connections",
        "resume": f"Resumed TLS 1.3 connections (session ticket; one 1 KiB request each), {n} "
        "connections",
    }.get(k, sc)


def per_conn(sc: str) -> bool:
    return kind(sc) in ("hs", "resume")


def rate_name(sc: str) -> str:
    return {"hs": "handshakes/s", "resume": "resumptions/s"}.get(kind(sc), "req/s")


def unit(sc: str) -> str:
    return {"hs": "handshake", "resume": "resumption"}.get(kind(sc), "request")


BUSY_MIN = 90  # % of its core below which a proxy was not the bottleneck


def hs_cell(r: dict) -> str:
    if r["hs_full"] in ("-", "") and r["hs_resumed"] in ("-", ""):
        return "-"
    return f"{r['hs_full']} / {r['hs_resumed']}"


def scenario_table(sc: str, rows: dict, idle_max: float, level: str = "###") -> list[str]:
    hs = per_conn(sc)
    u = "conn" if hs else "req"
    head = (
        f"| proxy | {rate_name(sc)} | p50 ms | p99 ms | CPU µs/{u} user | sys | total "
        "| proxy CPU busy % | peak RSS MiB | new upstream conns (timed / warm-up) "
        f"| wrk µs/{u} | backend µs/{u} |"
        + (" wrk's handshakes full / resumed |" if hs else "")
        + " errors | other load % CPU | status |"
    )
    align = "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if hs else "")
    out = [f"{level} {title(sc)}", "", head, align + "---|---:|---|"]
    for p in [p for p in ORDER if p in rows]:
        r = rows[p]
        good = num(r["rps"]) > 0 and num(r["total_us"]) > 0
        if good:
            cpu = cpu_cells(r)
            rss = rss_cell(r)
            up = f"{r['up_new_timed']} / {r['up_new_warm']}"
            side = [fmt(num(r["wrk_us"]), 2), fmt(num(r["backend_us"]), 2)]
            p50, p99 = fmt(num(r["p50_ms"]), 2), fmt(num(r["p99_ms"]), 2)
        else:
            cpu, rss, up, side = ["-"] * 4, "-", "-", ["-", "-"]
            p50 = p99 = "-"
        others = others_cell(r, idle_max)
        out.append(
            f"| {p} | {fmt(num(r['rps']), 0)} | {p50} | {p99} | {cpu[0]} | {cpu[1]} | {cpu[2]} "
            f"| {cpu[3]} | {rss} | {up} | {side[0]} | {side[1]} |"
            + (f" {hs_cell(r)} |" if hs else "")
            + f" {r['errors']} | {others} | {r['status']} |"
        )
    syn = rows.get("synapserve")
    tail = " | | | |" + (" |" if hs else "") + " | | |"
    for peer in PEERS:
        if measured(syn) and measured(rows.get(peer)):
            cells = ratio_cells(syn, rows[peer])
            out.append(f"| synapserve ÷ {peer} | " + " | ".join(cells) + tail)
    out.append("")
    return out


def summary(by_sc: dict) -> list[str]:
    """One line per scenario: rate and CPU per request (or connection) of each
    proxy, and synapserve's ratios."""
    procs = [p for p in ORDER if any(p in rows for rows in by_sc.values())]
    peers = [p for p in PEERS if p in procs]
    head = "| scenario | figure | " + " | ".join(procs)
    head += "".join(f" | synapserve ÷ {p}" for p in peers if "synapserve" in procs) + " |"
    n = len(procs) + (len(peers) if "synapserve" in procs else 0)
    out = [head, "|---|---|" + "---:|" * n]
    for sc, rows in by_sc.items():
        figures = [
            ("rps", rate_name(sc), 0),
            ("total_us", f"CPU µs/{unit(sc)} (user + sys)", 1),
        ]
        if per_conn(sc):
            figures.append(("per_core", f"{rate_name(sc)} per core (10^6 / CPU µs)", 0))
        for r in rows.values():
            r["per_core"] = str(1e6 / num(r["total_us"])) if num(r["total_us"]) else "0"
        for key, label, digits in figures:
            cells = [
                fmt(num(rows[p][key]), digits) if measured(rows.get(p)) else "-" for p in procs
            ]
            if "synapserve" in procs:
                syn = rows.get("synapserve")
                for p in peers:
                    r = rows.get(p)
                    if syn is not None and r is not None and measured(syn) and measured(r):
                        cells.append(ratio(num(syn[key]), num(r[key])))
                    else:
                        cells.append("-")
            out.append(f"| {sc} | {label} | " + " | ".join(cells) + " |")
    out.append("")
    return out


def goals(by_sc: dict) -> list[str]:
    """The issue's goal: ahead of both peers, in req/s (handshakes/s) and in
    CPU per request (handshake)."""
    lines = Goals()
    line, note = lines.line, lines.note

    for sc, rows in by_sc.items():
        syn = rows.get("synapserve")
        if not measured(syn):
            status = syn["status"] if syn else "not run"
            line(None, f"{title(sc)}: synapserve has no figures ({status})")
            continue
        peers = [(p, rows[p]) for p in PEERS if measured(rows.get(p))]
        if not peers:
            line(None, f"{title(sc)}: no peer measured")
            continue
        s, c = num(syn["rps"]), num(syn["total_us"])
        line(
            all(s > num(r["rps"]) for _, r in peers),
            f"{title(sc)}: {s:,.0f} {rate_name(sc)}, more than "
            + " and ".join(f"{p} ({num(r['rps']):,.0f})" for p, r in peers),
        )
        idle = [
            f"{p} {busy_pct(r):.0f}%"
            for p, r in [("synapserve", syn), *peers]
            if busy_pct(r) < BUSY_MIN
        ]
        if idle:
            note(
                f"busy below {BUSY_MIN}% of its core: "
                + ", ".join(idle)
                + ": that rate was set by the other core (wrk"
                + (", which does the client's half of every handshake," if per_conn(sc) else "")
                + " and the backend), not by the proxy; compare the CPU per "
                + unit(sc)
            )
        line(
            all(c < num(r["total_us"]) for _, r in peers),
            f"{title(sc)}: CPU {c:.1f} µs/{unit(sc)}, less than "
            + " and ".join(f"{p} ({num(r['total_us']):.1f})" for p, r in peers),
        )
        if syn["errors"] != "-":
            note(f"synapserve's run had errors ({syn['errors']}): figures suspect")
    return lines


def handshake_checks(rows: list[dict]) -> list[str]:
    """What wrk_tls.so counted: hs-N should be all full handshakes, resume-N
    mostly resumed ones, and about one per request."""
    out = []
    for r in rows:
        k = kind(r["scenario"])
        if k not in ("hs", "resume") or not measured(r):
            continue
        full, res, req = num(r["hs_full"]), num(r["hs_resumed"]), num(r["requests"])
        where = f"{r['scenario']} {r['proxy']}"
        if r["hs_full"] in ("-", ""):
            out.append(f"{where}: wrk_tls.so counted nothing (no handshake figures)")
            continue
        if k == "hs" and res > 0:
            out.append(f"{where}: {res:.0f} of {full + res:.0f} handshakes were resumed")
        if k == "resume" and res < 0.9 * (full + res):
            out.append(
                f"{where}: only {res:.0f} of {full + res:.0f} handshakes were resumed "
                "(the proxy did not accept most of wrk's session tickets)"
            )
        if req and abs(full + res - req) > max(0.02 * req, 2 * num(conns(r["scenario"]))):
            out.append(f"{where}: {full + res:.0f} handshakes for {req:.0f} requests")
    return out


def main() -> int:
    rows = load_rows(env("BENCH_REPORT_TSV"))
    tls = load_rows_if(env("BENCH_REPORT_TLS"))
    notes = load_notes() + handshake_checks(rows)
    idle_max = num(env("IDLE_MAX", "15"))
    by_sc = group(rows, "scenario", "proxy")

    ktls_kernel = env("KTLS_KERNEL") == "yes"
    ktls = (
        (
            "**Kernel TLS**: this kernel has the `tls` module (/proc/net/tls_stat), so "
            'synapserve (`ktls = "auto"`) hands its connections\' keys to the kernel after '
            "the handshake; nginx and HAProxy are not configured for it. These figures mix "
            "kernel TLS (synapserve) and user-space TLS (the peers)."
        )
        if ktls_kernel
        else (
            "**Kernel TLS is not used**: this kernel has no `tls` module (no "
            "/proc/net/tls_stat), so synapserve (which hands its keys to the kernel where it "
            "can) encrypts in user space like nginx and HAProxy: every record is encrypted "
            "and decrypted by OpenSSL in user space in all three proxies; these are user-space "
            "TLS figures."
        )
    )
    when = now()
    head = [
        run_line(
            when,
            [
                env("VER_SYN"),
                f"nginx {env('VER_NGINX')}",
                f"HAProxy {env('VER_HAPROXY')}",
                f"wrk {env('VER_WRK')}",
                env("VER_OPENSSL"),
            ],
        ),
        machine_line(
            f"Proxy on CPU {env('PROXY_CPU')}, wrk (1 thread) and the backend nginx on CPU "
            f"{env('LOAD_CPU')}"
        ),
        ktls,
        load_line(),
        *quiet_lines(rows, ("scenario", "proxy"), idle_max, "rates"),
    ]

    tables: list[str] = []
    doc_tables: list[str] = []
    for sc, rs in by_sc.items():
        tables += scenario_table(sc, rs, idle_max)
        doc_tables += scenario_table(sc, rs, idle_max, "####")

    legend = [
        "CPU µs/req (µs/conn for the new and resumed connections: one connection, its handshake and"
        " one request): the proxy's utime and stime over the measured run (all threads; nginx: "
        "master + worker) divided by the requests wrk completed. Keep-alive runs include the "
        "handshakes of wrk's connections at the start of the run (256 in 10 s), which also show in "
        "their p99. Per core: the rate one fully busy core would give at that CPU cost. Peak RSS: "
        "VmHWM of the process (nginx: its worker), the proxy started fresh for each scenario. New "
        "upstream conns: connections the backend accepted (its stub_status) during the measured run"
        " / during start-up and warm-up. Proxy CPU busy: CPU µs x rate, how much of its core the "
        "proxy used (below 100%, the proxy was not the bottleneck: wrk, which does the client's "
        "half of every handshake, and the backend share the other core). wrk and backend µs: what "
        "the other side spent. wrk's handshakes: full / resumed, counted in wrk by wrk_tls.so. p50 "
        "/ p99 of new and resumed connections: wrk starts its clock once the handshake is done, so "
        "they are the request's latency only. Other load: CPU used by processes other than the "
        "proxy, the backend and wrk during the run, in % of one CPU. Ratios: synapserve's figure "
        "over the peer's (higher is better for the rates, lower for the rest).",
    ]

    goal_lines = goals(by_sc)

    extra = []
    mem: list[str] = []
    for r in filter(has_extra, rows):
        if r["proxy"] == "synapserve":
            extra.append(f"- {title(r['scenario'])}: synapserve {r['extra'].lstrip('; ')}")
        if r["proxy"] == "nginx":
            mem.append(f"{r['scenario']}: {r['extra']}")

    tls_lines = []
    if tls:
        tls_lines = [
            "What a client gets (`openssl s_client -brief`, once per proxy; runs/*.s_client.txt):",
            "",
            "| proxy | protocol | cipher suite | key exchange | signature |",
            "|---|---|---|---|---|",
            *[
                f"| {t['proxy']} | {t['protocol']} | {t['cipher']} | {t['group']} "
                f"| {t['signature']} |"
                for t in tls
            ],
            "",
        ]

    configs = [
        "Configurations (written to build/bench-tls/runs/):",
        "- Certificate: one self-signed ECDSA P-256 certificate for all three, made with "
        f"`{env('CERT_CMD')}` into build/bench-tls/cert/ (HAProxy: cert and key in one PEM). "
        "wrk does not verify it.",
        "- synapserve: `workers = 1`, `max_connections = 4096`, a listener with "
        '`tls = { certificates = [{ cert, key }], min_version = "1.3" }` (tickets and '
        'OpenSSL\'s defaults otherwise), `[log] access = "off"`, upstream '
        f"`keepalive = {env('SYN_KEEPALIVE')}`, one site `*` with route `/`.",
        "- nginx: `worker_processes 1`, `listen ... ssl`, `ssl_protocols TLSv1.3`, "
        "`ssl_session_cache shared:SSL:10m`, `ssl_session_timeout 1h` (session tickets on, "
        "the default), upstream `keepalive 1024`, `keepalive_requests` and "
        "`keepalive_timeout` high both ways, `proxy_http_version 1.1`, "
        '`proxy_set_header Connection ""`, `access_log off`; for 1 MiB `proxy_buffering off` '
        "with `proxy_buffer_size 256k` (the cheapest variant bench_proxy.sh found).",
        "- HAProxy: `nbthread 1`, `bind ... ssl crt ... ssl-min-ver TLSv1.3 alpn http/1.1` "
        "(+ `ssl-default-bind-options ssl-min-ver TLSv1.3`; tickets and the session cache on, "
        "the defaults), `http-reuse always`, `pool-purge-delay 60s`, no logging. (No splice: "
        "HAProxy cannot splice into a TLS connection.)",
        "- wrk: `-t1`, HTTPS; the new-connection runs add `-H 'Connection: close'`, so that "
        "every request opens a connection. wrk keeps the TLS session in its SSL object "
        "across reconnects and so resumes it from the server's last ticket: for the "
        "full-handshake runs (`hs-N`) wrk runs with `native/bench/tls/wrk_tls.so` "
        "(LD_PRELOAD) which drops that session before each handshake; `resume-N` is wrk as it "
        "is. wrk_tls.so counts both kinds in both.",
        "- Backend: nginx, 1 worker, plain HTTP, files from a temp dir, `sendfile on`, "
        "`keepalive_requests` 10^9, `access_log off`, `stub_status`.",
    ]
    if mem:
        configs.append(master_rss_line(mem))

    ktls_note = [
        "What kernel TLS would change (not measured here; the issue's kTLS test runs in a "
        "VM, whose figures are not performance figures): the handshakes stay in user space, "
        "so new and resumed connections would cost what they cost here; after the handshake "
        "the record encryption moves into the kernel (AES-GCM in the kernel's crypto, so user CPU "
        "turns into system CPU rather than vanishing), and large responses can again go "
        "by splice or sendfile without passing through user space.",
    ]

    md = ["# TLS termination benchmark (bench_tls.sh)", "", *head, ""]
    md += ["## Summary", "", *summary(by_sc)]
    md += [*tables, *legend, ""]
    md += ["## Goals (issue 6: ahead of both)", "", *goal_lines, ""]
    md += problems(notes)
    if extra:
        md += ["## synapserve's counters", "", *extra, ""]
    md += ["## Kernel TLS", "", ktls, "", *ktls_note, ""]
    md += ["## Setup", "", *tls_lines, *configs, ""]

    doc = [
        "## TLS termination: synapserve, nginx and HAProxy",
        "",
        "`make bench` (the TLS part: `bash native/bench/tls/bench_tls.sh`) runs one plain-HTTP "
        "backend (nginx, 1 worker, serving 1 KiB and 1 MiB files) and puts each proxy in front "
        "of it in turn, terminating TLS 1.3 with one self-signed ECDSA P-256 certificate, with "
        "one worker pinned to CPU 0; wrk (1 thread, HTTPS) and the backend share CPU 1. "
        "Scenarios: keep-alive requests for 1 KiB and 1 MiB responses over 256 connections; "
        "new connections, each with a full handshake and one 1 KiB request (`Connection: "
        "close`, 64 connections at a time); and the same with the session resumed from a "
        "ticket. Each proxy is started fresh for each scenario, warmed up for 2 s, then "
        "measured for 10 s. The figures that survive a shared machine best are the CPU "
        "microseconds per request or connection (the proxy's own utime and stime over the "
        "run). Results: `build/bench-tls/results.md`; every wrk output, config and proxy log: "
        "`build/bench-tls/runs/`.",
        "",
        ktls,
        "",
        *ktls_note,
        "",
        "Environment knobs: `BENCH_DURATION`, `BENCH_WARMUP`, `BENCH_SCENARIOS` "
        '(default `"1k-256 1m-256 hs-64 resume-64"`), `BENCH_PROXIES`, `BENCH_PORT_BASE` '
        "(default 27130), `BENCH_IDLE_MAX`, `BENCH_SYN_KEEPALIVE`, `BENCH_NO_BUILD`; see the "
        "script's header.",
        "",
        *configs,
        "",
        "Commands each run uses (ports from 27130):",
        "",
        "```sh",
        "taskset -c 1 nginx -p $T/backend/ -c $T/backend/nginx.conf          # backend :27130",
        "taskset -c 0 .venv/bin/synapserve run --config-dir $T/conf          # :27131",
        "taskset -c 0 nginx -p $T/ngx/ -c $T/ngx/nginx.conf                  # :27133",
        "taskset -c 0 haproxy -db -f $T/hap/haproxy.cfg                      # :27134",
        "taskset -c 1 wrk -t1 -c256 -d10s --latency https://127.0.0.1:PORT/1k  # keep-alive",
        "taskset -c 1 env LD_PRELOAD=build/bench-tls/wrk_tls.so WRK_TLS_MODE=full \\",
        "    wrk -H 'Connection: close' -t1 -c64 -d10s --latency https://127.0.0.1:PORT/1k",
        "# around the measured run: /proc/PID/stat utime+stime, /proc/PID/status VmHWM,",
        "# curl http://127.0.0.1:27130/stub_status (accepts)",
        "```",
        "",
        f"### Results ({when})",
        "",
        *head,
        "",
        *summary(by_sc),
        *doc_tables,
        *legend,
        "",
        *goal_lines,
        "",
    ]
    return write(md, doc)


if __name__ == "__main__":
    sys.exit(main())
