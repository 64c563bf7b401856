"""Helpers of test_static.py: trees of files with known content, what docs/static-files.md says
the handler answers for each (ETag, Last-Modified, Content-Type), and a download that streams
into a checksum instead of memory."""

from __future__ import annotations

import email.utils
import hashlib
import os
import socket
import stat
from dataclasses import dataclass, field
from pathlib import Path

from harness import DEFAULT_HOST, IO_TIMEOUT, LOCALHOST, Proxy, Response, wait_for

# Every file of a fixture tree gets this mtime (2023-11-14, with nanoseconds): Last-Modified is
# then known, and "not newer" must be judged at the one-second grain of the HTTP date.
FIXED_MTIME_NS = 1_700_000_000_123_456_789
FRESH_WITHIN = 1.5  # "a file replaced on disk is served fresh within a second", plus slack
BR_WITHIN = 3.0  # the control plane compresses after start or a change, asynchronously
MiB = 1 << 20
SMALL_SIZE = 5000  # /small.bin: its body fits beside the head (pread)
BIG_SIZE = MiB  # /big.bin: its body goes by splice

# ---- what the handler should say about a file -------------------------------------------------


def etag(path: str | os.PathLike) -> str:
    """The strong ETag of docs/static-files.md: "<inode>-<size>-<mtime ns>-<ctime ns>", hex."""
    st = os.stat(path)
    return f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}-{st.st_ctime_ns:x}"'


def etag_br(path: str | os.PathLike) -> str:
    return etag(path)[:-1] + '-br"'


def http_date(seconds: float) -> str:
    return email.utils.formatdate(int(seconds), usegmt=True)


