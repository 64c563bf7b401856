"""Compiling a validated Config into the native plan (syn_abi.h `struct syn_plan`).

The plan is flat C structs built with cffi. Slots (the indices of counters and
of the shared server state) are kept stable across reloads for everything that
survives one: a server keeps its slot, and with it its health, its counters
and its pooled connections, when it is matched by upstream name and address.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field

from synapserve import mime
from synapserve.config import Address, Config
from synapserve.native import ffi, lib

BALANCE = {"round_robin": 0, "least_conn": 1, "ip_hash": 2, "random": 3, "ewma": 4}
try:  # BLAKE2 without hashlib, which loads OpenSSL's libcrypto (3.5 MiB of RSS)
    from _blake2 import blake2b as _blake2b
except ImportError:  # pragma: no cover - a Python built without it
    from hashlib import blake2b as _blake2b

UINT64_MAX = (1 << 64) - 1
UINT32_NONE = (1 << 32) - 1  # syn_plan_route.statik of an upstream route
KTLS_MODES = {"off": 0, "auto": 1, "require": 2}
TLS_VERSIONS = {"1.2": 0x0303, "1.3": 0x0304}


class SlotError(RuntimeError):
    pass


class Slots:
    """Small integer slots for keys, stable while a key stays; freed slots are
    reused only after every other slot has been used once, so a counter read
    just after a reload is never a removed key's."""

    def __init__(self, size: int, what: str) -> None:
        self.size = size
        self.what = what
        self.of: dict = {}
        self._next = 0
        self._free: list[int] = []

    def assign(self, keys) -> dict:
        keys = list(dict.fromkeys(keys))
        wanted = set(keys)
        new_of = {k: s for k, s in self.of.items() if k in wanted}
        free = list(self._free) + [s for k, s in self.of.items() if k not in wanted]
        nxt = self._next
        for k in keys:
            if k in new_of:
                continue
            if nxt < self.size:
                new_of[k] = nxt
                nxt += 1
            elif free:
                new_of[k] = free.pop(0)
            else:
                raise SlotError(f"more than {self.size} {self.what}")
        return {"of": new_of, "next": nxt, "free": free}

    def commit(self, state: dict) -> None:
        self.of, self._next, self._free = state["of"], state["next"], state["free"]


@dataclass
class SlotState:
    """Every slot table of a running synapserve; lives as long as the process."""

    listeners: Slots = field(default_factory=lambda: Slots(lib.SYN_MAX_LISTENERS, "listeners"))
    sites: Slots = field(default_factory=lambda: Slots(lib.SYN_MAX_SITES, "sites"))
    upstreams: Slots = field(default_factory=lambda: Slots(lib.SYN_MAX_UPSTREAMS, "upstreams"))
    servers: Slots = field(default_factory=lambda: Slots(lib.SYN_MAX_SERVERS, "servers"))


@dataclass
class Plan:
    ptr: object  # struct syn_plan *
    keep: list  # cffi objects the plan points into
    generation: int
    listener_slot: dict[str, int]
    site_slot: dict[str, int]
    upstream_slot: dict[str, int]
    server_slot: dict[tuple[str, str], int]  # (upstream, "host:port") -> slot
    pending: dict  # slot states to commit once the engine accepted the plan

    def commit(self, slots: SlotState) -> None:
        for name, state in self.pending.items():
            getattr(slots, name).commit(state)


def server_key(upstream: str, addr: Address) -> tuple[str, str]:
    return (upstream, str(addr))


def server_id(addr: Address) -> int:
    """A stable identity for ip_hash: the same on every machine with the same config."""
    return int.from_bytes(_blake2b(str(addr).encode(), digest_size=8).digest(), "little")


def _fill_addr(dst, addr: Address) -> None:
    ip = ipaddress.ip_address(addr.host)
    dst.family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    dst.port = addr.port
    packed = ip.packed
    for i, b in enumerate(packed):
        dst.ip[i] = b


