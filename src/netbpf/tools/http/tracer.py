"""Frames in, transactions out: decapsulation, reassembly and HTTP pairing glued.

No I/O here either: the capture ring (``ring.py``) or a test feeds frames,
and each finished request/response pair comes back as a :class:`Transaction`
through a callback, with the client, the backend and the tunnel it went
through. Who is the client: the sender of the SYN when it was captured, else
the side whose port is not a target port, else the side that sends a request.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

from ...packet.decap import VXLAN_PORTS, Segment, Tunnel, decode_ip, format_endpoint
from ...packet.http import Exchange, HeadCache, HttpConversation, HttpStats
from ...packet.http import Limits as HttpLimits
from ...packet.tcp import Connection, Limits, Reassembler


class Transaction(NamedTuple):
    exchange: Exchange
    client: str  # address:port, [v6]:port
    backend: str  # the server's address:port
    tunnel: Tunnel | None


class HttpTracer:
    def __init__(self, ports: Iterable[int], on_transaction: Callable[[Transaction], None],
                 tag_header: str | None = None, keep_headers: bool = False,
                 vxlan_ports: Iterable[int] = VXLAN_PORTS, limits: Limits | None = None,
                 http_limits: HttpLimits | None = None, show_secrets: bool = False) -> None:
        limits = limits or Limits()
        http_limits = http_limits or HttpLimits()
        self.ports = frozenset(ports)
        self.on_transaction = on_transaction
        self.tag_header = tag_header
        self.keep_headers = keep_headers
        self.show_secrets = show_secrets  # else secrets are redacted as they are parsed (packet.redact)
        self.vxlan_ports = frozenset(vxlan_ports)
        self.http_limits = http_limits
        self.reassembler = Reassembler(self._open, limits)
        self.http = HttpStats()
        self.heads = HeadCache(http_limits.header_cache)
        self.frames = 0
        self.undecodable = 0  # frames the filter kept that are not a whole TCP segment
        self.other_ports = 0
        self.last_ts = 0.0

    def feed(self, frame: bytes | memoryview, offset: int = 0, l3: int = 0, ts: float = 0.0) -> None:
        """One frame whose IP header starts at ``offset`` (``l3``: its ethertype, 0: guess)."""
        self.frames += 1
        seg = decode_ip(frame, offset, l3, ts, self.vxlan_ports)
        if seg is None:
            self.undecodable += 1
            return
        self.feed_segment(seg)

    def feed_segment(self, seg: Segment) -> None:
        ports = self.ports
        if seg.sport not in ports and seg.dport not in ports:
            self.other_ports += 1
            return
        self.last_ts = max(self.last_ts, seg.ts)
        self.reassembler.feed(seg)

    def tick(self, now: float | None = None) -> None:
        """Housekeeping: idle flows closed, stale holes reported as gaps."""
        self.reassembler.expire(self.last_ts if now is None else now)

    def close(self, now: float | None = None) -> None:
        """End of capture: every open exchange is reported, with why it is incomplete."""
        self.reassembler.close_all(self.last_ts if now is None else now)

    def _open(self, conn: Connection) -> HttpConversation:
        client: int | None = None
        if conn.initiator_known or (conn.dport in self.ports and conn.sport not in self.ports):
            client = 0
        elif conn.sport in self.ports and conn.dport not in self.ports:
            client = 1
        names: list[str] = []  # client and backend, formatted once per connection

        def emit(exchange: Exchange) -> None:
            if not names:  # by then the conversation knows who the client is
                a, b = format_endpoint(conn.src, conn.sport), format_endpoint(conn.dst, conn.dport)
                names.extend((a, b) if conv.client_direction == 0 else (b, a))
            self.on_transaction(Transaction(exchange, names[0], names[1], conn.tunnel))

        conv = HttpConversation(emit, client, self.tag_header, self.keep_headers,
                                self.http, self.http_limits, midstream=not conn.initiator_known,
                                heads=self.heads, redact=not self.show_secrets)
        return conv

    @property
    def active_flows(self) -> int:
        return len(self.reassembler.connections)
