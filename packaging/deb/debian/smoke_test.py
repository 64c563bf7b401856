"""dh_auto_test: a smoke test of the built tree, run by pybuild for each python3.

The built package imports and reports its engine, the shipped default
configuration validates, and, where the build environment allows io_uring,
`synapserve run` proxies one request to a local upstream, answers /metrics,
and drains on SIGTERM. The pytest suites stay in the repository (`make test`).

usage: PYTHONPATH=<build dir> python3 debian/smoke_test.py <source dir>
"""

import getpass
import http.server
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

PY = sys.executable


def synapserve(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "synapserve", *args], text=True, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Upstream(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"smoke-upstream\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


# pybuild points http_proxy at a dead port during tests (no network): the
# addresses here are local, so no proxy.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with _opener.open(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def serve_once() -> None:
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    listen, admin = free_port(), free_port()
    with tempfile.TemporaryDirectory() as conf:
        with open(os.path.join(conf, "smoke.toml"), "w") as f:
            f.write(
                f'[server]\nworkers = 1\nuser = "{getpass.getuser()}"\n'
                f'[admin]\nbind = "127.0.0.1:{admin}"\n'
                f'[log]\naccess = "off"\n'
                f'[listeners.http]\nbind = "127.0.0.1:{listen}"\n'
                f'[upstreams.up]\nservers = [{{ address = "127.0.0.1:{upstream.server_port}" }}]\n'
                f'[sites.all]\nhosts = ["*"]\n[[sites.all.routes]]\npath = "/"\nupstream = "up"\n'
            )
        proc = subprocess.Popen([PY, "-m", "synapserve", "run", "--config-dir", conf])
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if get(f"http://127.0.0.1:{admin}/healthz", 1)[0] == 200:
                        break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"smoke: synapserve run did not come up (exit {proc.poll()})")
                time.sleep(0.2)
            status, body = get(f"http://127.0.0.1:{listen}/")
            assert (status, body) == (200, b"smoke-upstream\n"), (status, body)
            status, metrics = get(f"http://127.0.0.1:{admin}/metrics")
            assert status == 200 and b"synapserve_requests_total" in metrics, status
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=20)
            assert rc == 0, f"exit status {rc} after SIGTERM"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            upstream.shutdown()
    print("smoke: run: proxied a request, served /metrics, drained on SIGTERM")


def main() -> None:
    srcdir = sys.argv[1]
    out = synapserve("version", capture_output=True, check=True).stdout
    print(out, end="")
    synapserve("check", "--config-dir", os.path.join(srcdir, "packaging", "deb"), check=True)
    if "engine: io_uring" not in out:
        print("smoke: SKIP run: io_uring is not available in this build environment")
        return
    serve_once()


if __name__ == "__main__":
    main()
