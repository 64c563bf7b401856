"""cffi builder for synapserve._native (API, out-of-line mode).

Reads native/include/syn_abi.h, the one header of the boundary, and
compiles every C source under native/src into the extension module.
"""

from __future__ import annotations

import re
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parents[2]
NATIVE = ROOT / "native"
ABI_HEADER = NATIVE / "include" / "syn_abi.h"

CFLAGS = ["-std=gnu11", "-O2", "-g", "-Wall", "-Wextra", "-Werror"]
# cffi's generated wrapper is not ours to keep -Wextra clean.
WRAPPER_RELAX = ["-Wno-unused-parameter", "-Wno-missing-field-initializers"]


def cdef_source(header: Path) -> str:
    """The header without preprocessor lines, which cdef() cannot parse."""
    text = header.read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


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
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
