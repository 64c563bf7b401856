"""Helpers of test_tls.py: test certificates made with the openssl CLI, an HttpConn over TLS
(Python's ssl), a ClientHello as bytes, and the curl and `openssl s_client` command lines."""

from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness import IO_TIMEOUT, LOCALHOST, HttpConn, _Reader

OPENSSL = shutil.which("openssl")
CURL = shutil.which("curl")

DEFAULT_NAME = "default.example.test"
A_NAME = "a.example.test"
WILD_NAME = "*.wild.example.test"
EXACT_WILD_NAME = "exact.wild.example.test"
CN_ONLY_NAME = "cn-only.example.test"  # a certificate without subjectAltName: its CN counts

# A minimal config of our own, so that nothing of /etc/ssl/openssl.cnf gets into the
# certificates; Python's default context (X509 strict from 3.13) wants these extensions.
_OPENSSL_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
"""

_LEAF_EXT = """\
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def tool_env() -> dict[str, str]:
    """The environment of curl and openssl: without the LD_PRELOAD of the ASan run (a
    sanitizer runtime preloaded into curl makes it hang)."""
    return {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}


def openssl(*args: str, cwd: str | os.PathLike | None = None, stdin: bytes = b"") -> str:
    p = subprocess.run(
        [OPENSSL, *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
        env=tool_env(),
    )
    assert p.returncode == 0, f"openssl {' '.join(args)}: {p.stderr.decode(errors='replace')}"
    return p.stdout.decode(errors="replace")


@dataclass(frozen=True)
class Pair:
    cert: str
    key: str

    def entry(self) -> dict:
        """As an element of a listener's tls.certificates."""
        return {"cert": self.cert, "key": self.key}


@dataclass(frozen=True)
class Certs:
    dir: Path
    ca: str  # the CA certificate every leaf is signed with
    default: Pair  # DNS:default.example.test
    a: Pair  # DNS:a.example.test
    wild: Pair  # DNS:*.wild.example.test
    exact_wild: Pair  # DNS:exact.wild.example.test (listed after wild: the exact name wins)
    cn_only: Pair  # CN=cn-only.example.test, no subjectAltName
    a_rotated: Pair  # DNS:a.example.test again, another key and serial: a rotation
    expired: Pair  # DNS:expired.example.test, expired yesterday
    expiring: Pair  # DNS:expiring.example.test, expires in 5 days
    mismatched: Pair  # a.example.test's certificate (EC) with another EC key
    mismatched_type: Pair  # the default certificate (RSA) with an EC key


class CertMaker:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.cnf = directory / "openssl.cnf"
        self.cnf.write_text(_OPENSSL_CNF)
        self.serial = 1000

    def key(self, name: str, rsa: bool = False) -> str:
        path = str(self.dir / f"{name}.key")
        if rsa:
            openssl(
                "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path
            )
        else:
            openssl(
                "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path
            )
        return path

    def ca(self) -> tuple[str, str]:
        key = self.key("ca")
        cert = str(self.dir / "ca.pem")
        openssl(
            "req", "-new", "-x509", "-config", str(self.cnf), "-extensions", "ca_ext",
            "-key", key, "-subj", "/CN=synapserve test CA", "-days", "30", "-out", cert,
        )  # fmt: skip
        return cert, key

    def leaf(
        self,
        name: str,
        ca: tuple[str, str],
        cn: str,
        sans: list[str] | None,
        days: int = 30,
        key: str | None = None,
        rsa: bool = False,
    ) -> Pair:
        key = key or self.key(name, rsa)
        csr = str(self.dir / f"{name}.csr")
        ext = self.dir / f"{name}.ext"
        text = _LEAF_EXT
        if sans:
            text += "subjectAltName = " + ",".join(f"DNS:{s}" for s in sans) + "\n"
        ext.write_text(text)
        openssl(
            "req", "-new", "-config", str(self.cnf), "-key", key, "-subj", f"/CN={cn}", "-out", csr
        )
        cert = str(self.dir / f"{name}.pem")
        self.serial += 1
        openssl(
            "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1],
            "-set_serial", str(self.serial), "-days", str(days), "-extfile", str(ext),
            "-out", cert,
        )  # fmt: skip
        return Pair(cert, key)


def make_certs(directory: Path) -> Certs:
    m = CertMaker(directory)
    ca = m.ca()
    default = m.leaf("default", ca, DEFAULT_NAME, [DEFAULT_NAME], rsa=True)
    return Certs(
        dir=directory,
        ca=ca[0],
        default=default,
        a=m.leaf("a", ca, A_NAME, [A_NAME]),
        wild=m.leaf("wild", ca, "wild", [WILD_NAME]),
        exact_wild=m.leaf("exact-wild", ca, "exact-wild", [EXACT_WILD_NAME]),
        cn_only=m.leaf("cn-only", ca, CN_ONLY_NAME, None),
        a_rotated=m.leaf("a-rotated", ca, A_NAME, [A_NAME]),
        expired=m.leaf("expired", ca, "expired.example.test", ["expired.example.test"], days=-1),
        expiring=m.leaf("expiring", ca, "expiring.example.test", ["expiring.example.test"], days=5),
        mismatched=Pair(str(directory / "a.pem"), m.key("mismatched")),
        mismatched_type=Pair(default.cert, m.key("mismatched-type")),
    )


# ---- Python's ssl as the client ----------------------------------------------------------------


def client_context(
    ca: str,
    check_hostname: bool = True,
    alpn: list[str] | None = None,
    version: str | None = None,
) -> ssl.SSLContext:
    """A verifying client context; version "1.2" or "1.3" pins the protocol version."""
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = check_hostname
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if version:
        v = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}[version]
        ctx.minimum_version = ctx.maximum_version = v
    return ctx


