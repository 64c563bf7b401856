"""The upstream of the kTLS VM test (tests/ktls-vm/guest.sh), on 127.0.0.1.

`backend.py PORT DIR` writes the bodies the test sends and expects into DIR (get.bin and
post.bin, 1 MiB each, the same bytes on every run), then serves HTTP/1.1 with keep-alive:

  GET /blob    get.bin
  GET /hello   a short body
  POST /echo   the request's body (Content-Length framed), as it arrived

Standard library only: the guest has Debian's python3 and what the package pulls in.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import sys

SIZE = 1 << 20


def body(seed: bytes) -> bytes:
    """SIZE bytes that depend on seed only."""
    return hashlib.shake_256(b"synapserve ktls-vm " + seed).digest(SIZE)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and 100-continue answered

    def do_GET(self) -> None:
        if self.path == "/blob":
            self.reply(200, self.server.blob)
        elif self.path == "/hello":
            self.reply(200, b"hello from the ktls-vm backend\n")
        else:
            self.reply(404, b"not found\n")

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length")
        if self.path != "/echo" or length is None:
            self.reply(404 if length else 411, b"POST /echo with a Content-Length\n")
            return
        self.reply(200, self.rfile.read(int(length)))

    def reply(self, status: int, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main() -> None:
    port, out = int(sys.argv[1]), sys.argv[2]
    os.makedirs(out, exist_ok=True)
    blob = body(b"get")
    for name, data in (("get.bin", blob), ("post.bin", body(b"post"))):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.blob = blob
    server.serve_forever()


if __name__ == "__main__":
    main()
