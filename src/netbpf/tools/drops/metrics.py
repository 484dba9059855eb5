"""Prometheus counters for ``--metrics``: read from the kernel's counts at each scrape.

The counters come from the in-kernel summary map, not from streamed events,
so they are exact even when the ring buffer overflows.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from ...metrics import serve

if TYPE_CHECKING:
    from .events import DropTracer
    from .report import DropFormatter


class DropCollector(Collector):
    def __init__(self, tracer: DropTracer, formatter: DropFormatter) -> None:
        self.tracer = tracer
        self.formatter = formatter

    def collect(self) -> Iterator[CounterMetricFamily]:
        drops = CounterMetricFamily("netbpf_drops", "Packets the kernel dropped (skb:kfree_skb), "
                                    "by reason and location", labels=["reason", "location", "netns",
                                                                      "interface"])
        dropped_bytes = CounterMetricFamily("netbpf_drops_bytes", "Bytes of the dropped packets",
                                            labels=["reason", "location", "netns", "interface"])
        if self.tracer.obj is None:
            return
        totals: dict[tuple[str, str, str, str], list[int]] = {}
        for key, packets, nbytes in self.tracer.summary():
            labels = self.formatter.where(key.reason, key.location, key.netns, key.ifindex)
            total = totals.setdefault(labels, [0, 0])
            total[0] += packets
            total[1] += nbytes
        for labels, (packets, nbytes) in totals.items():
            drops.add_metric(list(labels), packets)
            dropped_bytes.add_metric(list(labels), nbytes)
        yield drops
        yield dropped_bytes
        lost = CounterMetricFamily("netbpf_drops_events_lost", "Drop events the ring buffer had "
                                   "no room for (the counts above still include them)")
        lost.add_metric([], self.tracer.lost)
        yield lost


def serve_drops(address: tuple[str, int], tracer: DropTracer, formatter: DropFormatter) -> None:
    registry = serve(address)
    registry.register(DropCollector(tracer, formatter))
