"""Prometheus counters for ``--metrics``: read from the kernel's counts at each scrape.

The counters come from the in-kernel summary map (drops) or counter array
(tcp), not from streamed events, so they are exact even when the ring
buffer overflows.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import Metric

from ...metrics import counter

if TYPE_CHECKING:
    from .kernel import DropTracer
    from .report import DropFormatter
    from .tcpevents import TcpTracer


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


TCP_COUNTERS = [
    ("netbpf_tcp_retransmitted_segments", "Segments TCP sent again (tcp:tcp_retransmit_skb, as "
     "RetransSegs counts them)", "RETRANS_SEGS"),
    ("netbpf_tcp_retransmit_failures", "Retransmits that could not be sent", "RETRANS_FAILED"),
    ("netbpf_tcp_synack_retransmits", "SYN-ACKs sent again", "SYNACK_RETRANS"),
    ("netbpf_tcp_resets_sent", "RSTs sent (tcp:tcp_send_reset)", "RESETS_SENT"),
    ("netbpf_tcp_resets_received", "RSTs received (tcp:tcp_receive_reset)", "RESETS_RECEIVED"),
    ("netbpf_tcp_state_changes", "TCP state changes (sock:inet_sock_set_state)", "STATE_CHANGES"),
    ("netbpf_tcp_connections_closed", "Connections seen from start to CLOSE", "CLOSED"),
]


def tcp_families(tracer: TcpTracer) -> Iterator[Metric]:
    from .tcpevents import Total

    if tracer.obj is None:
        return
    for name, doc, total in TCP_COUNTERS:
        yield counter(name, doc, value=tracer.total(Total[total]))
    yield counter("netbpf_tcp_events_lost", "TCP events the ring buffer had no room "
                  "for (the counters above still include them)", value=tracer.lost)
