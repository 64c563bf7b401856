"""TLS termination end to end (PRODUCT.md section 5 "TLS", issue 6; user-space OpenSSL only, no
kernel TLS here): SNI among a listener's certificates (exact names, one-label wildcards, the CN
of a certificate without subjectAltName, the default for an unknown name or none), ALPN,
TLS 1.2 and 1.3 and min_version, X-Forwarded-Proto, bodies, keep-alive, pipelining, HTTP/1.0,
static files and an Upgrade tunnel through TLS, clients that are not TLS or never finish their
handshake (none stalls the one worker), the handshake metric, the certificate checks of the
config, and reloads that refuse a broken certificate or rotate one on disk.

Clients: Python's ssl (tls_util.TlsConn, an HttpConn over TLS), curl and `openssl s_client`.
The certificates are made once per session with the openssl CLI, all signed by one test CA.
Most tests share one proxy (one worker, a clear-text and a TLS listener); tests that count or
change its config start their own.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness import (
    Backend,
    Proxy,
    ProxyExited,
    ProxySpec,
    Response,
    UpgradeEcho,
    build_request,
    payload,
    payload_sha256,
    sha256,
    wait_for,
)
from tls_util import (
    A_NAME,
    CN_ONLY_NAME,
    CURL,
    DEFAULT_NAME,
    EXACT_WILD_NAME,
    OPENSSL,
    WILD_NAME,
    Certs,
    Pair,
    TlsConn,
    client_context,
    client_hello,
    curl,
    make_certs,
    raw_connect,
    s_client,
)

MiB = 1 << 20
SMALL_FILE = b"a small static file, served over TLS\n" * 100
BIG_FILE_SIZE = 8 * MiB
HEADER_TIMEOUT = 1.0  # limits.client_header_timeout of the proxies here
CLOSE_WITHIN = 6.0  # a stalled handshake is closed after HEADER_TIMEOUT: generous slack

pytestmark = pytest.mark.skipif(
    OPENSSL is None or CURL is None, reason="the openssl and curl command line tools are needed"
)


# ---- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def certs(tmp_path_factory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


class CloseOnBye(UpgradeEcho):
    """UpgradeEcho, but a b"bye!" from the client is answered b"bye!" and the connection closed
    (the upstream side of a tunnel ending)."""

    def echo(self, c: socket.socket, rest: bytes) -> None:
        while d := c.recv(65536):
            c.sendall(d)
            if d.endswith(b"bye!"):
                return


@dataclass
class Site:
    proxy: Proxy
    backend: Backend
    certs: Certs
    root: Path
    ctx: ssl.SSLContext  # verifies against the test CA, checks the host name

    @property
    def port(self) -> int:
        return self.proxy.ports["https"]

    def conn(self, name: str | None = A_NAME, ctx: ssl.SSLContext | None = None) -> TlsConn:
        return TlsConn(self.port, ctx or self.ctx, server_hostname=name)

    def request(self, method: str = "GET", path: str = "/", body=None, **kw) -> Response:
        with self.conn() as c:
            return c.request(method, path, body, **kw)


def tls_spec(upstreams, sites, certificates: list[Pair], min_version="1.2", **sections):
    """Listeners "http" (clear text) and "https" (TLS with certificates), one worker."""
    tls = {"https": {"certificates": [p.entry() for p in certificates], "min_version": min_version}}
    return ProxySpec(
        upstreams,
        None if sites else "/",
        sites,
        ("http", "https"),
        {
            "server": {"workers": 1},
            "limits": {"client_header_timeout": f"{HEADER_TIMEOUT:g}s"},
            "tls": tls,
            **sections,
        },
    )


@pytest.fixture(scope="module")
def site(synapserve_cmd, tmp_path_factory, certs):
    """The shared proxy: one worker; TLS certificates default (first), a, *.wild, exact.wild
    (after *.wild) and cn-only; routes "/" to a backend, "/ws" to an Upgrade echo, "/files/"
    static over a tree with a small and an 8 MiB file."""
    base = tmp_path_factory.mktemp("tls-site")
    root = base / "root"
    (root / "files").mkdir(parents=True)
    (root / "files" / "small.txt").write_bytes(SMALL_FILE)
    (root / "files" / "big.bin").write_bytes(payload(BIG_FILE_SIZE))
    backend = Backend("a")
    ws = CloseOnBye()
    routes = {"/": "app", "/ws": "ws", "/files/": {"root": str(root), "compress": False}}
    spec = tls_spec(
        {"app": [backend], "ws": [ws.server()]},
        {"main": {"hosts": ["*"], "routes": routes}},
        [certs.default, certs.a, certs.wild, certs.exact_wild, certs.cn_only],
    )
    proxy = Proxy(synapserve_cmd, str(base / "proxy"), spec)
    try:
        proxy.start()
        yield Site(proxy, backend, certs, root, client_context(certs.ca))
        proxy.stop()
    finally:
        if proxy.running:
            proxy.proc.kill()
        backend.close()
        ws.close()


def handshakes(proxy: Proxy, result: str) -> int:
    return int(proxy.metric("synapserve_tls_handshakes_total", listener="https", result=result))


def active(proxy: Proxy, listener: str = "https") -> int:
    return int(proxy.metric("synapserve_connections_active", listener=listener))


def forwarded_proto(r: Response) -> list[str]:
    return [v for k, v in r.json()["headers"] if k.lower() == "x-forwarded-proto"]


# ---- SNI: which certificate -------------------------------------------------------------------

SNI_CASES = [
    (A_NAME, [A_NAME]),
    (DEFAULT_NAME, [DEFAULT_NAME]),
    ("x.wild.example.test", [WILD_NAME]),
    ("other.wild.example.test", [WILD_NAME]),
    (EXACT_WILD_NAME, [EXACT_WILD_NAME]),  # exact before wildcard, whatever the order
    (CN_ONLY_NAME, [CN_ONLY_NAME]),  # no subjectAltName: its CN
    ("wild", [DEFAULT_NAME]),  # the CN of a certificate with DNS names does not count
    ("unknown.example.test", [DEFAULT_NAME]),
    ("a.b.wild.example.test", [DEFAULT_NAME]),  # a wildcard stands for exactly one label
    ("wild.example.test", [DEFAULT_NAME]),  # and not for none
    (None, [DEFAULT_NAME]),  # no SNI at all
]


@pytest.mark.parametrize(("name", "want"), SNI_CASES, ids=[str(n) for n, _ in SNI_CASES])
def test_sni_picks_the_certificate(site, name, want):
    """Python's ssl; the chain is verified against the CA, the host name deliberately not (an
    unknown name gets a certificate that does not match it)."""
    ctx = client_context(site.certs.ca, check_hostname=False)
    with site.conn(name, ctx) as c:
        assert c.peer_names() == want
        r = c.get("/echo")
        assert r.status == 200
        assert forwarded_proto(r) == ["https"]


@pytest.mark.parametrize("name", [A_NAME, "x.wild.example.test", DEFAULT_NAME])
def test_curl_verifies_the_certificate_chosen_by_sni(site, name):
    port = site.port
    p = curl(f"https://{name}:{port}/echo", ca=site.certs.ca, resolve=f"{name}:{port}:127.0.0.1")
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0, err
    assert "ALPN: server accepted http/1.1" in err
    assert "< HTTP/1.1 200" in err
    assert p.stdout.startswith(b"{")


def test_curl_with_an_unknown_name_gets_the_default_certificate(site):
    name, port = "nobody.example.test", site.port
    resolve = f"{name}:{port}:127.0.0.1"
    p = curl(f"https://{name}:{port}/", ca=site.certs.ca, resolve=resolve)
    assert p.returncode == 60, p.stderr  # the default's name does not match: curl refuses
    p = curl(f"https://{name}:{port}/", "--insecure", ca=site.certs.ca, resolve=resolve)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0, err
    assert f"subject: CN={DEFAULT_NAME}" in err
    assert p.stdout == b"a"


S_CLIENT_CASES = [
    ("1.2", A_NAME, f"CN = {A_NAME}"),
    ("1.3", A_NAME, f"CN = {A_NAME}"),
    ("1.2", "y.wild.example.test", "CN = wild"),
    ("1.3", "y.wild.example.test", "CN = wild"),
    ("1.3", None, f"CN = {DEFAULT_NAME}"),
    ("1.2", "unknown.example.test", f"CN = {DEFAULT_NAME}"),
]


@pytest.mark.parametrize(("version", "name", "subject"), S_CLIENT_CASES)
def test_s_client_version_sni_and_alpn(site, version, name, subject):
    out = s_client(
        site.port, f"-tls{version.replace('.', '_')}", "-alpn", "http/1.1",
        ca=site.certs.ca, servername=name,
    )  # fmt: skip
    assert out.rc == 0, out.err
    assert out.protocol == f"TLSv{version}"
    assert out.subject == subject
    assert out.alpn == "http/1.1"
    assert out.verified


def test_s_client_sends_a_request(site):
    req = f"GET /echo HTTP/1.1\r\nHost: {A_NAME}\r\nConnection: close\r\n\r\n".encode()
    out = s_client(site.port, "-tls1_3", ca=site.certs.ca, servername=A_NAME, stdin=req)
    assert "HTTP/1.1 200 OK" in out.out, out.out + out.err
    assert '["X-Forwarded-Proto", "https"]' in out.out


# ---- ALPN and versions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offer", "selected"),
    [(["h2", "http/1.1"], "http/1.1"), (["http/1.1"], "http/1.1"), (["h2"], None), (None, None)],
    ids=["h2+http1.1", "http1.1", "h2-only", "none"],
)
def test_alpn(site, offer, selected):
    """http/1.1 is chosen when offered; a client offering only h2 still connects, with no
    protocol selected, and speaks HTTP/1.1."""
    ctx = client_context(site.certs.ca, alpn=offer)
    with site.conn(A_NAME, ctx) as c:
        assert c.alpn == selected
        r = c.get("/echo")
        assert r.status == 200 and forwarded_proto(r) == ["https"]


def test_s_client_offering_only_h2_connects_without_alpn(site):
    out = s_client(site.port, "-alpn", "h2", ca=site.certs.ca, servername=A_NAME)
    assert out.rc == 0, out.err
    assert out.alpn is None
    assert out.verified


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_both_versions_carry_requests(site, version):
    ctx = client_context(site.certs.ca, version=version)
    with site.conn(A_NAME, ctx) as c:
        assert c.version == f"TLSv{version}"
        for size in (0, 1, 70_000):
            r = c.get(f"/bytes/{size}")
            assert (r.status, sha256(r.body)) == (200, payload_sha256(size))


def test_min_version_13_refuses_a_tls12_client(synapserve, backends, certs):
    (a,) = backends("a")
    proxy = synapserve(
        upstreams={"app": [a]},
        listeners=("http", "https"),
        server={"workers": 1},
        tls={"https": {"certificates": [certs.a.entry()], "min_version": "1.3"}},
    )
    port = proxy.ports["https"]
    failed = handshakes(proxy, "failure")
    with pytest.raises(ssl.SSLError):
        TlsConn(port, client_context(certs.ca, version="1.2"), A_NAME).close()
    out = s_client(port, "-tls1_2", ca=certs.ca, servername=A_NAME)
    assert out.rc != 0
    assert "New, (NONE), Cipher is (NONE)" in out.out or "alert" in out.err, out.out + out.err
    wait_for(lambda: handshakes(proxy, "failure") >= failed + 2, what="two failed handshakes")
    # TLS 1.3 still works, with any client
    with TlsConn(port, client_context(certs.ca), A_NAME) as c:
        assert c.version == "TLSv1.3"
        assert c.get("/").body == b"a"
    out = s_client(port, "-tls1_3", ca=certs.ca, servername=A_NAME)
    assert (out.rc, out.protocol) == (0, "TLSv1.3")


# ---- what the backend sees, bodies, connections --------------------------------------------


def test_x_forwarded_proto_per_listener(site):
    r = site.request("GET", "/echo", headers=[("X-Forwarded-Proto", "http")])  # a claim: replaced
    assert forwarded_proto(r) == ["https"]
    r = site.proxy.get("/echo", headers=[("X-Forwarded-Proto", "https")])  # clear text
    assert forwarded_proto(r) == ["http"]


SIZES = [0, MiB, 64 * MiB]
SIZE_IDS = ["0", "1MiB", "64MiB"]


@pytest.mark.parametrize("framing", ["length", "chunked"])
@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_upload_through_tls(site, size, framing):
    r = site.request("POST", "/echo", payload(size), chunked=framing == "chunked")
    assert r.status == 200
    seen = r.json()
    assert (seen["body_length"], seen["body_sha256"]) == (size, payload_sha256(size))
    assert seen["chunked"] == (framing == "chunked")


@pytest.mark.parametrize("framing", ["length", "chunked"])
@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_download_through_tls(site, size, framing):
    r = site.request("GET", f"/bytes/{size}" if framing == "length" else f"/chunked/{size}")
    assert r.status == 200
    assert (len(r.body), sha256(r.body)) == (size, payload_sha256(size))
    if framing == "chunked":
        assert r.header("Transfer-Encoding") == "chunked"
    else:
        assert r.header("Content-Length") == str(size)


def test_many_requests_on_one_tls_connection(site):
    """Keep-alive: 120 requests of every kind on one connection, which took one handshake."""
    before = handshakes(site.proxy, "success")
    served = site.backend.requests
    with site.conn() as c:
        for i in range(120):
            size = (i * 7919) % 150_000
            if i % 3 == 0:
                r = c.request("POST", "/echo", payload(size), chunked=i % 2 == 0)
                seen = r.json()
                assert (seen["body_length"], seen["body_sha256"]) == (size, payload_sha256(size))
                assert forwarded_proto(r) == ["https"]
            else:
                r = c.get(f"/bytes/{size}" if i % 2 else f"/chunked/{size}")
                assert (len(r.body), sha256(r.body)) == (size, payload_sha256(size)), i
            assert r.status == 200
        assert not c.at_eof(timeout=0.2)
    assert site.backend.requests - served == 120
    wait_for(lambda: handshakes(site.proxy, "success") == before + 1, what="one handshake")


def test_pipelined_requests_through_tls(site):
    """Forty requests in one write (so in a few TLS records), answered in order."""
    reqs = []
    for i in range(40):
        if i % 4 == 1:
            reqs.append(build_request("POST", f"/echo?n={i}", body=payload(1000 + i)))
        else:
            reqs.append(build_request("GET", f"/echo?n={i}"))
    with site.conn() as c:
        c.send(b"".join(reqs))
        got = [c.read_response() for _ in range(40)]
        assert [r.status for r in got] == [200] * 40
        assert [r.json()["target"] for r in got] == [f"/echo?n={i}" for i in range(40)]
        for i, r in enumerate(got):
            if i % 4 == 1:
                assert r.json()["body_sha256"] == payload_sha256(1000 + i)
        assert c.get("/").body == b"a"  # and the connection goes on
        assert not c.at_eof(timeout=0.2)


def test_http10_over_tls(site):
    with site.conn() as c:
        r = c.request("GET", "/echo", version="HTTP/1.0", host=None)
        assert r.status == 200 and r.json()["method"] == "GET"
        assert forwarded_proto(r) == ["https"]
        assert c.at_eof()
    # a chunked answer reaches an HTTP/1.0 client decoded, delimited by the close
    with site.conn() as c:
        r = c.request("GET", "/chunked/300000", version="HTTP/1.0")
        assert r.status == 200 and r.header("Transfer-Encoding") is None
        assert (len(r.body), sha256(r.body)) == (300_000, payload_sha256(300_000))
        assert c.at_eof()
    # and keep-alive when asked
    with site.conn() as c:
        for _ in range(3):
            r = c.request("GET", "/", version="HTTP/1.0", headers=[("Connection", "keep-alive")])
            assert (r.status, r.body) == (200, b"a")


def test_concurrent_tls_clients_on_one_worker(site):
    """Sixteen clients at once, each with its own keep-alive connection: every byte right."""

    def client(k: int) -> int:
        with site.conn() as c:
            for i in range(8):
                size = 100_000 + k * 1000 + i
                r = c.get(f"/bytes/{size}")
                assert (r.status, sha256(r.body)) == (200, payload_sha256(size))
        return k

    with cf.ThreadPoolExecutor(16) as pool:
        assert sorted(pool.map(client, range(16))) == list(range(16))


# ---- static files -----------------------------------------------------------------------------


def test_static_files_over_tls(site):
    big = payload(BIG_FILE_SIZE)
    with site.conn() as c:
        r = c.get("/files/small.txt")
        assert (r.status, r.body) == (200, SMALL_FILE)
        r = c.get("/files/big.bin")
        assert r.status == 200 and r.header("Content-Length") == str(BIG_FILE_SIZE)
        assert (len(r.body), sha256(r.body)) == (BIG_FILE_SIZE, sha256(big))
        r = c.get("/files/big.bin", headers=[("Range", "bytes=5000000-5999999")])
        assert r.status == 206 and r.body == big[5_000_000:6_000_000]
        r = c.request("HEAD", "/files/big.bin")
        assert (r.status, r.header("Content-Length"), r.body) == (200, str(BIG_FILE_SIZE), b"")
        r = c.get("/files/small.txt")  # the connection survives all of that
        assert (r.status, r.body) == (200, SMALL_FILE)


# ---- an Upgrade tunnel --------------------------------------------------------------------------


def open_tls_tunnel(site: Site) -> TlsConn:
    c = site.conn()
    c.send(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
    head = c.reader.read_head()
    assert head is not None and head.startswith(b"HTTP/1.1 101 "), head
    return c


def tunnel_echo(c: TlsConn, data: bytes) -> bytes:
    """Send data and read its echo, 64 KiB at a time (one thread: an SSL socket is not to be
    read and written from two at once; a piece always fits in the socket buffers)."""
    got: list[bytes] = []
    for i in range(0, len(data), 1 << 16):
        piece = data[i : i + (1 << 16)]
        c.send(piece)
        c.reader.read_exact(len(piece), got.append)
    return b"".join(got)


def test_upgrade_tunnel_through_tls(site):
    base = active(site.proxy)
    c = open_tls_tunnel(site)
    with c:
        assert tunnel_echo(c, b"hello through TLS") == b"hello through TLS"
        big = payload(3 * MiB + 17)
        assert sha256(tunnel_echo(c, big)) == sha256(big)
        for i in range(20):  # many small records, both ways
            msg = f"message {i}".encode()
            assert tunnel_echo(c, msg) == msg
        # the upstream ends it: the client sees the close
        assert tunnel_echo(c, b"bye!") == b"bye!"
        assert c.at_eof(timeout=5)
    wait_for(lambda: active(site.proxy) == base, what="the tunnel's client connection closed")
    # a client that ends a tunnel: its connection goes, and the worker serves on
    c = open_tls_tunnel(site)
    assert tunnel_echo(c, b"short") == b"short"
    c.close()
    wait_for(lambda: active(site.proxy) == base, what="the second tunnel's connection closed")
    assert site.request("GET", "/").body == b"a"


# ---- clients that are not TLS, or never finish ------------------------------------------------


def test_plain_http_to_the_tls_port(site):
    proxy = site.proxy
    failed = handshakes(proxy, "failure")
    got = proxy.raw(b"GET / HTTP/1.1\r\nHost: app.example\r\n\r\n", listener="https", timeout=5)
    assert got.closed, got
    assert b"HTTP/" not in got  # at most a TLS alert
    wait_for(lambda: handshakes(proxy, "failure") == failed + 1, what="a failed handshake")
    # the worker goes on, both ways
    assert site.request("GET", "/").body == b"a"
    assert proxy.get("/").body == b"a"


def still_open(s: socket.socket) -> bool:
    """The proxy has not closed s. Asked without waiting (a socket with a timeout would wait
    for readability first); bytes already there (a server flight) are read and dropped."""
    timeout = s.gettimeout()
    s.settimeout(0)
    try:
        while s.recv(65536):
            pass
        return False
    except BlockingIOError:
        return True
    except ConnectionResetError:
        return False
    finally:
        s.settimeout(timeout)


def closed_within(s: socket.socket, timeout: float) -> bool:
    """Read (and drop) whatever comes until the proxy closes s; False if it stays open."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        s.settimeout(left)
        try:
            if not s.recv(65536):
                return True
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
    return False


