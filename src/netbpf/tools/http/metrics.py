"""Prometheus metrics of ``netbpf http --metrics HOST:PORT``.

Counts are kept as plain numbers by the capture loop (a few dictionary
updates per transaction) and turned into metric families only when
Prometheus scrapes, from the exporter's thread. Every gateway node runs its
own netbpf; ``sum(netbpf_http_requests_total)`` over all of them is the
cluster-wide count.
"""
from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from ...packet.http import H2_PREFACE, H2C_UPGRADE, TLS_HANDSHAKE
from .kernel import Counter
from .summary import outcome
from .tracer import Transaction

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class TransactionCounts:
    """What the metrics need from each transaction, updated in the capture loop."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], int] = {}
        self.latency: dict[str, list[float]] = {}  # backend -> bucket counts..., sum, count

    def add(self, tx: Transaction) -> None:
        exchange = tx.exchange
        response = exchange.response
        status = str(response.status) if response is not None else outcome(exchange)
        backend = tx.backend
        key = (backend, exchange.request.method, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        if response is not None and not exchange.error:
            seconds = response.last_ts - exchange.request.first_ts
            hist = self.latency.get(backend)
            if hist is None:
                hist = self.latency[backend] = [0.0] * (len(BUCKETS) + 3)
            hist[bisect.bisect_left(BUCKETS, seconds)] += 1
            hist[-2] += seconds
            hist[-1] += 1


class HttpCollector(Collector):
    def __init__(self, counts: TransactionCounts, snapshot: Callable[[], dict[str, Any]]) -> None:
        self.counts = counts
        self.snapshot = snapshot  # the capture's own counters, read at scrape time

    def collect(self) -> Iterator[Any]:
        requests = CounterMetricFamily("netbpf_http_requests", "HTTP requests traced, by backend, "
                                       "method and response status (none: closed unanswered; unknown: "
                                       "what the capture cannot tell)",
                                       labels=["backend", "method", "status"])
        for (backend, method, status), n in list(self.counts.requests.items()):
            requests.add_metric([backend, method, status], n)
        yield requests
        latency = HistogramMetricFamily("netbpf_http_request_duration_seconds",
                                        "First request byte to last response byte", labels=["backend"])
        for backend, hist in list(self.counts.latency.items()):
            cumulative: float = 0.0
            buckets: list[tuple[str, float]] = []
            for bound, in_bucket in zip(BUCKETS, hist[:len(BUCKETS)], strict=True):
                cumulative += in_bucket
                buckets.append((repr(bound), cumulative))
            buckets.append(("+Inf", hist[-1]))
            latency.add_metric([backend], buckets, hist[-2])
        yield latency
        snap = self.snapshot()
        kernel: dict[Counter, int] = snap["kernel"]
        yield _counter("netbpf_http_frames_seen", "Frames the socket filter ran on",
                       kernel[Counter.FRAMES_SEEN])
        yield _counter("netbpf_http_frames_kept", "Frames of the target ports kept by the filter",
                       kernel[Counter.FRAMES_KEPT])
        yield _counter("netbpf_http_frames_lost", "Kept frames the ring had no room for (tp_drops)",
                       snap["ring_drops"])
        protocols = CounterMetricFamily("netbpf_http_frames_by_protocol",
                                        "Frames the filter ran on, by innermost IP protocol",
                                        labels=["protocol"])
        for name, counter in (("tcp", Counter.PROTO_TCP), ("udp", Counter.PROTO_UDP),
                              ("icmp", Counter.PROTO_ICMP), ("other", Counter.PROTO_OTHER),
                              ("not_ip", Counter.NOT_IP)):
            protocols.add_metric([name], kernel[counter])
        yield protocols
        yield GaugeMetricFamily("netbpf_http_flows", "TCP connections being reassembled",
                                value=snap["flows"])
        yield _counter("netbpf_http_flows_opened", "TCP connections seen", snap["flows_opened"])
        yield _counter("netbpf_http_reassembly_gaps", "Holes in TCP streams never filled", snap["gaps"])
        yield _counter("netbpf_http_reassembly_gap_bytes", "Bytes in those holes", snap["gap_bytes"])
        yield _counter("netbpf_http_unparseable_streams", "Stream directions that were not HTTP/1.x",
                       snap["unparseable"])
        yield _counter("netbpf_http_orphan_responses", "Responses whose request was not captured",
                       snap["orphans"])
        other = CounterMetricFamily("netbpf_http_not_http1_connections",
                                    "Connections on the traced ports that speak something else, by what "
                                    "tells (never counted as transactions)", labels=["protocol"])
        not_http: dict[str, int] = snap.get("not_http", {})
        for label, kind in (("http2_preface", H2_PREFACE), ("http2_upgrade", H2C_UPGRADE),
                            ("tls_handshake", TLS_HANDSHAKE)):
            other.add_metric([label], not_http.get(kind, 0))
        yield other


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)
