"""`synapserve run`: the supervisor of the control plane.

Signal handlers only enqueue; the supervisor loop drains the queue and calls
handle_<name>(). It owns the listening sockets (opened before any privilege is
dropped), the native engine, the admin endpoint, the health checker and the
config watcher, and it is the only place where a reload happens.
"""

from __future__ import annotations

import logging
import os
import pwd
import queue
import signal
import socket
import threading
import time
from dataclasses import dataclass, field

from synapserve import cache as cache_mod
from synapserve import config as config_mod
from synapserve import mime, privileges
from synapserve import plan as plan_mod
from synapserve.admin import AdminServer
from synapserve.native import Engine, EngineError, ktls_suites
from synapserve.reload import describe_changes
from synapserve.watch import ConfigWatcher

log = logging.getLogger("synapserve")

GRACE_MS = 10_000
HANDLED_SIGNALS = {  # what each signal asks of the supervisor loop
    signal.SIGHUP: "reload",
    signal.SIGTERM: "stop",
    signal.SIGINT: "stop",
    signal.SIGUSR1: "reopen",
}


class StartError(RuntimeError):
    """Start failed: one clear line for the operator."""


def sd_notify(state: str) -> None:
    """Tell systemd (Type=notify) where we are, when it asked."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(path)
            s.sendall(state.encode())
    except OSError as e:
        log.warning("sd_notify %s: %s", state, e)


def open_listener(addr: config_mod.Address) -> socket.socket:
    family = socket.AF_INET6 if addr.family == "ipv6" else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((addr.host, addr.port))
        s.listen(4096)
    except OSError:
        s.close()
        raise
    return s


def open_access_log(target: str) -> int:
    """A file descriptor for the workers' access log, or -1 when it is off."""
    if target == "off":
        return -1
    if target == "stdout":
        return os.dup(1)
    return os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)


@dataclass
class ReloadResult:
    ok: bool
    generation: int
    changes: dict = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "generation": self.generation,
            "changes": self.changes,
            "errors": self.errors,
        }