def test_cut_and_stalled_handshakes_do_not_stall_the_worker(site):
    """With one worker: handshakes cut halfway (then closed), and clients that stop halfway,
    after a whole ClientHello, or before any byte, while other clients are served meanwhile;
    the stalled ones are closed after client_header_timeout."""
    proxy, port = site.proxy, site.port
    base = active(proxy)
    hello = client_hello(A_NAME)
    for _ in range(5):  # half a ClientHello, then close
        with raw_connect(port) as s:
            s.sendall(hello[: len(hello) // 2])
    half = [raw_connect(port) for _ in range(3)]
    for s in half:
        s.sendall(hello[: len(hello) // 2])
    whole = [raw_connect(port) for _ in range(3)]
    for s in whole:
        s.sendall(hello)
        s.settimeout(5)
        assert s.recv(5)[:1] == b"\x16"  # the server's flight began: it waits for the client's
    silent = [raw_connect(port) for _ in range(3)]
    stalled = half + whole + silent
    try:
        # meanwhile: others are served, TLS and clear text, with whole handshakes
        for name in (A_NAME, "x.wild.example.test", None):
            ctx = client_context(site.certs.ca, check_hostname=name is not None)
            with site.conn(name, ctx) as c:
                r = c.get("/bytes/100000")
                assert (r.status, sha256(r.body)) == (200, payload_sha256(100_000))
        assert proxy.get("/").body == b"a"
        opened = [still_open(s) for s in stalled]
        assert all(opened), f"a stalled client was closed too early: {opened}"
        # ... and the stalled ones are closed after client_header_timeout
        for s in stalled:
            assert closed_within(s, CLOSE_WITHIN), "a stalled handshake was never closed"
    finally:
        for s in stalled:
            s.close()
    wait_for(lambda: active(proxy) == base, what="every stalled connection gone")
    assert site.request("GET", "/").body == b"a"


def test_handshakes_are_counted(site):
    proxy = site.proxy
    ok, failed = handshakes(proxy, "success"), handshakes(proxy, "failure")
    for i in range(7):
        ctx = client_context(site.certs.ca, version="1.2" if i % 2 else "1.3")
        with site.conn(A_NAME, ctx) as c:
            assert c.get("/").body == b"a"
    wait_for(lambda: handshakes(proxy, "success") == ok + 7, what="7 handshakes counted")
    assert proxy.get("/").body == b"a"  # clear text is no handshake
    time.sleep(0.2)
    assert handshakes(proxy, "success") == ok + 7
    assert handshakes(proxy, "failure") == failed


# ---- kernel TLS: where the kernel has none (this machine), user space does it all -----------


def kernel_tls_suites(synapserve_cmd) -> list[str]:
    out = subprocess.run(
        [*synapserve_cmd, "version"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    (line,) = [x for x in out.splitlines() if x.startswith("kernel tls: ")]
    value = line.removeprefix("kernel tls: ")
    return [] if value.startswith("no ") else value.split(", ")


def test_version_says_whether_the_kernel_has_tls(synapserve_cmd):
    suites = kernel_tls_suites(synapserve_cmd)
    for s in suites:
        version, cipher = s.removeprefix("TLS ").split(" ")
        assert version in ("1.2", "1.3") and cipher in (
            "AES-128-GCM",
            "AES-256-GCM",
            "ChaCha20-Poly1305",
        ), s
    if suites:  # the probe installed keys: the module is loaded, its counters exist
        assert Path("/proc/net/tls_stat").exists()


def test_without_kernel_tls_every_connection_stays_in_user_space(site, synapserve_cmd):
    if kernel_tls_suites(synapserve_cmd):
        pytest.skip("this kernel has kernel TLS: the VM test (make test-ktls-vm) covers it")
    proxy = site.proxy
    for i in range(4):
        ctx = client_context(site.certs.ca, version="1.2" if i % 2 else "1.3")
        with site.conn(A_NAME, ctx) as c:
            assert c.get("/").body == b"a"
    for direction in ("rx", "tx"):
        assert (
            proxy.metric(
                "synapserve_tls_ktls_connections_total", listener="https", direction=direction
            )
            == 0
        )


def test_ktls_require_refuses_to_start_without_kernel_tls(
    synapserve, backends, certs, synapserve_cmd
):
    if kernel_tls_suites(synapserve_cmd):
        pytest.skip("this kernel has kernel TLS: require starts (make test-ktls-vm covers it)")
    (a,) = backends("a")
    with pytest.raises(ProxyExited) as e:
        synapserve(
            upstreams={"app": [a]},
            listeners=("http", "https"),
            tls={"https": {"certificates": [certs.default.entry()], "ktls": "require"}},
        )
    assert 'listeners.https.tls.ktls = "require": this kernel has no kernel TLS' in str(e.value)


# ---- config checks ---------------------------------------------------------------------------


def check_config(synapserve_cmd, tmp_path, certificates: list[Pair]) -> subprocess.CompletedProcess:
    spec = tls_spec({"app": [{"address": "127.0.0.1:9"}]}, None, certificates)
    config_dir = tmp_path / "config"
    config_dir.mkdir(exist_ok=True)
    (config_dir / "synapserve.toml").write_text(spec.render({"http": 1, "https": 2}, 3))
    return subprocess.run(
        [*synapserve_cmd, "check", "--config-dir", str(config_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_accepts_good_certificates(synapserve_cmd, tmp_path, certs):
    p = check_config(synapserve_cmd, tmp_path, [certs.default, certs.a, certs.wild, certs.cn_only])
    assert p.returncode == 0, p.stderr
    assert "expire" not in p.stderr


@pytest.mark.parametrize("which", ["mismatched", "mismatched_type"])
def test_check_refuses_a_key_of_another_certificate(synapserve_cmd, tmp_path, certs, which):
    """A key that is not the certificate's: another key of the same type (EC), or a key of
    another type (an EC key beside an RSA certificate) - either does not belong to it."""
    pair = getattr(certs, which)
    p = check_config(synapserve_cmd, tmp_path, [certs.wild, pair])
    assert p.returncode == 1
    assert "does not belong" in p.stderr and pair.key in p.stderr, p.stderr
    assert "certificates[1]" in p.stderr


def test_check_refuses_an_expired_certificate(synapserve_cmd, tmp_path, certs):
    p = check_config(synapserve_cmd, tmp_path, [certs.expired])
    assert p.returncode == 1
    assert "expired" in p.stderr and certs.expired.cert in p.stderr, p.stderr


def test_check_warns_of_a_certificate_expiring_soon(synapserve_cmd, tmp_path, certs):
    p = check_config(synapserve_cmd, tmp_path, [certs.default, certs.expiring])
    assert p.returncode == 0, p.stderr
    warnings = [line for line in p.stderr.splitlines() if "expires" in line]
    assert len(warnings) == 1, p.stderr
    assert certs.expiring.cert in warnings[0]


@pytest.mark.parametrize("which", ["mismatched", "expired"])
def test_a_proxy_with_a_broken_certificate_does_not_start(synapserve, backends, certs, which):
    (a,) = backends("a")
    with pytest.raises(ProxyExited) as e:
        synapserve(
            upstreams={"app": [a]},
            listeners=("http", "https"),
            tls={"https": {"certificates": [getattr(certs, which).entry()]}},
        )
    assert ("does not belong" if which == "mismatched" else "expired") in str(e.value)


# ---- reloads --------------------------------------------------------------------------------


def install(pair: Pair, cert: Path, key: Path) -> None:
    """Put pair's files at cert and key, each replaced atomically (as a renewal tool does)."""
    for src, dst in ((pair.key, key), (pair.cert, cert)):
        tmp = dst.with_name(dst.name + ".new")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)


def peer_der(c: TlsConn) -> bytes:
    return c.sock.getpeercert(binary_form=True)


def der_of(pem_file: str) -> bytes:
    with open(pem_file) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


@pytest.fixture
def rotating(synapserve, backends, certs, tmp_path):
    """A proxy whose certificate for a.example.test lives in files of its own (tls/a.pem,
    tls/a.key) that a test may replace."""
    (a,) = backends("a")
    tls_dir = tmp_path / "tls"
    tls_dir.mkdir()
    own = Pair(str(tls_dir / "a.pem"), str(tls_dir / "a.key"))
    install(certs.a, Path(own.cert), Path(own.key))
    proxy = synapserve(
        upstreams={"app": [a]},
        listeners=("http", "https"),
        server={"workers": 1},
        tls={"https": {"certificates": [certs.default.entry(), own.entry()]}},
    )
    proxy.own = own
    return proxy


@pytest.mark.parametrize("which", ["mismatched", "expired"])
def test_a_reload_to_a_broken_certificate_is_refused(rotating, certs, which):
    proxy = rotating
    ctx = client_context(certs.ca)
    port = proxy.ports["https"]
    gen = proxy.status()["generation"]
    broken = getattr(certs, which)
    proxy.write_config(
        sections=proxy.spec.sections
        | {"tls": {"https": {"certificates": [certs.default.entry(), broken.entry()]}}}
    )
    result = proxy.reload()
    assert (result["http_status"], result["ok"]) == (422, False), result
    word = "does not belong" if which == "mismatched" else "expired"
    assert any(word in e for e in result["errors"]), result
    assert proxy.status()["generation"] == gen
    assert proxy.metric("synapserve_config_reloads_total", result="failure") >= 1
    # the running certificates serve on
    with TlsConn(port, ctx, A_NAME) as c:
        assert peer_der(c) == der_of(certs.a.cert)
        assert c.get("/").body == b"a"
    with TlsConn(port, ctx, DEFAULT_NAME) as c:
        assert peer_der(c) == der_of(certs.default.cert)


def test_certificate_rotated_on_disk_and_reloaded(rotating, certs):
    """The files of a certificate are replaced and the config reloaded, while clients keep
    connecting: new connections get the new certificate, none fails, and a keep-alive
    connection opened before goes on."""
    proxy = rotating
    port = proxy.ports["https"]
    ctx = client_context(certs.ca)
    old, new = der_of(certs.a.cert), der_of(certs.a_rotated.cert)
    assert old != new
    stop = threading.Event()
    seen: list[bytes] = []
    errors: list[BaseException] = []

    def traffic() -> None:
        while not stop.is_set():
            try:
                with TlsConn(port, ctx, A_NAME) as c:
                    assert c.get("/").body == b"a"
                    seen.append(peer_der(c))
            except BaseException as e:  # noqa: BLE001 - reported by the test
                errors.append(e)
                return

    kept = TlsConn(port, ctx, A_NAME)
    with kept:
        assert kept.get("/").body == b"a" and peer_der(kept) == old
        t = threading.Thread(target=traffic)
        t.start()
        try:
            wait_for(lambda: len(seen) >= 5 or errors, what="traffic before the rotation")
            install(certs.a_rotated, Path(proxy.own.cert), Path(proxy.own.key))
            result = proxy.reload()
            assert (result["http_status"], result["ok"]) == (200, True), result
            with TlsConn(port, ctx, A_NAME) as c:
                assert peer_der(c) == new
                assert c.get("/").body == b"a"
            n = len(seen)
            wait_for(lambda: len(seen) >= n + 5 or errors, what="traffic after the rotation")
        finally:
            stop.set()
            t.join(timeout=20)
        assert not errors, errors
        assert seen[0] == old and seen[-1] == new
        # the connection of before: still the old certificate, still serving
        for _ in range(3):
            assert kept.get("/echo").status == 200
        assert peer_der(kept) == old
    # the default certificate was not touched
    with TlsConn(port, ctx, DEFAULT_NAME) as c:
        assert peer_der(c) == der_of(certs.default.cert)


@pytest.mark.parametrize("how", ["connection-close", "http10-close-delimited"])
def test_the_proxy_closes_with_close_notify(site, how):
    """When the proxy ends a TLS connection, it says so (close_notify) before the FIN: a
    client can tell a response that ends at the close from one cut short."""
    s = socket.create_connection(("127.0.0.1", site.port), timeout=10)
    tls = site.ctx.wrap_socket(s, server_hostname=A_NAME, suppress_ragged_eofs=False)
    if how == "connection-close":
        tls.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    else:  # a chunked answer, decoded for HTTP/1.0: it ends where the connection does
        tls.sendall(b"GET /chunked/300000 HTTP/1.0\r\n\r\n")
    got = bytearray()
    while True:
        try:
            chunk = tls.recv(65536)
        except ssl.SSLEOFError:
            pytest.fail("the connection ended without close_notify")
        if not chunk:
            break  # close_notify received
        got += chunk
    tls.close()
    assert got.startswith(b"HTTP/1.1 200") or got.startswith(b"HTTP/1.0 200")
    if how != "connection-close":
        assert len(got) - got.find(b"\r\n\r\n") - 4 == 300_000


def test_a_certificate_replaced_on_disk_is_reloaded_without_being_asked(rotating, certs):
    """The directories of the certificate and key files are watched like the config
    directory: a renewal tool replacing them is enough, no reload command needed."""
    proxy = rotating
    port = proxy.ports["https"]
    ctx = client_context(certs.ca)
    new = der_of(certs.a_rotated.cert)
    gen = proxy.status()["generation"]
    install(certs.a_rotated, Path(proxy.own.cert), Path(proxy.own.key))

    def serves_new() -> bool:
        with TlsConn(port, ctx, A_NAME) as c:
            return peer_der(c) == new and c.get("/").body == b"a"

    wait_for(serves_new, 5.0, "the new certificate served")
    assert proxy.status()["generation"] > gen
    assert proxy.metric("synapserve_config_last_reload_successful") == 1
