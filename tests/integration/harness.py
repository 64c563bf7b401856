"""The end-to-end harness: real HTTP backends, a real synapserve process, a raw HTTP client.

Nothing here is mocked. `Backend` is an HTTP/1.1 server on 127.0.0.1 (raw sockets, one thread
per connection) whose behaviour can be changed while it runs; `Proxy` writes a TOML config
directory, starts `synapserve run` on it and talks to it over real sockets; `HttpConn` is a
small HTTP/1.1 client that shows exactly what came back on the wire.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import pwd
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from prometheus_client.parser import text_string_to_metric_families

LOCALHOST = "127.0.0.1"
DEFAULT_HOST = "app.example"
IO_TIMEOUT = 15.0  # no socket operation of a test should ever take this long

# ---- waiting --------------------------------------------------------------------------------


def wait_for(predicate: Callable[[], object], timeout: float = 5.0, what: str = "condition"):
    """Poll predicate until it returns something true; that value, or AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


# ---- deterministic payloads ---------------------------------------------------------------

# A block of a prime length, so that no buffer size of the proxy divides it: a piece of a body
# that is duplicated, dropped or reordered changes the checksum.
_BLOCK = hashlib.shake_256(b"synapserve integration payload").digest(65521)


@functools.lru_cache(maxsize=8)
def payload(n: int) -> bytes:
    """n bytes, always the same for the same n."""
    return (_BLOCK * (n // len(_BLOCK) + 1))[:n]


@functools.lru_cache(maxsize=8)
def payload_sha256(n: int) -> str:
    return hashlib.sha256(payload(n)).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---- reading HTTP off a socket --------------------------------------------------------------


class _Reader:
    """Buffered reads from a socket; HTTP framing on top."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.received = 0  # bytes read from the socket, all told

    def _fill(self) -> bool:
        data = self.sock.recv(1 << 18)
        if not data:
            return False
        self.received += len(data)
        self.buf += data
        return True

    def read_head(self) -> bytes | None:
        """Up to and including the blank line; None on a clean EOF before any byte."""
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                head = bytes(self.buf[: i + 4])
                del self.buf[: i + 4]
                return head
            if not self._fill():
                if self.buf:
                    raise ConnectionError(f"EOF inside a head: {bytes(self.buf[:200])!r}")
                return None

    def read_line(self) -> bytes:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[: i + 2]
                return line
            if not self._fill():
                raise ConnectionError("EOF inside a line")

    def read_exact(self, n: int, sink: Callable[[bytes], object]) -> None:
        while n:
            if not self.buf and not self._fill():
                raise ConnectionError(f"EOF with {n} body bytes missing")
            take = min(n, len(self.buf))
            sink(bytes(self.buf[:take]))
            del self.buf[:take]
            n -= take

    def read_chunked(self, sink: Callable[[bytes], object]) -> list[bytes]:
        """Decode a chunked body into sink; returns the trailer lines."""
        while True:
            size_line = self.read_line()
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                break
            self.read_exact(size, sink)
            if self.read_line() != b"":
                raise ConnectionError("chunk data not followed by CRLF")
        trailers = []
        while line := self.read_line():
            trailers.append(line)
        return trailers

    def read_to_eof(self, sink: Callable[[bytes], object]) -> None:
        while True:
            if self.buf:
                sink(bytes(self.buf))
                self.buf.clear()
            if not self._fill():
                return


def _parse_fields(lines: list[bytes]) -> list[tuple[str, str]]:
    fields = []
    for line in lines:
        name, _, value = line.partition(b":")
        fields.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
    return fields


def _get(fields: list[tuple[str, str]], name: str) -> str | None:
    for k, v in fields:
        if k.lower() == name.lower():
            return v
    return None


def _tokens(fields: list[tuple[str, str]], name: str) -> set[str]:
    out = set()
    for k, v in fields:
        if k.lower() == name.lower():
            out |= {t.strip().lower() for t in v.split(",") if t.strip()}
    return out


# ---- the backend ------------------------------------------------------------------------------


@dataclass
class Request:
    """A request as a backend received it."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body_length: int = 0
    body_sha256: str = ""
    chunked: bool = False
    conn: int = 0  # serial number of the backend connection it came on
    index_on_conn: int = 0  # 0 for the first request of that connection

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(urlsplit(self.target).query).items()}

    def header(self, name: str) -> str | None:
        return _get(self.headers, name)

    def as_dict(self) -> dict:
        return {
            "method": self.method,
            "target": self.target,
            "version": self.version,
            "headers": [list(h) for h in self.headers],
            "body_length": self.body_length,
            "body_sha256": self.body_sha256,
            "chunked": self.chunked,
            "conn": self.conn,
            "index_on_conn": self.index_on_conn,
        }


REASONS = {200: "OK", 404: "Not Found", 500: "Internal Server Error", 502: "Bad Gateway"}
REASONS |= {503: "Service Unavailable", 504: "Gateway Timeout"}


class ServerEntry(dict):
    """A server table of an upstream, remembering the Backend behind it."""

    backend: Backend


MODES = ("normal", "close", "reset", "drop_reused", "close_after_response", "cut", "eof_body")


class Backend:
    """A real HTTP/1.1 server on 127.0.0.1 that answers with its tag.

    Paths: `/echo` (and `/echo/...`) answers the request as the backend received it, as JSON
    (`Request.as_dict`); `/bytes/N` answers N bytes of `payload(N)`; `/chunked/N` the same with
    chunked framing; the health path answers `health_status`; anything else answers `body` or
    the tag. A query `?delay=MS` delays that one response, `?status=N` sets its status.

    Knobs, settable at any time (they apply to requests that arrive afterwards):
    - delay: seconds to wait before answering
    - status: the status of answers (health checks excepted)
    - health_status: the status of the health path
    - mode: "normal"; "close": close without answering; "reset": reset (SO_LINGER 0) without
      answering; "drop_reused": answer the first request of a connection, then close (FIN,
      nothing answered) on the next one, as a server whose idle timeout fired just as the
      request came; "close_after_response": close every connection after its first response,
      without saying `Connection: close`; "cut": send the head and half the body, then close;
      "eof_body": send no Content-Length nor Transfer-Encoding, the body ends with the close
    - chunked: answer with chunked framing
    - keepalive: False answers `Connection: close` and closes
    - body: the answer's body (default: the tag)
    - headers: extra response header fields, a list of (name, value)
    - die_after: on receiving its Nth request, drop dead (as kill()) without answering it

    kill() stops listening and closes every connection; revive() listens again on the same
    port. Counters: accepted (connections accepted), connections (connections that carried a
    request other than a health check), requests (such requests received), served (answered),
    health_checks; `log` holds every such Request.
    """

    def __init__(self, tag: str, health_path: str = "/healthz", **knobs) -> None:
        self.tag = tag
        self.health_path = health_path
        self.delay = 0.0
        self.status = 200
        self.health_status = 200
        self.mode = "normal"
        self.chunked = False
        self.keepalive = True
        self.body: bytes | None = None
        self.headers: list[tuple[str, str]] = []
        self.die_after: int | None = None
        self.set(**knobs)
        self.accepted = 0
        self.connections = 0
        self.requests = 0
        self.served = 0
        self.health_checks = 0
        self.log: list[Request] = []
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self._dead = threading.Event()
        self.port = 0
        self._listen()

    def __repr__(self) -> str:
        return f"Backend({self.tag!r}, {self.address})"

    @property
    def address(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    def set(self, **knobs) -> None:
        for name, value in knobs.items():
            if name not in ("delay", "status", "health_status", "mode", "chunked", "keepalive"):
                if name not in ("body", "headers", "die_after"):
                    raise TypeError(f"unknown backend knob {name!r}")
            if name == "mode" and value not in MODES:
                raise ValueError(f"mode must be one of {MODES}")
            setattr(self, name, value)

    def server(self, **opts) -> ServerEntry:
        """This backend as an entry of an upstream's `servers` (weight=, backup=)."""
        entry = ServerEntry(address=self.address, **opts)
        entry.backend = self
        return entry

    # -- life -------------------------------------------------------------------------------

    def _listen(self) -> None:
        deadline = time.monotonic() + 5
        while True:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((LOCALHOST, self.port))
                break
            except OSError:
                s.close()
                if not self.port or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        s.listen(4096)  # wrk opens hundreds at once: no SYN may wait for a retransmit
        self.port = s.getsockname()[1]
        self._listener = s
        self._dead = threading.Event()
        t = threading.Thread(
            target=self._accept_loop, args=(s, self._dead), name=f"backend-{self.tag}", daemon=True
        )
        t.start()
        self._threads.append(t)

    def kill(self) -> None:
        """Stop listening and close every connection (connects are refused from now on)."""
        self._dead.set()
        lst, self._listener = self._listener, None
        if lst:
            with contextlib.suppress(OSError):
                lst.shutdown(socket.SHUT_RDWR)
            lst.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)

    def revive(self) -> None:
        """Listen again, on the same port."""
        if self._listener is None:
            self._listen()

    @property
    def alive(self) -> bool:
        return self._listener is not None

    def close(self) -> None:
        self.kill()
        for t in self._threads:
            t.join(timeout=5)

    # -- serving ----------------------------------------------------------------------------

    def _accept_loop(self, lst: socket.socket, dead: threading.Event) -> None:
        serial = 0
        while not dead.is_set():
            try:
                sock, _ = lst.accept()
            except OSError:
                return
            if dead.is_set():
                sock.close()
                return
            sock.settimeout(60)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.accepted += 1
                serial = self.accepted
                self._conns.add(sock)
            t = threading.Thread(
                target=self._serve, args=(sock, serial, dead), name=f"conn-{self.tag}", daemon=True
            )
            t.start()
            self._threads.append(t)

    def _serve(self, sock: socket.socket, serial: int, dead: threading.Event) -> None:
        rd = _Reader(sock)
        on_conn = 0
        counted = False
        try:
            while not dead.is_set():
                req = self._read_request(rd)
                if req is None:
                    return
                if req.path == self.health_path:
                    with self._lock:
                        self.health_checks += 1
                    status = self.health_status
                    self._send(sock, req, status, b"health\n", chunked=False, keep=False)
                    return
                req.conn, req.index_on_conn = serial, on_conn
                with self._lock:
                    self.requests += 1
                    n = self.requests
                    if not counted:
                        self.connections += 1
                        counted = True
                    self.log.append(req)
                if self.die_after is not None and n >= self.die_after:
                    self.kill()
                    return
                if self.mode == "close" or (self.mode == "drop_reused" and on_conn):
                    return
                if self.mode == "reset":
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                    return
                delay = self.delay + int(req.query.get("delay", 0)) / 1000
                if delay and dead.wait(delay):
                    return
                # counted before the response goes out: a client that has read it may look
                # at `served` before this thread runs again
                with self._lock:
                    self.served += 1
                keep = self._respond(sock, req)
                on_conn += 1
                if not keep or self.mode == "close_after_response":
                    return
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                self._conns.discard(sock)
            with contextlib.suppress(OSError):
                sock.close()

    def _read_request(self, rd: _Reader) -> Request | None:
        head = rd.read_head()
        if head is None:
            return None
        lines = head[:-4].split(b"\r\n")
        method, target, version = lines[0].decode("latin-1").split(" ", 2)
        req = Request(method, target, version, _parse_fields(lines[1:]))
        h = hashlib.sha256()

        def sink(b: bytes) -> None:
            h.update(b)
            req.body_length += len(b)

        if "chunked" in _tokens(req.headers, "transfer-encoding"):
            req.chunked = True
            rd.read_chunked(sink)
        elif (cl := req.header("content-length")) is not None:
            rd.read_exact(int(cl), sink)
        req.body_sha256 = h.hexdigest()
        return req

    def _respond(self, sock: socket.socket, req: Request) -> bool:
        status = int(req.query.get("status", self.status))
        chunked = self.chunked
        ctype = "text/plain"
        if req.path == "/echo" or req.path.startswith("/echo/"):
            body = json.dumps(req.as_dict()).encode()
            ctype = "application/json"
        elif m := re.fullmatch(r"/(bytes|chunked)/(\d+)", req.path):
            body = payload(int(m.group(2)))
            chunked = chunked or m.group(1) == "chunked"
            ctype = "application/octet-stream"
        else:
            body = self.body if self.body is not None else self.tag.encode()
        conn = _tokens(req.headers, "connection")
        if req.version == "HTTP/1.0":
            keep = "keep-alive" in conn
        else:
            keep = "close" not in conn
        keep = keep and self.keepalive
        return self._send(sock, req, status, body, chunked, keep, ctype)

    def _send(self, sock, req, status, body, chunked, keep, ctype="text/plain") -> bool:
        head = [
            f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}",
            f"X-Backend: {self.tag}",
            f"Content-Type: {ctype}",
        ]
        head += [f"{k}: {v}" for k, v in self.headers]
        if self.mode == "eof_body":
            chunked, keep = False, False
        else:
            head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}")
        if not keep:
            head.append("Connection: close")
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        if req.method == "HEAD":
            return keep
        if self.mode == "cut":
            sock.sendall(body[: len(body) // 2])
            return False
        if not chunked:
            for i in range(0, len(body), 1 << 20):
                sock.sendall(body[i : i + (1 << 20)])
            return keep
        step = 65521  # a prime: chunk boundaries never line up with the proxy's buffers
        for i in range(0, len(body), step):
            piece = body[i : i + step]
            sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
        sock.sendall(b"0\r\n\r\n")
        return keep


class Blackhole:
    """An address where connects hang: a listener whose accept queue is full and never
    drained (backlog 0 holds one connection; the kernel drops further SYNs)."""

    def __init__(self) -> None:
        self._lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._lst.bind((LOCALHOST, 0))
        self._lst.listen(0)
        self.port = self._lst.getsockname()[1]
        self._filler = socket.create_connection((LOCALHOST, self.port), timeout=2)
        self.tag = "blackhole"

    @property
    def address(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    def server(self, **opts) -> ServerEntry:
        return ServerEntry(address=self.address, **opts)

    def close(self) -> None:
        self._filler.close()
        self._lst.close()


# ---- the client --------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    reason: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    def __iter__(self):  # status, headers, body = proxy.get(...)
        return iter((self.status, self.headers, self.body))

    def header(self, name: str) -> str | None:
        return _get(self.headers, name)

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def tag(self) -> str | None:
        """Which backend answered (its X-Backend field)."""
        return self.header("X-Backend")

    def json(self) -> dict:
        return json.loads(self.body)


def build_request(
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Iterable[tuple[str, str]] = (),
    host: str | None = DEFAULT_HOST,
    version: str = "HTTP/1.1",
    chunked: int | bool = False,
) -> bytes:
    """Request bytes. chunked=True (or a chunk size) sends body with chunked framing."""
    headers = list(headers)
    lines = [f"{method} {path} {version}"]
    if host is not None and _get(headers, "host") is None:
        lines.append(f"Host: {host}")
    lines += [f"{k}: {v}" for k, v in headers]
    data = body or b""
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        step = 100_003 if chunked is True else int(chunked)
        parts = [
            b"%x\r\n" % len(data[i : i + step]) + data[i : i + step] + b"\r\n"
            for i in range(0, len(data), step)
        ]
        data = b"".join(parts) + b"0\r\n\r\n"
    elif body is not None and _get(headers, "content-length") is None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data


class HttpConn:
    """One client connection to the proxy: requests and responses, exactly as on the wire."""

    def __init__(
        self,
        port: int,
        source: str | None = None,
        timeout: float = IO_TIMEOUT,
        rcvbuf: int | None = None,
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if rcvbuf:  # before connect, so that the window is offered from it
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source:
            self.sock.bind((source, 0))
        self.sock.connect((LOCALHOST, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = _Reader(self.sock)
        self.sent = 0

    def __enter__(self) -> HttpConn:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)
        self.sent += len(data)

    def request(
        self,
        method: str = "GET",
        path: str = "/",
        body: bytes | None = None,
        headers: Iterable[tuple[str, str]] = (),
        **kw,
    ) -> Response:
        self.send(build_request(method, path, body, headers, **kw))
        return self.read_response(head_request=method == "HEAD")

    def get(self, path: str = "/", **kw) -> Response:
        return self.request("GET", path, **kw)

    def read_response(self, head_request: bool = False, interim: bool = False) -> Response:
        """The next response; 1xx ones are skipped unless interim=True."""
        while True:
            head = self.reader.read_head()
            if head is None:
                raise ConnectionError("the connection closed before a response")
            lines = head[:-4].split(b"\r\n")
            version, status, *reason = lines[0].decode("latin-1").split(" ", 2)
            resp = Response(int(status), reason[0] if reason else "", version, [])
            resp.headers = _parse_fields(lines[1:])
            if 100 <= resp.status < 200:
                if interim:
                    return resp
                continue
            break
        parts: list[bytes] = []
        if head_request or resp.status in (204, 304):
            pass
        elif "chunked" in _tokens(resp.headers, "transfer-encoding"):
            self.reader.read_chunked(parts.append)
        elif (cl := resp.header("content-length")) is not None:
            self.reader.read_exact(int(cl), parts.append)
        else:
            self.reader.read_to_eof(parts.append)
        resp.body = b"".join(parts)
        return resp

    @property
    def received(self) -> int:
        return self.reader.received

    def at_eof(self, timeout: float = 2.0) -> bool:
        """True when the peer closed the connection (FIN or reset) within timeout with no
        further bytes; False when it stayed open that long. Bytes are an error."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1)
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        finally:
            self.sock.settimeout(IO_TIMEOUT)
        if data:
            raise AssertionError(f"unexpected bytes on the connection: {data!r}")
        return True


class Raw(bytes):
    """What came back for raw bytes; .closed: the proxy closed the connection."""

    closed: bool

    def response(self) -> Response:
        lines = self.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        version, status, *reason = lines[0].decode("latin-1").split(" ", 2)
        return Response(
            int(status),
            reason[0] if reason else "",
            version,
            _parse_fields(lines[1:]),
            self.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in self else b"",
        )

    @property
    def status(self) -> int:
        return self.response().status


class UpgradeEcho:
    """An upstream that answers an Upgrade: echo request with 101, then echoes every byte
    (those that came with the request first) and passes the client's half-close on.
    Subclasses change what follows the 101 with echo()."""

    def __init__(self) -> None:
        self.sock = socket.create_server((LOCALHOST, 0))
        self.port = self.sock.getsockname()[1]
        self.address = f"{LOCALHOST}:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def server(self) -> dict:
        return {"address": self.address}

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c: socket.socket) -> None:
        with c:
            data = b""
            while b"\r\n\r\n" not in data:
                d = c.recv(4096)
                if not d:
                    return
                data += d
            c.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n"
            )
            self.echo(c, data.split(b"\r\n\r\n", 1)[1])

    def echo(self, c: socket.socket, rest: bytes) -> None:
        if rest:
            c.sendall(rest)
        while d := c.recv(65536):
            c.sendall(d)
        c.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.sock.close()


# ---- the proxy ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]


def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, Backend | Blackhole):
        return toml_value(v.server())
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"no TOML for {v!r}")


def _table(name: str, values: dict) -> list[str]:
    return [f"[{name}]"] + [f"{_toml_key(k)} = {toml_value(v)}" for k, v in values.items()]


@dataclass
class ProxySpec:
    """What a config directory says, in the terms tests use.

    upstreams: name -> list of servers (Backend, or dicts from Backend.server()), or
      name -> {"servers": [...], other keys of [upstreams.NAME]}
    route: with one upstream and no sites, the path of the default site's one route
    sites: name -> {"hosts": [...], "routes": {path: handler}, other keys of [sites.NAME]};
      a handler is an upstream name, or a dict for a static route ({"root": DIR, ...})
    listeners: listener names; each gets a free port on 127.0.0.1
    sections: [server], [limits], [log] tables ({"workers": 1}, ...), and tls: listener name ->
      its tls table ({"https": {"certificates": [{"cert": ..., "key": ...}]}})
    """

    upstreams: dict
    route: str | None = "/"
    sites: dict | None = None
    listeners: tuple[str, ...] = ("http",)
    sections: dict = field(default_factory=dict)

    def render(self, ports: dict[str, int], admin_port: int, workdir: str = "") -> str:
        sections = {k: dict(v) for k, v in self.sections.items()}
        unknown = set(sections) - {"server", "limits", "log", "tls"}
        if unknown:
            raise TypeError(f"unknown config sections {sorted(unknown)}")
        server = {"workers": 2, "user": pwd.getpwuid(os.getuid()).pw_name}
        if workdir:  # compressed bodies of static files: not in /var/cache
            server["cache_dir"] = os.path.join(workdir, "cache")
        server |= sections.get("server", {})
        log = {"level": "info", "access": "off"} | sections.get("log", {})
        out = _table("server", server) + _table("admin", {"bind": f"{LOCALHOST}:{admin_port}"})
        out += _table("log", log)
        if "limits" in sections:
            out += _table("limits", sections["limits"])
        tls = sections.get("tls", {})  # listener name -> its tls table
        for name in self.listeners:
            listener = {"bind": f"{LOCALHOST}:{ports[name]}"}
            if name in tls:
                listener["tls"] = tls[name]
            out += _table(f"listeners.{name}", listener)
        for name, up in self.upstreams.items():
            up = dict(up) if isinstance(up, dict) else {"servers": up}
            up["servers"] = [
                s.server() if isinstance(s, Backend | Blackhole) else s for s in up["servers"]
            ]
            out += _table(f"upstreams.{name}", up)
        sites = self.sites
        if sites is None:
            if len(self.upstreams) != 1 or not self.route:
                raise TypeError("give sites= when there is not exactly one upstream")
            sites = {"main": {"hosts": ["*"], "routes": {self.route: next(iter(self.upstreams))}}}
        for name, site in sites.items():
            site = dict(site)
            routes = site.pop("routes")
            out += _table(f"sites.{name}", site)
            for path, handler in routes.items():
                # "NAME" routes to an upstream; {"root": DIR, ...} serves static files
                key = "static" if isinstance(handler, dict) else "upstream"
                out += [f"[[sites.{name}.routes]]"] + [
                    f"path = {toml_value(path)}",
                    f"{key} = {toml_value(handler)}",
                ]
        return "\n".join(out) + "\n"


class ProxyExited(AssertionError):
    pass


class Proxy:
    """A running `synapserve run --config-dir DIR` with its config directory."""

    CONFIG_FILE = "synapserve.toml"

    def __init__(self, cmd: list[str], workdir: str, spec: ProxySpec) -> None:
        self.cmd = cmd
        self.workdir = workdir
        self.config_dir = os.path.join(workdir, "config")
        os.makedirs(self.config_dir, exist_ok=True)
        self.stderr_path = os.path.join(workdir, "stderr.log")
        self.spec = spec
        self.proc: subprocess.Popen | None = None
        self.ports: dict[str, int] = {}
        self.admin_port = 0
        self.returncode: int | None = None
        self.wait_for_log = True

    # -- life -------------------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> Proxy:
        """Start on fresh free ports; a port taken meanwhile by someone else means another try."""
        for _attempt in range(5):
            self.ports = {name: free_port() for name in self.spec.listeners}
            self.admin_port = free_port()
            self.write_config()
            self.returncode = None
            with open(self.stderr_path, "ab") as err:
                self.proc = subprocess.Popen(
                    [*self.cmd, "run", "--config-dir", self.config_dir],
                    stdin=subprocess.DEVNULL,
                    stdout=err,
                    stderr=err,
                )
            if self._wait_ready(timeout):
                return self
            self.returncode = self.proc.wait(timeout=10)
            if "already in use" not in self.stderr():
                raise ProxyExited(
                    f"synapserve exited with {self.proc.returncode} at start:\n{self.stderr()}"
                )
        raise ProxyExited(f"could not find free ports:\n{self.stderr()}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                # /healthz answers before the supervisor installs its signal handlers (a bug,
                # see test_lifecycle.py); the "serving" line is logged just before they are,
                # so waiting for it keeps a quick SIGTERM at teardown from killing it outright
                if self.admin("GET", "/healthz")[0] == 200 and (
                    not self.wait_for_log or "serving: " in self.stderr()
                ):
                    return True
            except OSError:
                pass
            time.sleep(0.02)
        self.proc.kill()
        self.returncode = self.proc.wait()
        raise ProxyExited(f"synapserve did not become ready in {timeout}s:\n{self.stderr()}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stderr(self) -> str:
        with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 20.0, check: bool = True) -> int:
        """SIGTERM and wait; with check, the exit code must be 0 and stderr free of
        tracebacks."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"synapserve did not exit within {timeout}s of SIGTERM:\n{self.stderr()}"
            ) from None
        self.returncode = rc
        if check:
            err = self.stderr()
            assert rc == 0, f"synapserve exited with {rc}:\n{err}"
            assert "Traceback" not in err, f"traceback in synapserve's stderr:\n{err}"
        return rc

    def _alive_or_fail(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise ProxyExited(
                f"synapserve is not running (exit {self.proc.returncode}):\n{self.stderr()}"
            )

    # -- config -----------------------------------------------------------------------------

    def write_config(self, **changes) -> None:
        """Rewrite the config directory (same ports), atomically: a new ProxySpec from the
        current one with changes (upstreams=, sites=, route=, sections=, ...)."""
        for k, v in changes.items():
            if not hasattr(self.spec, k):
                raise TypeError(f"unknown config part {k!r}")
            setattr(self.spec, k, v)
        self.write_text(self.spec.render(self.ports, self.admin_port, self.workdir))

    def write_text(self, text: str, name: str = CONFIG_FILE) -> None:
        tmp = os.path.join(self.config_dir, f".{name}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, os.path.join(self.config_dir, name))

    # -- admin ------------------------------------------------------------------------------

    def admin(self, method: str, path: str) -> tuple[int, bytes]:
        req = urllib.request.Request(
            f"http://{LOCALHOST}:{self.admin_port}{path}",
            method=method,
            data=b"" if method == "POST" else None,
        )
        try:
            with urllib.request.urlopen(req, timeout=IO_TIMEOUT) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def status(self) -> dict:
        code, body = self.admin("GET", "/status")
        assert code == 200, (code, body)
        return json.loads(body)

    def reload(self) -> dict:
        """POST /reload; the JSON answer, with "http_status" added."""
        code, body = self.admin("POST", "/reload")
        return json.loads(body) | {"http_status": code}

    def metrics_text(self) -> str:
        self._alive_or_fail()
        code, body = self.admin("GET", "/metrics")
        assert code == 200, (code, body)
        return body.decode()

    def metric(self, name: str, **labels) -> float:
        """Sum of the samples called name whose labels include labels (a Backend as the value
        of `server` means its address)."""
        want = {
            k: (v.address if isinstance(v, Backend | Blackhole) else str(v))
            for k, v in labels.items()
        }
        total, seen = 0.0, False
        for fam in text_string_to_metric_families(self.metrics_text()):
            for s in fam.samples:
                if s.name != name:
                    continue
                seen = True
                if all(s.labels.get(k) == v for k, v in want.items()):
                    total += s.value
        assert seen, f"no metric called {name}"
        return total

    def server_up(self, upstream: str, backend: Backend) -> bool:
        labels = {"upstream": upstream, "server": backend}
        return self.metric("synapserve_upstream_server_up", **labels) == 1

    def wait_server(self, upstream: str, backend: Backend, up: bool = True, timeout=5.0) -> None:
        wait_for(
            lambda: self.server_up(upstream, backend) == up,
            timeout,
            f"{upstream}/{backend.address} to be {'up' if up else 'down'}",
        )

    def wait_healthy(self, timeout: float = 5.0) -> None:
        """Every server with active checks whose backend answers them well is up."""
        for name, up in self.spec.upstreams.items():
            if not isinstance(up, dict) or "health" not in up:
                continue
            for s in up["servers"]:
                b = s if isinstance(s, Backend) else getattr(s, "backend", None)
                if isinstance(b, Backend) and b.alive and 200 <= b.health_status < 300:
                    self.wait_server(name, b, True, timeout)

    # -- traffic ----------------------------------------------------------------------------

    def connect(self, listener: str = "http", source: str | None = None) -> HttpConn:
        self._alive_or_fail()
        return HttpConn(self.ports[listener], source)

    def request(
        self,
        method: str = "GET",
        path: str = "/",
        body: bytes | None = None,
        headers: Iterable[tuple[str, str]] = (),
        listener: str = "http",
        source: str | None = None,
        **kw,
    ) -> Response:
        """One request on a connection of its own."""
        try:
            with self.connect(listener, source) as c:
                return c.request(method, path, body, headers, **kw)
        except OSError:
            self._alive_or_fail()
            raise

    def get(self, path: str = "/", headers: Iterable[tuple[str, str]] = (), **kw) -> Response:
        return self.request("GET", path, headers=headers, **kw)

    def raw(self, data: bytes, timeout: float = 5.0, listener: str = "http") -> Raw:
        """Send data on a new connection; what comes back until the proxy closes it or
        timeout seconds pass."""
        self._alive_or_fail()
        s = socket.create_connection((LOCALHOST, self.ports[listener]), timeout=timeout)
        got, closed = bytearray(), False
        deadline = time.monotonic() + timeout
        with s:
            try:
                s.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # it answered and closed before taking everything: read what it said
            while (left := deadline - time.monotonic()) > 0:
                s.settimeout(left)
                try:
                    chunk = s.recv(65536)
                except TimeoutError:
                    break
                except ConnectionResetError:
                    closed = True
                    break
                if not chunk:
                    closed = True
                    break
                got += chunk
        out = Raw(bytes(got))
        out.closed = closed
        return out