def last_modified(path: str | os.PathLike) -> str:
    return http_date(os.stat(path).st_mtime_ns // 1_000_000_000)


def cache_name(path: str | os.PathLike) -> str:
    """The name of a file's compressed body under cache_dir/br/."""
    st = os.stat(path)
    return f"{st.st_dev:x}-{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}-{st.st_ctime_ns:x}"


def _read_mime_types(path: str = "/etc/mime.types") -> dict[str, str]:
    types: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                words = line.split("#", 1)[0].split()
                for ext in words[1:]:
                    types.setdefault(ext.lower(), words[0].lower())
    except FileNotFoundError:
        pass
    return types


MIME_TYPES = _read_mime_types()
# the doc's "small built-in table when the file is missing" is not spelled out; these are the
# types of the test files when /etc/mime.types is absent (what any such table says)
_FALLBACK = {
    "html": "text/html",
    "txt": "text/plain",
    "css": "text/css",
    "js": "text/javascript",
    "json": "application/json",
    "svg": "image/svg+xml",
    "png": "image/png",
    "xml": "application/xml",
    "wasm": "application/wasm",
}


def mime_type(name: str) -> str:
    ext = name.rsplit(".", 1)[1].lower() if "." in name else ""
    if not ext:
        return "application/octet-stream"
    if MIME_TYPES:
        return MIME_TYPES.get(ext, "application/octet-stream")
    return _FALLBACK.get(ext, "application/octet-stream")


def media_type(r: Response) -> str | None:
    v = r.header("Content-Type")
    return v.split(";", 1)[0].strip().lower() if v is not None else None


def vary_tokens(r: Response) -> set[str]:
    return {t.strip().lower() for v in r.all("Vary") for t in v.split(",") if t.strip()}


def metric0(proxy: Proxy, name: str, **labels) -> float:
    """proxy.metric, 0 while the family has no sample yet."""
    try:
        return proxy.metric(name, **labels)
    except AssertionError as e:
        if "no metric called" in str(e):
            return 0.0
        raise


# ---- content ------------------------------------------------------------------------------------


def text_body(kind: str, n: int) -> bytes:
    """n bytes of compressible text (repetitive, as real assets are)."""
    line = f"/* {kind}: the quick brown fox jumps over the lazy dog */\n".encode()
    return (line * (n // len(line) + 1))[:n]


def write_file(path: Path, data: bytes, mtime_ns: int | None = FIXED_MTIME_NS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def replace_file(path: Path, data: bytes) -> None:
    """A new version as editors save one: written beside, renamed over (a new inode)."""
    tmp = path.with_name(f".{path.name}.new")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def rewrite_in_place(path: Path, data: bytes) -> None:
    """A new version written into the same inode (truncated, then written)."""
    with open(path, "r+b") as f:
        f.truncate(0)
        f.write(data)


def write_pattern_file(path: Path, mib: int, seed: bytes = b"static pattern") -> str:
    """mib MiB whose every MiB is different (a MiB counter in front of a block made from seed),
    so a block sent twice, dropped or out of place changes the checksum; its sha256."""
    block = bytearray(hashlib.shake_256(seed).digest(MiB))
    h = hashlib.sha256()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for i in range(mib):
            block[:8] = i.to_bytes(8, "big")
            h.update(block)
            view = memoryview(block)
            while view:
                view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    return h.hexdigest()


def file_sha256(path: Path, start: int = 0, length: int | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(start)
        left = length if length is not None else os.fstat(f.fileno()).st_size - start
        while left > 0:
            chunk = f.read(min(left, MiB))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


# ---- a streaming download -----------------------------------------------------------------------


class Download:
    """A GET on a connection of its own whose body goes into sha256 as it arrives, at the pace
    the test reads it. rcvbuf: a small receive buffer keeps most of the body on the proxy's side
    until it is read."""

    def __init__(
        self,
        port: int,
        path: str,
        headers: list[tuple[str, str]] | None = None,
        rcvbuf: int | None = None,
        method: str = "GET",
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(IO_TIMEOUT)
        self.sock.connect((LOCALHOST, port))
        lines = [f"{method} {path} HTTP/1.1", f"Host: {DEFAULT_HOST}"]
        lines += [f"{k}: {v}" for k, v in headers or []]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        self.sha = hashlib.sha256()
        self.got = 0
        self.eof = False
        self._buf = bytearray(MiB)
        self._view = memoryview(self._buf)
        head = bytearray()
        while b"\r\n\r\n" not in head:
            n = self.sock.recv_into(self._buf)
            if not n:
                raise ConnectionError(f"EOF inside the head: {bytes(head[:200])!r}")
            head += self._view[:n]
        head, _, rest = bytes(head).partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        version, status, *reason = lines[0].decode("latin-1").split(" ", 2)
        self.response = Response(int(status), reason[0] if reason else "", version, [])
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            self.response.headers.append((k.decode("latin-1"), v.strip().decode("latin-1")))
        cl = self.response.header("Content-Length")
        self.length = int(cl) if cl is not None else None
        self._take(rest)

    def _take(self, data) -> None:
        self.sha.update(data)
        self.got += len(data)

    def read(self, n: int | None = None) -> None:
        """Read n more body bytes (all that Content-Length promises when None). EOF before them
        raises ConnectionError."""
        target = self.length if n is None else min(self.got + n, self.length)
        while self.got < target:
            want = min(len(self._buf), target - self.got)
            try:
                k = self.sock.recv_into(self._buf, want)
            except ConnectionResetError:
                self.eof = True
                raise
            if not k:
                self.eof = True
                raise ConnectionError(f"EOF after {self.got} of {self.length} body bytes")
            self._take(self._view[:k])

    def hexdigest(self) -> str:
        return self.sha.hexdigest()

    def close(self) -> None:
        self._view.release()
        self.sock.close()

    def __enter__(self) -> Download:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---- trees --------------------------------------------------------------------------------------

SECRET = b"TOP-SECRET-9f3c1e outside every root"
ASSETS_ROOT_MARKER = b"ASSETS-ROOT-7b21 the /assets/ root's own hello.txt"


@dataclass
class Tree:
    """A tmp directory with the web roots of test_static.py and files outside them."""

    base: Path
    root: Path  # the "/" route's root
    assets_root: Path  # the "/assets/" route's root
    plain_root: Path  # the "/plain/" route's root (compress = false)
    custom_root: Path  # the "/custom/" route's root (index = "home.txt")
    files: dict[str, bytes] = field(default_factory=dict)  # URL path -> content
    device: bool = False  # a character device node could be made in root
    unreadable: bool = False

    def path(self, url_path: str) -> Path:
        """The file behind a URL path: the route's root followed by the whole path."""
        for prefix, root in (
            ("/assets/", self.assets_root),
            ("/plain/", self.plain_root),
            ("/custom/", self.custom_root),
        ):
            if url_path.startswith(prefix):
                return root / url_path.lstrip("/")
        return self.root / url_path.lstrip("/")

    def routes(self) -> dict:
        return {
            "/": {"root": str(self.root), "compress": True},
            "/assets/": {"root": str(self.assets_root), "compress": True},
            "/plain/": {"root": str(self.plain_root), "compress": False},
            "/custom/": {"root": str(self.custom_root), "index": "home.txt"},
        }


def build_tree(base: Path) -> Tree:
    root = base / "www"
    t = Tree(base, root, base / "www-assets", base / "www-plain", base / "www-custom")
    # outside every root: must never be served
    write_file(base / "secret.txt", SECRET)
    write_file(base / "www-private" / "secret.txt", SECRET)
    write_file(base / "outside" / "secret.txt", SECRET)

    def add(url: str, data: bytes, under: Path = root) -> None:
        write_file(under / url.lstrip("/"), data)
        t.files[url] = data

    html = b"<!doctype html><title>synapserve</title>\n" + text_body("html", 700)
    add("/index.html", html)
    add("/hello.txt", b"hello, static world\n")  # under 256 bytes: never compressed
    add("/app.js", text_body("js", 5000))
    add("/style.css", text_body("css", 2000))
    add("/data.json", b'{"items": [' + b'{"k": "value"}, ' * 100 + b"{}]}\n")
    add(
        "/logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg">' + text_body("svg", 900) + b"</svg>"
    )
    add("/feed.xml", b"<?xml version='1.0'?><feed>" + text_body("xml", 900) + b"</feed>")
    add("/module.wasm", b"\0asm\x01\0\0\0" + bytes(3000))
    add("/notes.md", text_body("markdown", 1500))
    add("/site.webmanifest", b'{"name": "' + text_body("manifest", 600) + b'"}')  # +json
    add("/feed.atom", b"<feed>" + text_body("atom", 600) + b"</feed>")  # +xml
    add("/edge255.css", text_body("edge", 255))  # one byte short of being compressed
    add("/edge256.css", text_body("edge", 256))
    add("/image.png", b"\x89PNG\r\n\x1a\n" + bytes(4000))  # compressible bytes, not type
    add("/blob.zzq", text_body("unknown", 2000))  # an unknown extension
    add("/noise.txt", hashlib.shake_256(b"noise").digest(4096))  # brotli cannot shrink it
    add("/small.bin", hashlib.shake_256(b"small").digest(SMALL_SIZE))  # goes out with pread
    add("/big.bin", hashlib.shake_256(b"big").digest(BIG_SIZE))  # goes out by splice
    add("/medium.txt", text_body("medium", 64 * 1024))
    add("/empty.txt", b"")
    add("/with space.txt", b"a name with a space\n")
    add("/pct%41.txt", b"a name with a percent sign\n")
    add("/pctA.txt", b"pct-A: what a double decode would find\n")
    add("/back\\slash.txt", b"a name with a backslash\n")
    add("/docs/index.html", b"<!doctype html><p>docs index</p>\n")
    add("/docs/guide/page.html", b"<!doctype html><p>a guide page</p>\n")
    add("/noindex/file.txt", b"in a directory without an index\n")
    add("/assets/app.css", text_body("assets css", 1200), t.assets_root)
    write_file(t.assets_root / "hello.txt", ASSETS_ROOT_MARKER)
    add("/plain/app.js", text_body("plain js", 5000), t.plain_root)
    add("/custom/home.txt", b"custom index\n", t.custom_root)
    add("/custom/sub/home.txt", b"custom index of sub\n", t.custom_root)

    # symlinks that stay inside root: followed
    (root / "link-inside").symlink_to("hello.txt")
    (root / "sub").mkdir()
    (root / "sub" / "link-up").symlink_to("../hello.txt")
    (root / "link-dir-inside").symlink_to("docs")
    # symlinks that lead outside root, relative and absolute: refused
    (root / "escape-rel").symlink_to("../secret.txt")
    (root / "escape-abs").symlink_to(base / "secret.txt")
    (root / "escape-dir").symlink_to("../outside")
    (root / "escape-chain").symlink_to("escape-rel")
    (root / "escape-sibling").symlink_to("../www-private/secret.txt")
    (root / "escape-dangling").symlink_to("../no-such-file")
    (root / "passwd-link").symlink_to("/etc/passwd")
    (root / "sub" / "escape-up").symlink_to("../../secret.txt")
    (root / "evil").mkdir()
    (root / "evil" / "index.html").symlink_to("../../secret.txt")  # an index that escapes

    # not regular files
    os.mkfifo(root / "fifo")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(root / "sock"))
    try:
        os.mknod(root / "null-device", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        t.device = True
    except OSError:
        pass
    write_file(root / "unreadable.txt", b"nobody may read this\n")
    os.chmod(root / "unreadable.txt", 0)
    t.unreadable = True
    return t


def wait_br(proxy: Proxy, path: str, timeout: float = BR_WITHIN) -> Response:
    """The first answer to `Accept-Encoding: br` that is Brotli, polling while the control plane
    makes the body."""

    def attempt() -> Response | None:
        r = proxy.get(path, headers=[("Accept-Encoding", "br")])
        assert r.status == 200, (path, r.status)
        return r if r.header("Content-Encoding") == "br" else None

    return wait_for(attempt, timeout, f"a Brotli body for {path}")
