"""A small demo upstream for `make run`: answers with its name, has /healthz,
and can be made unhealthy with `curl -X POST localhost:PORT/fail` (and healthy
again with /recover), so health checks and failover can be watched."""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

healthy = True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _reply(self, code: int, body: bytes, ctype: str = "text/plain") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._reply(200 if healthy else 503, b"ok\n" if healthy else b"failing\n")
            return
        info = {
            "server": self.server.name,
            "path": self.path,
            "x-forwarded-for": self.headers.get("X-Forwarded-For"),
        }
        self._reply(200, json.dumps(info).encode() + b"\n", "application/json")

    def do_POST(self) -> None:
        global healthy
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        if self.path in ("/fail", "/recover"):
            healthy = self.path == "/recover"
            self._reply(200, b"healthy\n" if healthy else b"failing\n")
        else:
            self._reply(404, b"not found\n")

    def log_message(self, fmt: str, *args) -> None:
        pass


def main() -> None:
    port, name = int(sys.argv[1]), sys.argv[2]
    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    httpd.name = name
    httpd.serve_forever()


if __name__ == "__main__":
    main()
