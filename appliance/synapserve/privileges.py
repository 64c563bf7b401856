"""Dropping root after the listeners are bound (PRODUCT.md section 3, `server.user`).

Started as root (by hand; under systemd the unit already runs as the service user
with CAP_NET_BIND_SERVICE), synapserve binds its sockets, then becomes
`server.user`, keeping only CAP_NET_BIND_SERVICE so that a reload may still bind
a port below 1024.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import pwd

log = logging.getLogger("synapserve")

PR_SET_KEEPCAPS = 8
CAP_NET_BIND_SERVICE = 10
LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _keep_net_bind(libc) -> bool:
    """After setuid with KEEPCAPS: make CAP_NET_BIND_SERVICE the only capability,
    permitted and effective."""
    header = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    data[0].effective = data[0].permitted = 1 << CAP_NET_BIND_SERVICE
    return libc.capset(ctypes.byref(header), data) == 0


def drop(user: str) -> str:
    """Become `user` when running as root; returns what was done, in words."""
    if os.geteuid() != 0:
        return f"running as {pwd.getpwuid(os.geteuid()).pw_name} (not root: server.user unused)"
    if user == "root":
        return 'running as root (server.user = "root")'
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        log.warning("server.user %r does not exist: still running as root", user)
        return "running as root (server.user missing)"
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0)
    os.setgroups([])
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)
    kept = _keep_net_bind(libc)
    libc.prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0)
    extra = "" if kept else " (could not keep CAP_NET_BIND_SERVICE)"
    return f"running as {user}{extra}"
