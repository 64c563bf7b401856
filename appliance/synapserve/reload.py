"""What a reload changed: listeners, sites, routes, upstreams and servers added,
removed or modified (PRODUCT.md section 5, "Reload")."""

from __future__ import annotations

from synapserve.config import Config


def _diff(old: dict, new: dict) -> dict[str, list[str]]:
    return {
        "added": sorted(k for k in new if k not in old),
        "removed": sorted(k for k in old if k not in new),
        "modified": sorted(k for k in new if k in old and new[k] != old[k]),
    }


def describe_changes(old: Config | None, new: Config) -> dict[str, dict[str, list[str]]]:
    """Per kind, the names added, removed and modified between two configs.
    Routes are named "site:path", servers "upstream/address"."""
    o_listeners = old.listeners if old else {}
    o_sites = old.sites if old else {}
    o_ups = old.upstreams if old else {}

    def routes(sites):
        return {f"{s.name}:{r.path}": r for s in sites.values() for r in s.routes}

    def servers(ups):
        return {f"{u.name}/{srv.address}": srv for u in ups.values() for srv in u.servers}

    def shallow_sites(sites):
        return {n: (s.hosts, s.listeners) for n, s in sites.items()}

    def shallow_ups(ups):
        return {
            n: (
                u.balance,
                u.keepalive,
                u.connect_timeout_ms,
                u.read_timeout_ms,
                u.send_timeout_ms,
                u.retries,
                u.slow_start_ms,
                u.health,
                u.passive,
            )
            for n, u in ups.items()
        }

    changes = {
        "listeners": _diff(o_listeners, new.listeners),
        "sites": _diff(shallow_sites(o_sites), shallow_sites(new.sites)),
        "routes": _diff(routes(o_sites), routes(new.sites)),
        "upstreams": _diff(shallow_ups(o_ups), shallow_ups(new.upstreams)),
        "servers": _diff(servers(o_ups), servers(new.upstreams)),
    }
    if old and (old.limits != new.limits or old.log != new.log or old.server != new.server):
        changes["settings"] = {"added": [], "removed": [], "modified": ["limits/log/server"]}
    return changes
