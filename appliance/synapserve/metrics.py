"""Prometheus metrics (PRODUCT.md section 4): a custom collector that reads the
engine's shared counters at scrape time. Workers never lock anything for it;
the names, types and labels here are part of the interface."""

from __future__ import annotations

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from synapserve.native import histogram_bounds_seconds

CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
FAIL_REASONS = ("connect", "timeout", "reset", "5xx")
# op label -> index in syn_stats.io_ops: "recv" counts single-shot receives
# posted, "recv_multishot" multishot receives armed (each answers many wants)
IO_OPS = {
    "accept": 0,
    "recv": 1,
    "send": 2,
    "send_zc": 3,
    "splice": 4,
    "connect": 5,
    "recv_multishot": 8,
}
NO_SITE = "-"

DESCRIPTIONS = {
    "synapserve_requests_total": ("counter", "Requests answered, by site and status class"),
    "synapserve_request_duration_seconds": ("histogram", "Request duration, by site"),
    "synapserve_connections_active": ("gauge", "Client connections open, by listener"),
    "synapserve_connections_accepted_total": ("counter", "Client connections accepted"),
    "synapserve_upstream_requests_total": ("counter", "Upstream responses by status class"),
    "synapserve_upstream_response_seconds": ("histogram", "Upstream response time"),
    "synapserve_upstream_server_up": ("gauge", "1 while a server may get traffic"),
    "synapserve_upstream_server_active_connections": ("gauge", "Requests in flight"),
    "synapserve_upstream_failures_total": ("counter", "Upstream failures seen by traffic"),
    "synapserve_upstream_retries_total": ("counter", "Requests retried on another server"),
    "synapserve_upstream_no_server_total": ("counter", "Requests with no usable server"),
    "synapserve_config_reloads_total": ("counter", "Reload attempts, by result"),
    "synapserve_config_last_reload_successful": ("gauge", "1 if the last reload applied"),
    "synapserve_config_last_reload_success_timestamp_seconds": (
        "gauge",
        "When the last successful reload applied",
    ),
    "synapserve_tls_handshakes_total": ("counter", "TLS handshakes, by listener and result"),
    "synapserve_tls_ktls_connections_total": ("counter", "Connections with kernel TLS"),
    "synapserve_bytes_received_total": ("counter", "Bytes received from clients"),
    "synapserve_bytes_sent_total": ("counter", "Bytes sent to clients"),
    "synapserve_io_uring_ops_total": ("counter", "io_uring operations submitted, by op"),
    "synapserve_static_requests_total": ("counter", "Static file answers, by site and class"),
    "synapserve_static_bytes_sent_total": ("counter", "Static file body bytes sent"),
    "synapserve_static_compressed_total": (
        "counter",
        "Clients taking br for a compressible file: body ready (hit) or not yet (miss)",
    ),
}


def _family(name: str, labels: list[str]):
    kind, doc = DESCRIPTIONS[name]
    base = name.removesuffix("_total") if kind == "counter" else name
    cls = {
        "counter": CounterMetricFamily,
        "gauge": GaugeMetricFamily,
        "histogram": HistogramMetricFamily,
    }[kind]
    return cls(base, doc, labels=labels)


