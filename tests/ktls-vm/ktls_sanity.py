"""Kernel TLS in this kernel, without synapserve: the harness's own control.

`ktls_sanity.py CERT KEY`: a TLS 1.2 connection over loopback between Python's ssl on both
ends, each with OpenSSL's SSL_OP_ENABLE_KTLS, echoes 256 KiB; /proc/net/tls_stat must show
both ends' transmit and receive in the kernel (TlsTxSw and TlsRxSw up by two, no decrypt
error). OpenSSL falls back to user space without a word where the kernel cannot, so the
counters, not the bytes arriving, are the evidence. Prints one line of figures; exit 0 or 1.
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
import threading

OP_ENABLE_KTLS = getattr(ssl, "OP_ENABLE_KTLS", 1 << 3)  # the name is Python 3.12's
CIPHER = "ECDHE-ECDSA-AES128-GCM-SHA256"  # the test certificate has an EC key
COUNTERS = ("TlsTxSw", "TlsRxSw", "TlsDecryptError")


def tls_stat() -> dict[str, int]:
    with open("/proc/net/tls_stat") as f:
        return {k: int(v) for k, v in (line.split() for line in f)}


def context(side: int, cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(side)
    if side == ssl.PROTOCOL_TLS_SERVER:
        ctx.load_cert_chain(cert, key)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.options |= OP_ENABLE_KTLS
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(CIPHER)
    return ctx


def recv_exact(conn: ssl.SSLSocket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        data = conn.recv(n - len(buf))
        if not data:
            break
        buf += data
    return bytes(buf)


def main() -> int:
    cert, key = sys.argv[1:3]
    payload = os.urandom(256 << 10)
    server_ctx = context(ssl.PROTOCOL_TLS_SERVER, cert, key)
    client_ctx = context(ssl.PROTOCOL_TLS_CLIENT, cert, key)
    before = tls_stat()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(60)

    def serve() -> None:
        conn, _ = listener.accept()
        conn.settimeout(60)
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(recv_exact(tls, len(payload)))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with client_ctx.wrap_socket(socket.create_connection(listener.getsockname())) as tls:
        tls.settimeout(60)
        tls.sendall(payload)
        echo = recv_exact(tls, len(payload))
        version, cipher = tls.version(), tls.cipher()[0]
    thread.join(60)
    after = tls_stat()
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in COUNTERS}
    print(
        f"python {sys.version.split()[0]}, {ssl.OPENSSL_VERSION}: {version} {cipher}, "
        f"echo {'intact' if echo == payload else 'WRONG'}, tls_stat delta {delta}"
    )
    ok = echo == payload and delta["TlsTxSw"] >= 2 and delta["TlsRxSw"] >= 2
    return 0 if ok and delta["TlsDecryptError"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