def _set_name(dst, name: str, size: int) -> None:
    raw = name.encode()[: size - 1]
    ffi.memmove(dst, raw + b"\0", len(raw) + 1)


def build(
    cfg: Config,
    sockets: dict[str, socket.socket],
    slots: SlotState,
    generation: int,
    access_log_fd: int = -1,
    types: dict[str, str] | None = None,
    cache_dir: str = "",
) -> Plan:
    """The plan for cfg. sockets maps "host:port" of every bind address to its
    listening socket. Slots are computed but not committed: Plan.commit() does
    that once the engine has accepted the plan. types: extension -> content
    type, for static files; cache_dir: where compressed bodies are ("" for none)."""
    keep: list = []
    pending = {
        "listeners": slots.listeners.assign(cfg.listeners),
        "sites": slots.sites.assign(cfg.sites),
        "upstreams": slots.upstreams.assign(cfg.upstreams),
        "servers": slots.servers.assign(
            server_key(u.name, s.address) for u in cfg.upstreams.values() for s in u.servers
        ),
    }
    lslot = pending["listeners"]["of"]
    sslot = pending["sites"]["of"]
    uslot = pending["upstreams"]["of"]
    vslot = pending["servers"]["of"]

    binds = [(lst, a) for lst in cfg.listeners.values() for a in lst.binds]
    listeners = ffi.new("struct syn_plan_listener[]", max(1, len(binds)))
    for i, (lst, a) in enumerate(binds):
        _set_name(listeners[i].name, lst.name, lib.SYN_NAME_MAX)
        listeners[i].fd = sockets[str(a)].fileno()
        listeners[i].slot = lslot[lst.name]
        listeners[i].bit = lslot[lst.name]

    ups = list(cfg.upstreams.values())
    nservers = sum(len(u.servers) for u in ups)
    servers = ffi.new("struct syn_plan_server[]", max(1, nservers))
    upstreams = ffi.new("struct syn_plan_upstream[]", max(1, len(ups)))
    upstream_index = {}
    k = 0
    for i, u in enumerate(ups):
        upstream_index[u.name] = i
        pu = upstreams[i]
        _set_name(pu.name, u.name, lib.SYN_NAME_MAX)
        pu.first_server = k
        pu.nservers = len(u.servers)
        pu.balance = BALANCE[u.balance]
        pu.keepalive = u.keepalive
        pu.connect_timeout_ms = u.connect_timeout_ms
        pu.read_timeout_ms = u.read_timeout_ms
        pu.send_timeout_ms = u.send_timeout_ms
        pu.retries = u.retries
        pu.max_fails = u.passive.max_fails
        pu.fail_timeout_ms = u.passive.fail_timeout_ms
        pu.slow_start_ms = u.slow_start_ms
        pu.slot = uslot[u.name]
        for s in u.servers:
            ps = servers[k]
            _fill_addr(ps.addr, s.address)
            ps.weight = s.weight
            ps.backup = 1 if s.backup else 0
            ps.slot = vslot[server_key(u.name, s.address)]
            ps.id = server_id(s.address)
            k += 1

    site_list = list(cfg.sites.values())
    sites = ffi.new("struct syn_plan_site[]", max(1, len(site_list)))
    host_rows = []
    route_rows = []
    static_rows = []
    for i, s in enumerate(site_list):
        _set_name(sites[i].name, s.name, lib.SYN_NAME_MAX)
        mask = 0
        for name in s.listeners:
            mask |= 1 << lslot[name]
        sites[i].listeners = mask
        sites[i].slot = sslot[s.name]
        host_rows += [(h, i) for h in s.hosts]
        for r in s.routes:
            if r.upstream:
                route_rows.append((r.path, i, upstream_index[r.upstream], UINT32_NONE))
            else:
                route_rows.append((r.path, i, 0, len(static_rows)))
                static_rows.append(r.static)
    hosts = ffi.new("struct syn_plan_host[]", max(1, len(host_rows)))
    for i, (h, site) in enumerate(host_rows):
        _set_name(hosts[i].name, h, lib.SYN_HOST_MAX)
        hosts[i].site = site
    routes = ffi.new("struct syn_plan_route[]", max(1, len(route_rows)))
    for i, (path, site, up, st) in enumerate(route_rows):
        _set_name(routes[i].path, path, lib.SYN_PATH_MAX)
        routes[i].site = site
        routes[i].upstream = up
        routes[i].statik = st
    statics = ffi.new("struct syn_plan_static[]", max(1, len(static_rows)))
    for i, st in enumerate(static_rows):
        _set_name(statics[i].root, st.root, lib.SYN_ROOT_MAX)
        _set_name(statics[i].index, st.index, lib.SYN_NAME_MAX)
        statics[i].compress = 1 if st.compress else 0
    type_rows = sorted((types or {}).items(), key=lambda kv: kv[0].encode()) if static_rows else []
    mimes = ffi.new("struct syn_plan_mime[]", max(1, len(type_rows)))
    for i, (ext, ctype) in enumerate(type_rows):
        _set_name(mimes[i].ext, ext, lib.SYN_EXT_MAX)
        _set_name(mimes[i].type, ctype, lib.SYN_MIME_MAX)
        mimes[i].compressible = 1 if mime.compressible(ctype) else 0

    p = ffi.new("struct syn_plan *")
    p.magic = lib.SYN_PLAN_MAGIC
    p.version = lib.SYN_ABI_VERSION
    p.generation = generation
    lim = cfg.limits
    p.limits.header_bytes = min(lim.header_bytes, 65535)  # "64k": the parser's ceiling
    p.limits.headers = lim.headers
    p.limits.body_bytes = lim.body_bytes or UINT64_MAX
    p.limits.client_header_timeout_ms = lim.client_header_timeout_ms
    p.limits.client_body_timeout_ms = lim.client_body_timeout_ms
    p.limits.keepalive_timeout_ms = lim.keepalive_timeout_ms
    p.limits.max_connections = cfg.server.max_connections
    p.nlisteners, p.listeners = len(binds), listeners
    p.nservers, p.servers = nservers, servers
    p.nupstreams, p.upstreams = len(ups), upstreams
    p.nsites, p.sites = len(site_list), sites
    p.nhosts, p.hosts = len(host_rows), hosts
    p.nroutes, p.routes = len(route_rows), routes
    p.access_log_fd = access_log_fd
    p.access_log_json = 1 if cfg.log.access_format == "json" else 0
    p.nstatics, p.statics = len(static_rows), statics
    p.nmimes, p.mimes = len(type_rows), mimes
    cert_rows = [
        (c, lst.tls, lslot[lst.name])
        for lst in cfg.listeners.values()
        if lst.tls
        for c in lst.tls.certificates
    ]
    certs = ffi.new("struct syn_plan_cert[]", max(1, len(cert_rows)))
    for i, (c, tls, slot) in enumerate(cert_rows):
        _set_name(certs[i].cert, c.cert, lib.SYN_ROOT_MAX)
        _set_name(certs[i].key, c.key, lib.SYN_ROOT_MAX)
        certs[i].listener = slot
        certs[i].min_version = TLS_VERSIONS[tls.min_version]
        certs[i].ktls = KTLS_MODES[tls.ktls]
    p.ncerts, p.certs = len(cert_rows), certs
    _set_name(p.cache_dir, cache_dir, lib.SYN_ROOT_MAX)
    keep += [listeners, servers, upstreams, sites, hosts, routes, statics, mimes, certs]
    return Plan(
        ptr=p,
        keep=keep,
        generation=generation,
        listener_slot=dict(lslot),
        site_slot=dict(sslot),
        upstream_slot=dict(uslot),
        server_slot=dict(vslot),
        pending=pending,
    )
