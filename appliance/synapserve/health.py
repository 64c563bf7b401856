"""Active health checks: an HTTP GET of `health.path` to every server of every
upstream that has a `health` table, every `interval`, all concurrently on one
asyncio loop in its own thread, so that checks never hold up the admin
endpoint or a reload. State goes to the engine's shared server table, where
the workers read it; each transition is reported once."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from synapserve.config import Config, Health

log = logging.getLogger("synapserve.health")


@dataclass
class Target:
    upstream: str
    address: str  # "host:port"
    host: str
    port: int
    slot: int
    health: Health
    up: bool
    new: bool  # never checked yet: the first good check brings it up
    ok_streak: int = 0
    fail_streak: int = 0
    last_status: int | None = None
    last_error: str = ""
    last_check: float = 0.0
    task: asyncio.Task | None = field(default=None, repr=False)


class HealthChecker:
    def __init__(self, engine, on_change: Callable[[str, str, bool], None]) -> None:
        self.engine = engine
        self.on_change = on_change
        self.loop = asyncio.new_event_loop()
        self.targets: dict[tuple[str, str], Target] = {}
        self._thread = threading.Thread(target=self._run, name="syn-health", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._cancel_all)
            self._thread.join(timeout=5)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def _cancel_all(self) -> None:
        for t in self.targets.values():
            if t.task:
                t.task.cancel()
        self.loop.stop()

    def configure(self, cfg: Config, plan) -> None:
        """Checks for the servers of cfg: survivors keep their state and their
        schedule when their health table is unchanged."""
        wanted: dict[tuple[str, str], Target] = {}
        for u in cfg.upstreams.values():
            if u.health is None:
                continue
            for s in u.servers:
                key = (u.name, str(s.address))
                slot = plan.server_slot[key]
                old = self.targets.get(key)
                if old and old.slot == slot:
                    old.health = u.health
                    wanted[key] = old
                else:
                    wanted[key] = Target(
                        u.name,
                        str(s.address),
                        s.address.host,
                        s.address.port,
                        slot,
                        u.health,
                        up=False,
                        new=True,
                    )
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._retarget, wanted)
        else:
            self._retarget(wanted)

    def _retarget(self, wanted: dict) -> None:
        for key, t in self.targets.items():
            if key not in wanted and t.task:
                t.task.cancel()
        for t in wanted.values():
            if t.task is None:
                t.task = self.loop.create_task(self._check_loop(t))
        self.targets = wanted

    def snapshot(self) -> dict[tuple[str, str], dict]:
        return {
            k: {
                "up": t.up,
                "last_status": t.last_status,
                "last_error": t.last_error,
                "last_check": t.last_check,
            }
            for k, t in list(self.targets.items())
        }

    async def _check_loop(self, t: Target) -> None:
        while True:
            ok = await self._check(t)
            self._record(t, ok)
            await asyncio.sleep(t.health.interval_ms / 1000)

    def _record(self, t: Target, ok: bool) -> None:
        t.last_check = time.time()
        if ok:
            t.ok_streak += 1
            t.fail_streak = 0
        else:
            t.fail_streak += 1
            t.ok_streak = 0
        was = t.up
        if t.new:
            t.new = False
            t.up = ok
        elif t.up and t.fail_streak >= t.health.fall:
            t.up = False
        elif not t.up and t.ok_streak >= t.health.rise:
            t.up = True
        if t.up != was:
            self.engine.set_server_up(t.slot, t.up)
            reason = f"status {t.last_status}" if t.last_status else t.last_error
            log.info(
                "health: %s %s -> %s (%s)", t.upstream, t.address, "up" if t.up else "down", reason
            )
            self.on_change(t.upstream, t.address, t.up)

    async def _check(self, t: Target) -> bool:
        h = t.health
        try:
            return await asyncio.wait_for(self._get(t), timeout=h.timeout_ms / 1000)
        except TimeoutError:
            t.last_status, t.last_error = None, f"timed out after {h.timeout_ms} ms"
        except OSError as e:
            t.last_status, t.last_error = None, e.strerror or str(e)
        return False

    async def _get(self, t: Target) -> bool:
        reader, writer = await asyncio.open_connection(t.host, t.port)
        try:
            host = f"[{t.host}]" if ":" in t.host else t.host
            writer.write(
                f"GET {t.health.path} HTTP/1.1\r\nHost: {host}:{t.port}\r\n"
                "User-Agent: synapserve-health\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
            line = await reader.readline()
        finally:
            writer.close()
        parts = line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            t.last_status, t.last_error = None, "not an HTTP response"
            return False
        t.last_status, t.last_error = int(parts[1]), ""
        return t.last_status in t.health.expect
