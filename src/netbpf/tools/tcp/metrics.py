"""Prometheus counters for ``netbpf tcp --metrics``: read from the kernel's counts at each scrape.

The counters come from the in-kernel counter array, not from streamed events,
so they are exact even when the ring buffer overflows.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import Metric

from ...metrics import counter

if TYPE_CHECKING:
    from .kernel import TcpTracer


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
    from .kernel import Total

    if tracer.obj is None:
        return
    for name, doc, total in TCP_COUNTERS:
        yield counter(name, doc, value=tracer.total(Total[total]))
    yield counter("netbpf_tcp_events_lost", "TCP events the ring buffer had no room "
                  "for (the counters above still include them)", value=tracer.lost)
