"""cffi builder for synapserve._native (API, out-of-line mode).

Reads native/include/syn_abi.h, the one header of the boundary, and
compiles every C source under native/src into the extension module.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parents[2]
NATIVE = ROOT / "native"
ABI_HEADER = NATIVE / "include" / "syn_abi.h"

CFLAGS = ["-std=gnu11", "-O2", "-g", "-Wall", "-Wextra", "-Werror"]
# SYN_SANITIZE=1 builds the engine with AddressSanitizer and UBSan, for
# running the integration tests against it (python needs libasan preloaded).
SANITIZE = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=all"]
if os.environ.get("SYN_SANITIZE") == "1":
    CFLAGS = [f for f in CFLAGS if f != "-O2"] + ["-O1"] + SANITIZE
# cffi's generated wrapper is not ours to keep -Wextra clean.
WRAPPER_RELAX = ["-Wno-unused-parameter", "-Wno-missing-field-initializers"]


def cdef_source(header: Path) -> str:
    """The header as cdef() takes it: comments and preprocessor lines out, integer
    constants substituted where used (array sizes) and kept as `#define NAME value`
    so that Python can read them as lib.NAME."""
    text = re.sub(r"/\*.*?\*/", "", header.read_text(), flags=re.S)
    consts: dict[str, str] = {}
    body = []
    for line in text.splitlines():
        m = re.match(r"\s*#\s*define\s+([A-Z_][A-Z0-9_]*)\s+(0x[0-9a-fA-F]+|\d+)\s*$", line)
        if m:
            consts[m.group(1)] = m.group(2)
        elif not line.lstrip().startswith("#"):
            body.append(line)
    out = "\n".join(body)
    for name, value in consts.items():
        out = re.sub(rf"\b{name}\b", value, out)
    return "\n".join(f"#define {n} {v}" for n, v in consts.items()) + "\n" + out


def sources() -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in (NATIVE / "src").glob("*.c"))


ffibuilder = FFI()
ffibuilder.cdef(cdef_source(ABI_HEADER))
ffibuilder.set_source(
    "synapserve._native",
    '#include "syn_abi.h"\n',
    sources=sources(),
    include_dirs=[str(NATIVE / "include"), str(NATIVE / "src")],
    extra_compile_args=CFLAGS + WRAPPER_RELAX,
    libraries=["uring", "ssl", "crypto", "pthread"],
    extra_link_args=SANITIZE if os.environ.get("SYN_SANITIZE") == "1" else [],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
