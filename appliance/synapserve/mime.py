"""Content types of static files, by extension: /etc/mime.types (Debian's
media-types), read by the control plane when a config is applied and handed
to the engine in the plan. A small built-in table stands in when the file is
missing; an unknown extension is served as application/octet-stream."""

from __future__ import annotations

import logging

log = logging.getLogger("synapserve")

MIME_TYPES = "/etc/mime.types"
EXT_MAX = 15  # SYN_EXT_MAX - 1
TYPE_MAX = 95  # SYN_MIME_MAX - 1

BUILTIN = {
    "html": "text/html",
    "htm": "text/html",
    "css": "text/css",
    "js": "text/javascript",
    "mjs": "text/javascript",
    "json": "application/json",
    "map": "application/json",
    "txt": "text/plain",
    "xml": "application/xml",
    "svg": "image/svg+xml",
    "wasm": "application/wasm",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "avif": "image/avif",
    "ico": "image/vnd.microsoft.icon",
    "woff": "font/woff",
    "woff2": "font/woff2",
    "pdf": "application/pdf",
}

_COMPRESSIBLE = {
    "application/json",
    "application/javascript",
    "application/x-javascript",
    "application/ecmascript",
    "application/xml",
    "application/wasm",
    "image/svg+xml",
    "image/vnd.microsoft.icon",
}


def compressible(ctype: str) -> bool:
    """Worth a Brotli body: text, JSON, JavaScript, CSS, SVG, XML, WASM."""
    return (
        ctype.startswith("text/")
        or ctype in _COMPRESSIBLE
        or ctype.endswith("+json")
        or ctype.endswith("+xml")
    )


def parse(text: str) -> dict[str, str]:
    """mime.types lines ("type ext ext ..."): extension -> type, the first
    line naming an extension wins."""
    types: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2 or "/" not in fields[0] or len(fields[0]) > TYPE_MAX:
            continue
        for ext in fields[1:]:
            ext = ext.lower()
            if len(ext) <= EXT_MAX and ext.isprintable():
                types.setdefault(ext, fields[0])
    return types


def load(path: str = MIME_TYPES) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return parse(f.read())
    except OSError as e:
        log.warning("cannot read %s (%s): a built-in table of types is used", path, e.strerror)
        return dict(BUILTIN)
