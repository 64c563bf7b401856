"""The one module that imports the compiled engine (synapserve._native).

Everything else in the package goes through the functions here, so the
boundary stays in one place and is easy to check: a handful of calls per
start or reload, never per request.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from synapserve import _native  # type: ignore[attr-defined]

ffi = _native.ffi
lib = _native.lib

ABI_VERSION = 6

if lib.syn_abi_version() != ABI_VERSION:  # pragma: no cover - a broken build
    raise ImportError(
        f"synapserve._native has ABI {lib.syn_abi_version()}, this package expects {ABI_VERSION}"
    )


def native_version() -> str:
    return ffi.string(lib.syn_native_version()).decode()


def simd_level() -> str:
    """The SIMD level the parser uses on this CPU ("scalar", "sse4.2", "avx2")."""
    return ffi.string(lib.syn_simd_name(lib.syn_simd_level())).decode()


def simd_detected() -> str:
    return ffi.string(lib.syn_simd_name(lib.syn_simd_detect())).decode()


@dataclass(frozen=True, slots=True)
class ParseResult:
    rc: int  # head length, -1 invalid, -2 incomplete
    status: int  # 0 when valid, else the status the data plane answers with
    reason: str


def parse_request(data: bytes) -> ParseResult:
    """Diagnostics only: parse one request head with the native parser."""
    status = ffi.new("int *")
    reason = ffi.new("const char **")
    rc = lib.syn_abi_parse_request(data, len(data), status, reason)
    return ParseResult(rc, status[0], ffi.string(reason[0]).decode())


# ---- kernel features ---------------------------------------------------------

FEATURE_NAMES = (
    "io_uring",
    "multishot_accept",
    "multishot_recv",
    "buf_ring",
    "send_zc",
    "splice",
    "single_issuer",
    "defer_taskrun",
    "ktls",
)


KTLS_VERSIONS = ("TLS 1.2", "TLS 1.3")
KTLS_CIPHERS = ("AES-128-GCM", "AES-256-GCM", "ChaCha20-Poly1305")


def probe_features() -> dict[str, bool]:
    """What the running kernel offers the engine (creates and drops a ring)."""
    f = ffi.new("struct syn_features *")
    lib.syn_probe_features(f)
    return {name: bool(getattr(f, name)) for name in FEATURE_NAMES}


def ktls_suites() -> list[str]:
    """What kernel TLS takes both ways, e.g. ["TLS 1.3 AES-128-GCM", ...]."""
    f = ffi.new("struct syn_features *")
    lib.syn_probe_features(f)
    return [
        f"{v} {c}"
        for vi, v in enumerate(KTLS_VERSIONS)
        for ci, c in enumerate(KTLS_CIPHERS)
        if f.ktls_mask & (1 << (vi * len(KTLS_CIPHERS) + ci))
    ]


# ---- the engine ----------------------------------------------------------------


class EngineError(RuntimeError):
    pass


def _err_buf():
    return ffi.new("char[512]")


class Engine:
    """The native data plane: worker threads, each with its own io_uring.

    Methods are called a handful of times per start, reload or scrape; none
    is on a request path."""

    def __init__(self, workers: int, max_connections: int) -> None:
        cfg = ffi.new("struct syn_engine_config *")
        cfg.workers = workers
        cfg.max_connections = max_connections
        err = _err_buf()
        self._e = lib.syn_engine_create(cfg, err, len(err))
        if self._e == ffi.NULL:
            raise EngineError(ffi.string(err).decode())
        self.workers = workers
        self._stats = ffi.new("struct syn_stats *")
        self._started = False

    def apply(self, plan) -> None:
        """Swap in a plan built by synapserve.plan (validated again in C)."""
        err = _err_buf()
        if lib.syn_engine_apply(self._e, plan.ptr, err, len(err)) != 0:
            raise EngineError(ffi.string(err).decode())

    def start(self) -> None:
        rc = lib.syn_engine_start(self._e)
        if rc != 0:
            raise EngineError(
                f"cannot start the io_uring workers: {os.strerror(-rc)}"
                " (is io_uring denied here, by a seccomp filter or kernel.io_uring_disabled?)"
            )
        self._started = True

    def stop(self, grace_ms: int) -> None:
        if self._started:
            lib.syn_engine_stop(self._e, grace_ms)
            self._started = False

    def close(self) -> None:
        if self._e != ffi.NULL:
            lib.syn_engine_destroy(self._e)
            self._e = ffi.NULL

    def gc(self) -> int:
        return lib.syn_engine_gc(self._e)

    def static_changed(self) -> None:
        """Files under a static root (or their compressed bodies) changed."""
        if self._e != ffi.NULL:  # after close(), a late report is dropped
            lib.syn_engine_static_changed(self._e)

    def set_server_up(self, slot: int, up: bool) -> None:
        lib.syn_engine_server_set_up(self._e, slot, 1 if up else 0)

    def server_added(self, slot: int, up: bool) -> None:
        """A server new to its slot: fresh passive state, slow_start from now."""
        lib.syn_engine_server_added(self._e, slot, 1 if up else 0)

    def server_status(self, slot: int) -> dict[str, int]:
        st = ffi.new("struct syn_server_status *")
        lib.syn_engine_server_status(self._e, slot, st)
        return {"up": st.up, "ejected": st.ejected, "active": st.active, "fails": st.fails}

    def stats(self):
        """Counters summed over workers, as a cffi struct syn_stats (read only)."""
        lib.syn_engine_stats(self._e, self._stats)
        return self._stats


def histogram_bounds_seconds() -> list[float]:
    n = lib.SYN_HIST_BUCKETS
    out = ffi.new("uint64_t[]", n)
    lib.syn_stats_buckets(out, n)
    return [out[i] / 1e6 for i in range(n)]
