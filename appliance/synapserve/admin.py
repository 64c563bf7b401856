"""The admin endpoint (PRODUCT.md section 4): GET /metrics, /healthz, /status,
POST /reload. A small threaded HTTP server on `[admin] bind`, localhost by
default; it reads the supervisor's state and never blocks a worker."""

from __future__ import annotations

import json
import queue
import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    ProcessCollector,
    generate_latest,
)

from synapserve.metrics import IO_OPS, EngineCollector


def status_document(sup) -> dict:
    with sup.lock:
        cfg, plan, engine = sup.cfg, sup.plan, sup.engine
        generation, loaded_at = sup.generation, sup.loaded_at
    health = sup.health.snapshot() if sup.health else {}
    st = engine.stats()
    upstreams = {}
    for u in cfg.upstreams.values():
        servers = []
        for s in u.servers:
            addr = str(s.address)
            slot = plan.server_slot[(u.name, addr)]
            ss = engine.server_status(slot)
            h = health.get((u.name, addr))
            if not ss["up"]:
                state = "down"
            elif ss["ejected"]:
                state = "ejected"
            else:
                state = "up"
            servers.append(
                {
                    "address": addr,
                    "weight": s.weight,
                    "backup": s.backup,
                    "state": state,
                    "active": ss["active"],
                    "requests": sum(st.server_requests[slot][k] for k in range(1, 6)),
                    "failures": sum(st.server_failures[slot][k] for k in range(4)),
                    "health": h,
                }
            )
        upstreams[u.name] = {"balance": u.balance, "servers": servers}
    return {
        "generation": generation,
        "loaded_at": loaded_at,
        "listeners": {n: [str(a) for a in lst.binds] for n, lst in cfg.listeners.items()},
        "sites": {
            n: {"hosts": list(s.hosts), "routes": [r.path for r in s.routes]}
            for n, s in cfg.sites.items()
        },
        "upstreams": upstreams,
        "engine": {
            "workers": engine.workers,
            "heap_allocs": st.heap_allocs,  # by workers since start: flat once warm
            "io_uring_ops": {op: st.io_ops[i] for op, i in IO_OPS.items()},
            "recv_no_buffer": st.io_ops[6],  # a receive found the buffer ring empty
            "shed_no_buffer": st.io_ops[7],  # connections closed for it, at the pool's cap
        },
        "reloads": dict(sup.reloads),
        "last_reload_successful": sup.last_reload_ok,
    }


class _Handler(BaseHTTPRequestHandler):
    server_version = "synapserve-admin"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # the access log is the data plane's
        pass

    def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        sup = self.server.sup
        if self.path == "/metrics":
            self._send(200, generate_latest(self.server.registry), CONTENT_TYPE_LATEST)
        elif self.path == "/healthz":
            self._send(200, b"ok\n", "text/plain")
        elif self.path == "/status":
            self._send(200, json.dumps(status_document(sup), indent=1).encode() + b"\n")
        else:
            self._send(404, b'{"error": "not found"}\n')

    def do_POST(self):
        if self.path != "/reload":
            self._send(404, b'{"error": "not found"}\n')
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        done: queue.Queue = queue.Queue()
        self.server.sup.events.put(("reload_request", done))
        result = done.get(timeout=60)
        self._send(200 if result.ok else 422, json.dumps(result.as_dict()).encode() + b"\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:
        """HTTPServer's, without its socket.getfqdn(): a reverse DNS lookup at
        every start (slow where DNS is) that loads the resolver and the IDNA
        codec for a name nothing here uses."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        """A scraper that gives up mid-answer is not an error worth a traceback."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _Server6(_Server):
    address_family = socket.AF_INET6


class AdminServer:
    def __init__(self, bind, sup) -> None:
        server_cls = _Server6 if bind.family == "ipv6" else _Server
        self.httpd = server_cls((bind.host, bind.port), _Handler)
        self.httpd.sup = sup
        registry = CollectorRegistry()
        registry.register(EngineCollector(sup))
        ProcessCollector(registry=registry)
        self.httpd.registry = registry
        self._thread = threading.Thread(
            target=self.httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="syn-admin",
            daemon=True,
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for a loop that must be running
            self.httpd.shutdown()
        self.httpd.server_close()
