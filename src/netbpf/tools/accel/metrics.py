"""Prometheus view of the pinned counters (``netbpf accel status --metrics``).

Read at every scrape from the pins, so the numbers are the kernel's own and
the exporter can start and stop independently of ``enable``.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import Metric

from ...metrics import counter, gauge
from . import accel


def families(pin_dir: Path) -> Iterator[Metric]:
    status = accel.read_status(pin_dir)
    yield gauge("netbpf_accel_enabled", "1 when accel is enabled at this pin directory",
                value=int(status.enabled))
    yield gauge("netbpf_accel_sockets", "sockets in the sockhash now", value=status.sockets)
    c = status.counters
    if not c:
        return
    yield counter("netbpf_accel_messages", "sendmsg chunks of accelerated sockets, by path taken", ["path"],
                  [(["redirect"], c["messages_redirected"]), (["tcp"], c["messages_tcp"])])
    yield counter("netbpf_accel_bytes", "bytes sent by accelerated sockets, by path taken", ["path"],
                  [(["redirect"], c["bytes_redirected"]), (["tcp"], c["bytes_tcp"])])
    yield counter("netbpf_accel_socket_events", "sockets stored, refused, or moved to TCP for good", ["event"],
                  [([event], c[key]) for event, key in (
                      ("added", "sockets_added"), ("refused", "sockets_failed"),
                      ("tcp_no_peer", "sockets_tcp_no_peer"),
                      ("tcp_small_writes", "sockets_tcp_small_writes"),
                      ("tcp_backlog", "sockets_tcp_backlog"))])
    yield gauge("netbpf_accel_max_unread_bytes", "the most redirected bytes one reader "
                "has left unread so far", value=c["max_unread_bytes"])