class Supervisor:
    def __init__(self, config_dir: str) -> None:
        self.config_dir = config_dir
        self.events: queue.Queue = queue.Queue()
        self.cfg: config_mod.Config | None = None
        self.plan: plan_mod.Plan | None = None
        self.slots = plan_mod.SlotState()
        self.sockets: dict[str, socket.socket] = {}
        # listeners a reload removed: the workers may still hold them until the
        # old plan is freed, so they are closed then, or taken back if re-added
        self.retired: dict[str, socket.socket] = {}
        self.engine: Engine | None = None
        self.generation = 0
        self.loaded_at = 0.0
        self.reloads = {"success": 0, "failure": 0}
        self.last_reload_ok = True
        self.last_success_ts = 0.0
        self.lock = threading.Lock()  # reloads vs. admin readers
        self.admin: AdminServer | None = None
        self.health = None  # a HealthChecker once an upstream has checks (asyncio: memory)
        self.started = False
        self.watcher: ConfigWatcher | None = None
        self.static: cache_mod.StaticFiles | None = None
        self.cache_dir = ""  # prepared cache_dir, "" when none is usable
        self.stopping = False
        self.identity = ""

    # ---- start --------------------------------------------------------------

    def start(self) -> None:
        try:
            cfg = config_mod.load(self.config_dir)
        except config_mod.ConfigError as e:
            raise StartError(
                f"invalid configuration: {e.issues[0]}"
                + (
                    f" (and {len(e.issues) - 1} more; run synapserve check)"
                    if len(e.issues) > 1
                    else ""
                )
            ) from None
        # everything that binds comes first, while we may still be root
        self._open_sockets(cfg)
        try:
            self.admin = AdminServer(cfg.admin.bind, self)
        except OSError as e:
            msg = f"cannot bind the admin endpoint {cfg.admin.bind}: {e.strerror}"
            raise StartError(msg) from None
        try:
            self.engine = Engine(cfg.server.worker_count, cfg.server.max_connections)
        except EngineError as e:
            raise StartError(str(e)) from None
        self.watcher = ConfigWatcher(self.config_dir, lambda: self.events.put(("reload", "watch")))
        self.static = cache_mod.StaticFiles(self.engine.static_changed)
        self._prepare_cache(cfg)  # while root: it may have to be made and given away
        # then no more root: no thread has started yet, so all inherit it
        self.identity = privileges.drop(cfg.server.user)
        try:
            self._apply(cfg)
        except OSError as e:
            raise StartError(f"cannot open the access log {cfg.log.access}: {e.strerror}") from None
        except EngineError as e:
            raise StartError(str(e)) from None
        try:
            self.engine.start()
        except EngineError as e:
            raise StartError(str(e)) from None
        self.admin.start()
        self.watcher.start()
        self.static.start()
        if self.health:
            self.health.start()
        self.started = True
        log.info(
            "serving: %s; admin on %s; %d worker(s); %s",
            cfg.summary(),
            cfg.admin.bind,
            cfg.server.worker_count,
            self.identity,
        )
        sd_notify("READY=1")

    def _open_sockets(self, cfg: config_mod.Config) -> list[str]:
        """Bind every address cfg needs that is not bound yet; all or nothing."""
        opened: dict[str, socket.socket] = {}
        try:
            for lst in cfg.listeners.values():
                for a in lst.binds:
                    key = str(a)
                    if key in self.sockets or key in opened:
                        continue
                    if key in self.retired:
                        opened[key] = self.retired.pop(key)
                    else:
                        opened[key] = open_listener(a)
        except OSError as e:
            for s in opened.values():
                s.close()
            raise StartError(f"cannot bind {key}: {e.strerror}") from None
        self.sockets.update(opened)
        return list(opened)

    def _apply(self, cfg: config_mod.Config) -> dict:
        """Swap cfg in (sockets already open). Raises EngineError or SlotError."""
        for lst in cfg.listeners.values():
            if lst.tls and lst.tls.ktls == "require" and not ktls_suites():
                raise EngineError(
                    f'listeners.{lst.name}.tls.ktls = "require": this kernel has no kernel TLS '
                    '(the tls module is missing, or takes no keys); use "auto" to encrypt in '
                    "user space where it cannot"
                )
        old = self.cfg
        self.generation += 1
        log_fd = open_access_log(cfg.log.access)
        statics = {r.static.root: False for s in cfg.sites.values() for r in s.routes if r.static}
        for s in cfg.sites.values():
            for r in s.routes:
                if r.static and r.static.compress:
                    statics[r.static.root] = True
        types = mime.load() if statics else {}
        cache_dir = self._prepare_cache(cfg)
        try:
            plan = plan_mod.build(
                cfg, self.sockets, self.slots, self.generation, log_fd, types, cache_dir
            )
            self._apply_plan(cfg, plan)
        finally:
            if log_fd >= 0:
                os.close(log_fd)  # the engine keeps its own duplicate
        self.static.configure(statics, types, cache_dir)
        self.watcher.watch_files(  # a rotated certificate reloads like an edited file
            p
            for lst in cfg.listeners.values()
            if lst.tls
            for c in lst.tls.certificates
            for p in (c.cert, c.key)
        )
        return describe_changes(old, cfg)

    def _prepare_cache(self, cfg: config_mod.Config) -> str:
        """cfg's cache_dir when a route compresses and it can be had, else ""."""
        if not any(r.static and r.static.compress for s in cfg.sites.values() for r in s.routes):
            return ""
        if self.cache_dir != cfg.server.cache_dir:
            uid = gid = -1
            if os.geteuid() == 0:
                try:
                    pw = pwd.getpwnam(cfg.server.user)
                    uid, gid = pw.pw_uid, pw.pw_gid
                except KeyError:
                    pass
            self.cache_dir = cache_mod.prepare(cfg.server.cache_dir, uid, gid)
        return self.cache_dir

    def _apply_plan(self, cfg: config_mod.Config, plan: plan_mod.Plan) -> None:
        new_slots = plan.server_slot
        old_slots = self.plan.server_slot if self.plan else {}
        # servers new to the pool: with active checks they start down until
        # their first good check; without, up. Survivors keep their state.
        for key, slot in new_slots.items():
            if key in old_slots and old_slots[key] == slot:
                continue
            up = cfg.upstreams[key[0]]
            self.engine.server_added(slot, up.health is None)
        self.engine.apply(plan)
        plan.commit(self.slots)
        self.plan, self.cfg = plan, cfg
        self.loaded_at = time.time()
        wanted = {str(a) for lst in cfg.listeners.values() for a in lst.binds}
        for key in [k for k in self.sockets if k not in wanted]:
            self.retired[key] = self.sockets.pop(key)
        if self.health is None and any(u.health for u in cfg.upstreams.values()):
            from synapserve.health import HealthChecker  # asyncio, ssl: only when checking

            self.health = HealthChecker(self.engine, self._on_health_change)
            if self.started:
                self.health.start()
        if self.health:
            self.health.configure(cfg, plan)

    # ---- the loop -----------------------------------------------------------

    def install_signals(self) -> None:
        """Handlers only enqueue; installed before start() so that a signal
        arriving while starting is handled once the loop runs."""
        for sig, name in HANDLED_SIGNALS.items():
            signal.signal(sig, lambda *_a, n=name: self.events.put((n, "signal")))

    def run(self) -> int:
        while not self.stopping:
            try:
                name, source = self.events.get(timeout=1.0)
            except queue.Empty:
                self._collect()
                continue
            if name == "reload":
                # a burst of file events is one reload: wait for quiet
                if source == "watch":
                    self._debounce()
                self.handle_reload(source)
            else:
                getattr(self, f"handle_{name}")(source)
        return 0

    def _collect(self) -> None:
        """Free old plans; once none is left, removed listeners are closed for good."""
        if self.engine.gc() == 0 and self.retired:
            with self.lock:
                for s in self.retired.values():
                    s.close()
                self.retired.clear()

    def _debounce(self, quiet: float = 0.15) -> None:
        while True:
            try:
                name, source = self.events.get(timeout=quiet)
            except queue.Empty:
                return
            if name != "reload":
                self.events.put((name, source))
                return

    def handle_reload(self, source: str) -> ReloadResult:
        with self.lock:
            sd_notify("RELOADING=1")
            try:
                result = self._reload()
            finally:
                sd_notify("READY=1")
        key = "success" if result.ok else "failure"
        self.reloads[key] += 1
        self.last_reload_ok = result.ok
        if result.ok:
            self.last_success_ts = time.time()
            log.info(
                "reload (%s): generation %d: %s",
                source,
                result.generation,
                summarize(result.changes),
            )
        else:
            for err in result.errors:
                log.error("reload (%s) refused, running config kept: %s", source, err)
        return result

    def _reload(self) -> ReloadResult:
        try:
            cfg = config_mod.load(self.config_dir)
        except config_mod.ConfigError as e:
            return ReloadResult(False, self.generation, errors=[str(i) for i in e.issues])
        try:
            opened = self._open_sockets(cfg)
        except StartError as e:
            return ReloadResult(False, self.generation, errors=[str(e)])
        try:
            changes = self._apply(cfg)
        except OSError as e:
            for key in opened:
                self.retired[key] = self.sockets.pop(key)  # closed at the next gc
            return ReloadResult(False, self.generation, errors=[f"access log: {e}"])
        except (EngineError, plan_mod.SlotError) as e:
            for key in opened:
                self.retired[key] = self.sockets.pop(key)
            return ReloadResult(False, self.generation, errors=[str(e)])
        return ReloadResult(True, self.generation, changes)

    def handle_reload_request(self, done) -> None:
        """POST /reload: the admin thread waits on `done` for the result."""
        done.put(self.handle_reload("admin"))

    def handle_stop(self, source: str) -> None:
        log.info("stopping (%s): draining for up to %d ms", source, GRACE_MS)
        sd_notify("STOPPING=1")
        self.stopping = True

    def handle_reopen(self, source: str) -> None:
        """SIGUSR1 (logrotate): the same config again, with the access log reopened."""
        log.info("reopening log files (%s)", source)
        with self.lock:
            try:
                self._apply(self.cfg)
            except (OSError, EngineError, plan_mod.SlotError) as e:
                log.error("reopening the access log failed: %s", e)

    # ---- stop ---------------------------------------------------------------

    def shutdown(self) -> None:
        for part in (self.watcher, self.static, self.health):
            if part:
                part.stop()
        if self.engine:
            self.engine.stop(GRACE_MS)
        if self.admin:
            self.admin.stop()
        for s in [*self.sockets.values(), *self.retired.values()]:
            s.close()
        if self.engine:
            self.engine.close()
        # stopped: from here the process only exits, and the interpreter's exit
        # puts the default action back on handled signals, so that a SIGTERM
        # now would kill it (status -15, not 0); ignored ones stay ignored
        for sig in HANDLED_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)

    def _on_health_change(self, upstream: str, server: str, up: bool) -> None:
        """Health transitions are logged by the checker; nothing more to do yet."""


def summarize(changes: dict) -> str:
    parts = []
    for kind, diff in changes.items():
        for verb in ("added", "removed", "modified"):
            names = diff.get(verb) or []
            if names:
                parts.append(f"{kind} {verb}: {', '.join(names)}")
    return "; ".join(parts) or "no changes"


def run(config_dir: str) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    sup = Supervisor(config_dir)
    sup.install_signals()
    try:
        sup.start()
    except StartError as e:
        log.error("%s", e)
        sup.shutdown()
        return 1
    try:
        return sup.run()
    finally:
        sup.shutdown()
        log.info("stopped")
