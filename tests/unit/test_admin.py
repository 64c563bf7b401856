"""The admin endpoint's server, without an engine behind it."""

from __future__ import annotations

import socket

from synapserve.admin import AdminServer
from synapserve.config import Address


def test_binding_makes_no_dns_lookup(monkeypatch):
    """HTTPServer would call socket.getfqdn() on the bind address: a reverse
    lookup at every start that also loads the resolver (memory, and time
    where DNS is slow)."""

    def refuse(*_a):
        raise AssertionError("socket.getfqdn called")

    monkeypatch.setattr(socket, "getfqdn", refuse)
    admin = AdminServer(Address("127.0.0.1", 0, "ipv4"), sup=None)
    try:
        host, port = admin.httpd.server_address[:2]
        assert (admin.httpd.server_name, admin.httpd.server_port) == (host, port)
        assert port > 0
    finally:
        admin.stop()