class EngineCollector(Collector):
    """Reads the supervisor's engine and plan at scrape time."""

    def __init__(self, supervisor) -> None:
        self.sup = supervisor
        self.bounds = histogram_bounds_seconds()

    def describe(self):
        labels = {
            "synapserve_requests_total": ["site", "code"],
            "synapserve_request_duration_seconds": ["site"],
            "synapserve_connections_active": ["listener"],
            "synapserve_connections_accepted_total": ["listener"],
            "synapserve_upstream_requests_total": ["upstream", "server", "code"],
            "synapserve_upstream_response_seconds": ["upstream"],
            "synapserve_upstream_server_up": ["upstream", "server"],
            "synapserve_upstream_server_active_connections": ["upstream", "server"],
            "synapserve_upstream_failures_total": ["upstream", "server", "reason"],
            "synapserve_upstream_retries_total": ["upstream"],
            "synapserve_upstream_no_server_total": ["upstream"],
            "synapserve_config_reloads_total": ["result"],
            "synapserve_config_last_reload_successful": [],
            "synapserve_config_last_reload_success_timestamp_seconds": [],
            "synapserve_tls_handshakes_total": ["listener", "result"],
            "synapserve_tls_ktls_connections_total": ["listener", "direction"],
            "synapserve_bytes_received_total": ["listener"],
            "synapserve_bytes_sent_total": ["listener"],
            "synapserve_io_uring_ops_total": ["op"],
            "synapserve_static_requests_total": ["site", "code"],
            "synapserve_static_bytes_sent_total": ["site"],
            "synapserve_static_compressed_total": ["site", "result"],
        }
        for name, lbl in labels.items():
            yield _family(name, lbl)

    def _hist(self, fam, label_values, buckets, count, total_us):
        cum = [(str(b), float(buckets[i])) for i, b in enumerate(self.bounds)]
        cum.append(("+Inf", float(count)))
        fam.add_metric(label_values, cum, total_us / 1e6)

    def collect(self):
        sup = self.sup
        with sup.lock:
            cfg, plan, engine = sup.cfg, sup.plan, sup.engine
        if not (cfg and plan and engine):
            return
        st = engine.stats()
        yield from self._requests(cfg, plan, st)
        yield from self._static(cfg, plan, st)
        yield from self._listeners(cfg, plan, st)
        yield from self._upstreams(cfg, plan, st, engine)
        yield from self._config(sup)
        yield from self._tls(cfg, plan, st)
        ops = _family("synapserve_io_uring_ops_total", ["op"])
        for op, i in IO_OPS.items():
            ops.add_metric([op], st.io_ops[i])
        yield ops

    def _requests(self, cfg, plan, st):
        req = _family("synapserve_requests_total", ["site", "code"])
        dur = _family("synapserve_request_duration_seconds", ["site"])
        for name in cfg.sites:
            slot = plan.site_slot[name]
            for k, cls in enumerate(CLASSES, start=1):
                req.add_metric([name, cls], st.site_requests[slot][k])
            self._hist(
                dur, [name], st.site_hist[slot], st.site_hist_count[slot], st.site_hist_sum_us[slot]
            )
        for k, cls in enumerate(CLASSES, start=1):
            if st.nosite_requests[k]:
                req.add_metric([NO_SITE, cls], st.nosite_requests[k])
        yield req
        yield dur

    def _static(self, cfg, plan, st):
        req = _family("synapserve_static_requests_total", ["site", "code"])
        sent = _family("synapserve_static_bytes_sent_total", ["site"])
        br = _family("synapserve_static_compressed_total", ["site", "result"])
        for name, site in cfg.sites.items():
            if not any(r.static for r in site.routes):
                continue
            slot = plan.site_slot[name]
            for k, cls in enumerate(CLASSES, start=1):
                req.add_metric([name, cls], st.static_requests[slot][k])
            sent.add_metric([name], st.static_bytes[slot])
            br.add_metric([name, "hit"], st.static_br[slot][0])
            br.add_metric([name, "miss"], st.static_br[slot][1])
        yield from (req, sent, br)

    def _tls(self, cfg, plan, st):
        hs = _family("synapserve_tls_handshakes_total", ["listener", "result"])
        kt = _family("synapserve_tls_ktls_connections_total", ["listener", "direction"])
        for name, lst in cfg.listeners.items():
            if lst.tls:
                slot = plan.listener_slot[name]
                hs.add_metric([name, "success"], st.tls_handshakes[slot][0])
                hs.add_metric([name, "failure"], st.tls_handshakes[slot][1])
                kt.add_metric([name, "rx"], st.tls_ktls[slot][0])
                kt.add_metric([name, "tx"], st.tls_ktls[slot][1])
        yield from (hs, kt)

    def _listeners(self, cfg, plan, st):
        active = _family("synapserve_connections_active", ["listener"])
        accepted = _family("synapserve_connections_accepted_total", ["listener"])
        rx = _family("synapserve_bytes_received_total", ["listener"])
        tx = _family("synapserve_bytes_sent_total", ["listener"])
        for name in cfg.listeners:
            slot = plan.listener_slot[name]
            active.add_metric([name], st.listener_active[slot])
            accepted.add_metric([name], st.listener_accepted[slot])
            rx.add_metric([name], st.listener_rx_bytes[slot])
            tx.add_metric([name], st.listener_tx_bytes[slot])
        yield from (active, accepted, rx, tx)

    def _upstreams(self, cfg, plan, st, engine):
        reqs = _family("synapserve_upstream_requests_total", ["upstream", "server", "code"])
        resp = _family("synapserve_upstream_response_seconds", ["upstream"])
        up = _family("synapserve_upstream_server_up", ["upstream", "server"])
        act = _family("synapserve_upstream_server_active_connections", ["upstream", "server"])
        fails = _family("synapserve_upstream_failures_total", ["upstream", "server", "reason"])
        retries = _family("synapserve_upstream_retries_total", ["upstream"])
        nosrv = _family("synapserve_upstream_no_server_total", ["upstream"])
        for u in cfg.upstreams.values():
            uslot = plan.upstream_slot[u.name]
            self._hist(
                resp,
                [u.name],
                st.upstream_hist[uslot],
                st.upstream_hist_count[uslot],
                st.upstream_hist_sum_us[uslot],
            )
            retries.add_metric([u.name], st.upstream_retries[uslot])
            nosrv.add_metric([u.name], st.upstream_no_server[uslot])
            for s in u.servers:
                addr = str(s.address)
                slot = plan.server_slot[(u.name, addr)]
                status = engine.server_status(slot)
                up.add_metric([u.name, addr], 1 if status["up"] and not status["ejected"] else 0)
                act.add_metric([u.name, addr], status["active"])
                for k, cls in enumerate(CLASSES, start=1):
                    reqs.add_metric([u.name, addr, cls], st.server_requests[slot][k])
                for k, reason in enumerate(FAIL_REASONS):
                    fails.add_metric([u.name, addr, reason], st.server_failures[slot][k])
        yield from (reqs, resp, up, act, fails, retries, nosrv)

    def _config(self, sup):
        reloads = _family("synapserve_config_reloads_total", ["result"])
        for result in ("success", "failure"):
            reloads.add_metric([result], sup.reloads[result])
        ok = _family("synapserve_config_last_reload_successful", [])
        ok.add_metric([], 1 if sup.last_reload_ok else 0)
        ts = _family("synapserve_config_last_reload_success_timestamp_seconds", [])
        ts.add_metric([], sup.last_success_ts or sup.loaded_at)
        yield from (reloads, ok, ts)