class TlsConn(HttpConn):
    """HttpConn over TLS: the same requests and responses, encrypted."""

    def __init__(
        self,
        port: int,
        ctx: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float = IO_TIMEOUT,
    ) -> None:
        super().__init__(port, timeout=timeout)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)
        self.reader = _Reader(self.sock)

    @property
    def version(self) -> str | None:
        return self.sock.version()

    @property
    def alpn(self) -> str | None:
        return self.sock.selected_alpn_protocol()

    def peer_names(self) -> list[str]:
        """The DNS names of the certificate the server chose (the CN when it has none)."""
        return peer_names(self.sock.getpeercert())


def peer_names(cert: dict) -> list[str]:
    sans = [v for k, v in cert.get("subjectAltName", ()) if k == "DNS"]
    if sans:
        return sans
    return [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"]


def client_hello(server_hostname: str | None = A_NAME) -> bytes:
    """The bytes of a real ClientHello (Python's ssl with memory BIOs, never sent anywhere)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    assert hello[:1] == b"\x16" and len(hello) > 100, hello[:16]
    return hello


def raw_connect(port: int, timeout: float = IO_TIMEOUT) -> socket.socket:
    return socket.create_connection((LOCALHOST, port), timeout=timeout)


# ---- curl and openssl s_client -----------------------------------------------------------------


def curl(
    url: str, *args: str, ca: str, resolve: str | None = None, data: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    cmd = [CURL, "-sS", "-v", "--http1.1", "--cacert", ca, "--max-time", "20"]
    if resolve:
        cmd += ["--resolve", resolve]
    if data is not None:
        cmd += ["--data-binary", "@-"]
    return subprocess.run(
        [*cmd, *args, url],
        input=data or b"",
        capture_output=True,
        timeout=30,
        check=False,
        env=tool_env(),
    )


@dataclass
class SClient:
    rc: int
    out: str
    err: str

    @property
    def alpn(self) -> str | None:
        """The protocol ALPN selected ("http/1.1"), or None when none was negotiated."""
        m = re.search(r"^ALPN protocol: (\S+)", self.out, re.M)
        if m:
            return m.group(1)
        assert "No ALPN negotiated" in self.out, self.out
        return None

    @property
    def subject(self) -> str:
        m = re.search(r"^subject=(.*)$", self.out, re.M)
        assert m, self.out
        return m.group(1)

    @property
    def protocol(self) -> str:
        m = re.search(r"^(?:New|Reused), (TLSv1\.[23]|SSLv3|\(NONE\)), Cipher is", self.out, re.M)
        assert m, self.out
        return m.group(1)

    @property
    def verified(self) -> bool:
        return "Verify return code: 0 (ok)" in self.out


def s_client(
    port: int,
    *args: str,
    ca: str,
    servername: str | None = None,
    stdin: bytes = b"",
) -> SClient:
    """`openssl s_client` against 127.0.0.1:port; stdin is what it sends (then it waits for the
    server to close, -ign_eof), or nothing (it closes at once after the handshake)."""
    cmd = [OPENSSL, "s_client", "-connect", f"{LOCALHOST}:{port}", "-CAfile", ca]
    cmd += ["-servername", servername] if servername else ["-noservername"]
    if stdin:
        cmd.append("-ign_eof")
    p = subprocess.run(
        [*cmd, *args], input=stdin, capture_output=True, timeout=30, check=False, env=tool_env()
    )
    return SClient(
        p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    )
