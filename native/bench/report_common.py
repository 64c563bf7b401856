"""What the reports of bench_proxy.sh, bench_static.sh and bench_tls.sh share.

Each report.py imports it (its directory, native/bench, put on sys.path).  The
reports read the TSV files their script wrote and the environment the script
exported (lib.sh's export_report_env and the script's own settings).  Standard
library only.
"""

from __future__ import annotations

import csv
import datetime
import os
import sys

SYN_CMD_DEFAULT = ".venv/bin/synapserve"
STEAL_MAX = 5  # % of a CPU the hypervisor may steal during a run unremarked
MARKS = {True: "met", False: "**NOT met**", None: "not measured"}


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def num(v: str | None) -> float:
    try:
        return float(v or 0)
    except (TypeError, ValueError):
        return 0.0


def fmt(v: float, digits: int = 1) -> str:
    return f"{v:,.{digits}f}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


def now() -> str:
    return datetime.datetime.now().strftime("%Y-%m-%d %H:%M")


# ---- the results --------------------------------------------------------------


def load_rows(path: str) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def load_rows_if(path: str) -> list[dict]:
    """load_rows, or none when the file is not there."""
    return load_rows(path) if os.path.exists(path) else []


def load_notes() -> list[str]:
    """The script's notes (BENCH_REPORT_NOTES): one problem a line."""
    path = env("BENCH_REPORT_NOTES")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [x.rstrip("\n") for x in f if x.strip()]


def group(rows: list[dict], case: str, name: str) -> dict[str, dict]:
    """The rows by case (scenario or size), then by name (proxy or server)."""
    by: dict[str, dict] = {}
    for r in rows:
        by.setdefault(r[case], {})[r[name]] = r
    return by


def ok(row: dict) -> bool:
    return row["status"] in ("ok", "errors")


def measured(row: dict | None) -> bool:
    return row is not None and ok(row) and int(num(row["rps"])) > 0


def busy_pct(row: dict) -> float:
    """How much of its core the target used: CPU µs per request x req/s."""
    return num(row["total_us"]) * num(row["rps"]) / 1e4


def has_extra(row: dict) -> bool:
    return row["extra"] not in ("-", "")


# ---- the head -------------------------------------------------------------------


def run_line(when: str, versions: list[str]) -> str:
    return f"Run {when}, {env('ELAPSED')} s; git {env('GIT_REV')}; " + "; ".join(versions) + "."


def machine_line(placement: str) -> str:
    """placement: which CPU runs what."""
    return (
        f"Machine: {env('NCPU')} x {env('CPU_MODEL')}, Linux {env('KERNEL')}. {placement}; "
        f"{env('WARMUP')} s warm-up, then {env('DURATION')} s measured."
    )


def load_line() -> str:
    return (
        f"Load: `{env('UPTIME_START').strip()}` at the start, "
        f"`{env('UPTIME_END').strip()}` at the end (this includes the benchmark itself)."
    )


def flagged(rows: list[dict], keys: tuple[str, str], col: str, limit: float) -> list[str]:
    """'case name (N%)' for the rows whose col is above limit."""
    return [
        f"{r[keys[0]]} {r[keys[1]]} ({r[col]}%)"
        for r in rows
        if r[col] not in ("-", "") and num(r[col]) > limit
    ]


def quiet_lines(
    rows: list[dict], keys: tuple[str, str], idle_max: float, rates: str = "req/s"
) -> list[str]:
    """How the runs were made: another synapserve command, and the runs during
    which other processes were busy (or none) or the hypervisor stole time."""
    out = []
    if env("SYN_CMD", SYN_CMD_DEFAULT) != SYN_CMD_DEFAULT:
        out.append(f"**synapserve was run as `{env('SYN_CMD')}`**, not the tree's build.")
    busy = flagged(rows, keys, "others_pct", idle_max)
    if busy:
        out.append(
            f"**The machine was not quiet** (other processes above {idle_max:g}% of a CPU) "
            f"during: {', '.join(busy)}. Their {rates} and latency are suspect; CPU per request "
            "is less affected."
        )
    else:
        out.append(
            f"Other processes used at most {idle_max:g}% of a CPU during every measured run."
        )
    steal = flagged(rows, keys, "steal_pct", STEAL_MAX)
    if steal:
        out.append(f"Hypervisor steal above {STEAL_MAX}% during: {', '.join(steal)}.")
    return out


# ---- tables and goals -------------------------------------------------------------


def others_cell(row: dict, idle_max: float) -> str:
    others = row["others_pct"]
    if others not in ("-", "") and num(others) > idle_max:
        return f"**{others}** (busy)"
    return others


def cpu_cells(row: dict) -> list[str]:
    """CPU µs per request: user, sys, total; and busy %."""
    cells = [fmt(num(row[k]), 2) for k in ("user_us", "sys_us", "total_us")]
    return [*cells, fmt(busy_pct(row), 0)]


def rss_cell(row: dict) -> str:
    return fmt(num(row["hwm_kib"]) / 1024)


def ratio_cells(a: dict, b: dict) -> list[str]:
    """a's figures over b's, for the columns req/s to CPU total, busy (empty)
    and peak RSS."""
    cells = [
        ratio(num(a[k]), num(b[k]))
        for k in ("rps", "p50_ms", "p99_ms", "user_us", "sys_us", "total_us")
    ]
    return [*cells, "", ratio(num(a["hwm_kib"]), num(b["hwm_kib"]))]


class Goals(list):
    """The goal lines: line() one goal, met or not, note() a remark under it."""

    def line(self, met: bool | None, text: str) -> None:
        self.append(f"- {MARKS[met]}: {text}")

    def note(self, text: str) -> None:
        self.append(f"  - {text}")


def problems(notes: list[str]) -> list[str]:
    return ["## Problems seen", "", *[f"- {n}" for n in notes], ""] if notes else []


def master_rss_line(mem: list[str]) -> str:
    return "- nginx's peak RSS in the tables is its worker's; its master's: " + "; ".join(mem) + "."


# ---- the output -------------------------------------------------------------------


def write(md: list[str], doc: list[str]) -> int:
    """results.md and doc-section.md into BENCH_REPORT_OUT; results.md printed."""
    out_dir = env("BENCH_REPORT_OUT")
    text = "\n".join(md)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out_dir, "doc-section.md"), "w") as f:
        f.write("\n".join(doc))
    sys.stdout.write(text)
    return 0
