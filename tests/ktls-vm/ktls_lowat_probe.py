"""Kernel TLS and TCP_NOTSENT_LOWAT, without synapserve: does a splice into a kTLS socket stall?

`ktls_lowat_probe.py CERT KEY LOWAT`: a TLS 1.2 connection over loopback between Python's ssl on
both ends, kernel TLS on (as ktls_sanity.py). The server end then gets TCP_NOTSENT_LOWAT LOWAT
(0: none), goes non-blocking, and moves 1 MiB into the socket as synapserve does: a pipe,
splice(2) with SPLICE_F_NONBLOCK, and poll(POLLOUT) when it would block. The client reads all
the while. Prints one line: whether the 1 MiB got through within 20 s, how many bytes did, and
how many waits for POLLOUT ended with nothing (1 s each). Exit 0 when it got through, else 1.

synapserve leaves a kTLS connection at the kernel's default for unsent bytes (native/src/tls.c)
because with its 16 KiB cap 1 MiB bodies through kTLS stalled on Debian's 6.1; this shows
whether the kernel alone does the same.
"""

from __future__ import annotations

import fcntl
import os
import select
import socket
import ssl
import sys
import threading
import time

from ktls_sanity import context, recv_exact, tls_stat

SIZE = 1 << 20
F_SETPIPE_SZ = 1031
SPLICE_F_MOVE, SPLICE_F_NONBLOCK = 1, 2
TCP_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", 25)


def splice_out(fd: int, payload: bytes, result: dict) -> None:
    r, w = os.pipe()
    fcntl.fcntl(w, F_SETPIPE_SZ, SIZE)
    os.write(w, payload)  # the pipe holds it all
    sent, empty_waits = 0, 0
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    deadline = time.monotonic() + 20
    while sent < len(payload) and time.monotonic() < deadline:
        try:
            n = os.splice(r, fd, len(payload) - sent, flags=SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
        except BlockingIOError:
            if not poller.poll(1000):
                empty_waits += 1
            continue
        if n <= 0:
            break
        sent += n
    result.update(sent=sent, empty_waits=empty_waits)
    os.close(r)
    os.close(w)


def main() -> int:
    cert, key, lowat = sys.argv[1], sys.argv[2], int(sys.argv[3])
    payload = os.urandom(SIZE)
    server_ctx = context(ssl.PROTOCOL_TLS_SERVER, cert, key)
    client_ctx = context(ssl.PROTOCOL_TLS_CLIENT, cert, key)
    before = tls_stat()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(60)
    result: dict = {}

    def serve() -> None:
        conn, _ = listener.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            tls.settimeout(60)
            recv_exact(tls, 1)  # the handshake is over on both ends
            if lowat:
                tls.setsockopt(socket.IPPROTO_TCP, TCP_NOTSENT_LOWAT, lowat)
            os.set_blocking(tls.fileno(), False)
            splice_out(tls.fileno(), payload, result)
            os.set_blocking(tls.fileno(), True)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with client_ctx.wrap_socket(socket.create_connection(listener.getsockname())) as tls:
        tls.settimeout(25)
        tls.sendall(b"!")
        try:
            got = recv_exact(tls, SIZE)
        except TimeoutError:
            got = b""
    thread.join(30)
    after = tls_stat()
    tx = after.get("TlsTxSw", 0) - before.get("TlsTxSw", 0)
    through = result.get("sent") == SIZE and got == payload
    print(
        f"TCP_NOTSENT_LOWAT {lowat or 'unset'}: "
        f"{'1 MiB through' if through else 'STALLED'}: spliced {result.get('sent', 0)} of {SIZE}, "
        f"client got {len(got)}, {result.get('empty_waits', 0)} empty 1 s waits for POLLOUT, "
        f"kernel TLS tx sockets {tx}"
    )
    return 0 if through and tx >= 1 else 1


if __name__ == "__main__":
    sys.exit(main())
