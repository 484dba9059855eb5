"""Prometheus counters for ``--metrics``: read from the kernel's counts at each scrape.

The counters come from the in-kernel summary map, not from streamed events,
so they are exact even when the ring buffer overflows.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import Metric

from ...metrics import counter

if TYPE_CHECKING:
    from .kernel import DropTracer
    from .report import DropFormatter


LABELS = ["reason", "location", "netns", "interface"]


def drop_families(tracer: DropTracer, formatter: DropFormatter) -> Iterator[Metric]:
    if tracer.obj is None:
        return
    totals: dict[tuple[str, str, str, str], list[int]] = {}
    for key, packets, nbytes in tracer.summary():
        labels = formatter.where(key.reason, key.location, key.netns, key.ifindex)
        total = totals.setdefault(labels, [0, 0])
        total[0] += packets
        total[1] += nbytes
    yield counter("netbpf_drops", "Packets the kernel dropped (skb:kfree_skb), by reason and location",
                  LABELS, ((labels, packets) for labels, (packets, _) in totals.items()))
    yield counter("netbpf_drops_bytes", "Bytes of the dropped packets",
                  LABELS, ((labels, nbytes) for labels, (_, nbytes) in totals.items()))
    yield counter("netbpf_drops_events_lost", "Drop events the ring buffer had "
                  "no room for (the counts above still include them)", value=tracer.lost)
