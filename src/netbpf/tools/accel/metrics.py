"""Prometheus view of the pinned counters (``netbpf accel status --metrics``).

Read at every scrape from the pins, so the numbers are the kernel's own and
the exporter can start and stop independently of ``enable``.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from . import accel


class AccelCollector:
    def __init__(self, pin_dir: Path) -> None:
        self.pin_dir = pin_dir

    def collect(self) -> Iterator[Metric]:
        status = accel.read_status(self.pin_dir)
        yield GaugeMetricFamily("netbpf_accel_enabled", "1 when accel is enabled at this pin directory",
                                value=int(status.enabled))
        yield GaugeMetricFamily("netbpf_accel_sockets", "sockets in the sockhash now",
                                value=status.sockets)
        c = status.counters
        if not c:
            return
        messages = CounterMetricFamily("netbpf_accel_messages", "sendmsg chunks of accelerated "
                                       "sockets, by path taken", labels=["path"])
        messages.add_metric(["redirect"], c["messages_redirected"])
        messages.add_metric(["tcp"], c["messages_tcp"])
        yield messages
        data = CounterMetricFamily("netbpf_accel_bytes", "bytes sent by accelerated sockets, by path "
                                   "taken", labels=["path"])
        data.add_metric(["redirect"], c["bytes_redirected"])
        data.add_metric(["tcp"], c["bytes_tcp"])
        yield data
        sockets = CounterMetricFamily("netbpf_accel_socket_events", "sockets stored, refused, "
                                      "or moved to TCP for good", labels=["event"])
        for event, key in (("added", "sockets_added"), ("refused", "sockets_failed"),
                           ("tcp_no_peer", "sockets_tcp_no_peer"),
                           ("tcp_small_writes", "sockets_tcp_small_writes"),
                           ("tcp_backlog", "sockets_tcp_backlog")):
            sockets.add_metric([event], c[key])
        yield sockets
        yield GaugeMetricFamily("netbpf_accel_max_unread_bytes", "the most redirected bytes one reader "
                                "has left unread so far", value=c["max_unread_bytes"])
