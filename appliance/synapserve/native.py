"""The one module that imports the compiled engine (synapserve._native).

Everything else in the package goes through the functions here, so the
boundary stays in one place and is easy to check: a handful of calls per
start or reload, never per request.
"""

from __future__ import annotations

from dataclasses import dataclass

from synapserve import _native  # type: ignore[attr-defined]

ffi = _native.ffi
lib = _native.lib

ABI_VERSION = 1

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
