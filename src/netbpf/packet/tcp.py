"""TCP reassembly: segments in, ordered byte streams out, per connection.

Each connection has two halves (direction 0 is from the side that sent the
SYN, or from the sender of the first segment seen when the capture joined an
open connection). A half delivers its bytes in sequence order to the
connection's consumer, whatever order the segments came in:

- retransmitted and twice-captured bytes (``-i any`` sees a forwarded segment
  on two interfaces) are delivered once and counted;
- out-of-order segments wait in a buffer, bounded per connection and overall;
- a hole that will not be filled becomes a *gap* the consumer is told about
  (with its size), never silently skipped: when the peer acknowledges bytes
  the capture never saw, when a hole is older than ``hole_timeout`` of capture
  time, when a buffer limit is reached, or when the connection closes;
- FIN ends a half once every byte before it was delivered; RST, both FINs,
  ``idle_timeout`` without a segment, eviction (``max_flows``) and
  :meth:`Reassembler.close_all` close the connection.

No I/O: the caller feeds :class:`~netbpf.packet.decap.Segment` objects and
receives callbacks on the :class:`StreamConsumer` it made for each connection.
Data handed to ``on_data`` is ``bytes`` (a segment's payload, or the part of
it not delivered before); a consumer may keep it. With it comes ``ack``: the
acknowledgement number of the segment that carried it, as an offset in the
*other* direction's stream (how many of the peer's bytes the sender had
received when it sent them; -1 when unknown). HTTP pairing after capture loss
is proved with it.
"""
from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from .decap import ACK, FIN, RST, SYN, Segment, Tunnel

SEQ_MASK = 0xFFFFFFFF


def seq_diff(a: int, b: int) -> int:
    """``a - b`` in 32-bit sequence space, as a signed number."""
    d = (a - b) & SEQ_MASK
    return d - 0x100000000 if d & 0x80000000 else d


class StreamConsumer(Protocol):
    def on_data(self, direction: int, data: bytes, ts: float, ack: int = -1) -> None: ...
    def on_gap(self, direction: int, size: int, ts: float) -> None: ...
    def on_end(self, direction: int, ts: float) -> None: ...
    def on_close(self, reason: str, ts: float) -> None: ...


@dataclass(frozen=True, slots=True)
class Limits:
    flow_buffer: int = 4 << 20  # out-of-order bytes held for one connection
    total_buffer: int = 64 << 20  # ... for all connections together
    max_flows: int = 65536  # connections tracked at once; the idlest is evicted beyond
    idle_timeout: float = 120.0  # capture seconds without a segment before a flow is closed
    hole_timeout: float = 1.0  # capture seconds a hole may stay open while later bytes wait


@dataclass(slots=True)
class ReassemblyStats:
    flows_opened: int = 0
    flows_closed: dict[str, int] = field(default_factory=dict)
    gaps: int = 0
    gap_bytes: int = 0
    duplicate_bytes: int = 0  # retransmitted, or captured twice
    out_of_order_segments: int = 0
    ignored_segments: int = 0  # RST/FIN/ACK of connections not tracked


class Half:
    __slots__ = (
        "ended",
        "fin_seq",
        "heap",
        "hole_since",
        "next_seq",
        "offset",
        "pending",
        "pending_bytes",
        "synced",
    )

    def __init__(self) -> None:
        self.next_seq: int | None = None  # sequence number of the next byte to deliver
        self.offset = 0  # stream offset of next_seq: bytes delivered or skipped so far
        self.pending: dict[int, tuple[bytes, int]] = {}  # stream offset -> (bytes, ack offset) held
        self.heap: list[int] = []  # the offsets in pending, smallest first
        self.pending_bytes = 0
        self.fin_seq: int | None = None
        self.ended = False
        self.synced = False  # next_seq comes from a SYN (not from joining midway)
        self.hole_since = 0.0


class Connection:
    """One TCP connection; direction 0 goes from (src, sport) to (dst, dport)."""

    __slots__ = (
        "closed",
        "consumer",
        "dport",
        "dst",
        "first_ts",
        "halves",
        "initiator_known",
        "last_ts",
        "sport",
        "src",
        "tunnel",
    )

    def __init__(self, seg: Segment, reverse: bool) -> None:
        if reverse:
            self.src, self.sport, self.dst, self.dport = seg.dst, seg.dport, seg.src, seg.sport
        else:
            self.src, self.sport, self.dst, self.dport = seg.src, seg.sport, seg.dst, seg.dport
        self.initiator_known = bool(seg.flags & SYN)
        self.halves = (Half(), Half())
        self.consumer: StreamConsumer | None = None
        self.first_ts = self.last_ts = seg.ts
        self.tunnel: Tunnel | None = seg.tunnel
        self.closed = False

    @property
    def midstream(self) -> bool:
        return not (self.halves[0].synced and self.halves[1].synced)

    def key(self, direction: int = 0) -> tuple[bytes, int, bytes, int]:
        if direction == 0:
            return (self.src, self.sport, self.dst, self.dport)
        return (self.dst, self.dport, self.src, self.sport)


class Reassembler:
    """Segments of many connections in, per-connection ordered streams out."""

    def __init__(self, open_consumer: Callable[[Connection], StreamConsumer],
                 limits: Limits = Limits()) -> None:
        self.open_consumer = open_consumer
        self.limits = limits
        self.flows: dict[tuple[bytes, int, bytes, int], tuple[Connection, int]] = {}
        self.connections: dict[tuple[bytes, int, bytes, int], Connection] = {}
        self.buffered = 0  # out-of-order bytes held over all connections
        self.stats = ReassemblyStats()

    # -- input ------------------------------------------------------------------------
    def feed(self, seg: Segment) -> None:
        entry = self.flows.get((seg.src, seg.sport, seg.dst, seg.dport))
        flags = seg.flags
        if entry is not None and not flags & (SYN | FIN | RST):
            # The common case, kept short: the next bytes of an established stream,
            # in order, acknowledging everything the other side sent.
            conn, direction = entry
            half = conn.halves[direction]
            payload = seg.payload
            peer = conn.halves[1 - direction]
            peer_next = peer.next_seq
            if (seg.seq == half.next_seq and payload and not seg.missing and not half.pending
                    and half.fin_seq is None and (seg.ack == peer_next or peer_next is None or not flags & ACK)):
                conn.last_ts = seg.ts
                if conn.tunnel is None and seg.tunnel is not None:
                    conn.tunnel = seg.tunnel
                size = len(payload)
                half.offset += size
                half.next_seq = (seg.seq + size) & SEQ_MASK
                conn.consumer.on_data(direction, payload, seg.ts,  # type: ignore[union-attr]
                                      peer.offset if flags & ACK and peer_next is not None else -1)
                return
        if entry is None:
            if flags & RST or not (flags & SYN or len(seg.payload) or seg.missing):
                self.stats.ignored_segments += 1  # nothing to start a stream from
                return
            conn, direction = self._open(seg), 0
            if flags & SYN and flags & ACK:
                direction = 1  # the SYN-ACK came first: its receiver started the connection
        else:
            conn, direction = entry
            if flags & SYN and not flags & ACK and self._reused(conn, direction, seg):
                self.close(conn, "reused", seg.ts)
                conn, direction = self._open(seg), 0
        conn.last_ts = seg.ts
        if conn.tunnel is None and seg.tunnel is not None:
            conn.tunnel = seg.tunnel
        half = conn.halves[direction]
        seq = seg.seq
        if flags & SYN:
            if not half.synced:
                if half.next_seq is not None and (half.offset or half.pending):
                    pass  # joined midway, then a stray SYN: keep the stream we have
                else:
                    half.next_seq = (seq + 1) & SEQ_MASK
                    half.synced = True
            seq = (seq + 1) & SEQ_MASK  # data in a SYN (TCP Fast Open) follows it
        if half.next_seq is None:
            half.next_seq = seq  # joined an open connection: start where we are
        if flags & ACK and entry is not None:
            self._peer_acknowledged(conn, direction, seg.ack, seg.ts)
            if conn.closed:  # the acknowledgement ended the connection
                self.stats.ignored_segments += 1
                return
        payload = seg.payload
        if len(payload) or seg.missing:
            if half.ended:
                self.stats.duplicate_bytes += len(payload) + seg.missing  # after the FIN
            else:
                self._data(conn, direction, half, seq, payload, seg.missing, seg.ts,
                           self._ack_offset(conn, direction, seg))
        if flags & FIN and half.fin_seq is None:
            half.fin_seq = (seq + len(payload) + seg.missing) & SEQ_MASK
        if flags & RST:
            self.close(conn, "reset", seg.ts)
            return
        if half.fin_seq is not None and not half.ended and half.next_seq == half.fin_seq:
            self._end(conn, direction, seg.ts)

    def _open(self, seg: Segment) -> Connection:
        if len(self.connections) >= self.limits.max_flows:
            self._evict(seg.ts)
        reverse = bool(seg.flags & SYN and seg.flags & ACK)
        conn = Connection(seg, reverse)
        self.flows[conn.key(0)] = (conn, 0)
        self.flows[conn.key(1)] = (conn, 1)
        self.connections[conn.key(0)] = conn
        self.stats.flows_opened += 1
        conn.consumer = self.open_consumer(conn)
        return conn

    @staticmethod
    def _ack_offset(conn: Connection, direction: int, seg: Segment) -> int:
        """The segment's acknowledgement number as an offset in the peer's stream (-1: unknown)."""
        peer = conn.halves[1 - direction]
        if not seg.flags & ACK or peer.next_seq is None:
            return -1
        return max(-1, peer.offset + seq_diff(seg.ack, peer.next_seq))

    @staticmethod
    def _reused(conn: Connection, direction: int, seg: Segment) -> bool:
        """A new SYN on a tracked 4-tuple: a new connection, or a retransmitted SYN?"""
        half = conn.halves[direction]
        if not half.synced:
            return half.offset > 0 or bool(half.pending) or conn.halves[1 - direction].offset > 0
        return half.next_seq != (seg.seq + 1) & SEQ_MASK

    def _data(self, conn: Connection, direction: int, half: Half, seq: int, payload: bytes,
              missing: int, ts: float, ack: int) -> None:
        assert half.next_seq is not None
        offset = seq_diff(seq, half.next_seq)
        size = len(payload)
        if offset < 0:  # starts before what was delivered: keep only the new tail
            if -offset >= size + missing:
                self.stats.duplicate_bytes += size + missing
                return
            self.stats.duplicate_bytes += -offset
            if -offset >= size:
                missing -= -offset - size
                payload, size = payload[size:], 0
            else:
                payload, size = payload[-offset:], size + offset
            offset = 0
        if offset == 0:
            self._deliver(conn, direction, half, payload, missing, ts, ack)
            if half.pending:
                self._drain(conn, direction, half, ts)
            return
        # A hole before this segment: hold it until the hole is filled or given up.
        self.stats.out_of_order_segments += 1
        position = half.offset + offset
        if position in half.pending:
            old = half.pending[position][0]
            if len(old) >= size + missing:
                self.stats.duplicate_bytes += size
                return
            self._unbuffer(half, len(old))
        else:
            heapq.heappush(half.heap, position)
        data = bytes(payload) + bytes(missing) if missing else bytes(payload)
        if not half.pending:
            half.hole_since = ts
        half.pending[position] = (data, ack)
        half.pending_bytes += len(data)
        self.buffered += len(data)
        while half.pending and (half.pending_bytes > self.limits.flow_buffer
                                or self.buffered > self.limits.total_buffer):
            self._skip_hole(conn, direction, half, ts)

    def _deliver(self, conn: Connection, direction: int, half: Half, payload: bytes,
                 missing: int, ts: float, ack: int) -> None:
        assert half.next_seq is not None and conn.consumer is not None
        size = len(payload)
        if size:
            conn.consumer.on_data(direction, payload, ts, ack)
        if missing:
            self.stats.gaps += 1
            self.stats.gap_bytes += missing
            conn.consumer.on_gap(direction, missing, ts)
        half.offset += size + missing
        half.next_seq = (half.next_seq + size + missing) & SEQ_MASK

    def _drain(self, conn: Connection, direction: int, half: Half, ts: float) -> None:
        """Deliver buffered segments that the stream has reached."""
        heap, pending = half.heap, half.pending
        while heap and heap[0] <= half.offset:
            position = heapq.heappop(heap)
            data, ack = pending.pop(position)
            self._unbuffer(half, len(data))
            skip = half.offset - position
            if skip >= len(data):
                self.stats.duplicate_bytes += len(data)
                continue
            self.stats.duplicate_bytes += skip
            self._deliver(conn, direction, half, data[skip:], 0, ts, ack)
        if pending:
            half.hole_since = ts

    def _unbuffer(self, half: Half, size: int) -> None:
        half.pending_bytes -= size
        self.buffered -= size

    def _skip_hole(self, conn: Connection, direction: int, half: Half, ts: float,
                   upto: int | None = None) -> None:
        """Give up on the bytes before the first buffered segment (or before ``upto``)."""
        assert half.next_seq is not None and conn.consumer is not None
        target = half.heap[0] if half.heap else half.offset
        if upto is not None:
            target = min(target, upto) if half.heap else upto
        size = target - half.offset
        if size <= 0:
            self._drain(conn, direction, half, ts)
            return
        self.stats.gaps += 1
        self.stats.gap_bytes += size
        conn.consumer.on_gap(direction, size, ts)
        half.offset = target
        half.next_seq = (half.next_seq + size) & SEQ_MASK
        self._drain(conn, direction, half, ts)

    def _peer_acknowledged(self, conn: Connection, direction: int, ack: int, ts: float) -> None:
        """The other side received bytes up to ``ack``: any of them not seen here never will be."""
        peer = conn.halves[1 - direction]
        if peer.next_seq is None or peer.ended:
            return
        ahead = seq_diff(ack, peer.next_seq)
        if peer.fin_seq is not None and ack == (peer.fin_seq + 1) & SEQ_MASK:
            ahead -= 1  # the FIN takes one sequence number
        if 0 < ahead < 1 << 30:
            self._skip_hole(conn, 1 - direction, peer, ts, upto=peer.offset + ahead)
            if peer.fin_seq is not None and not peer.ended and peer.next_seq == peer.fin_seq:
                self._end(conn, 1 - direction, ts)

    def _end(self, conn: Connection, direction: int, ts: float) -> None:
        assert conn.consumer is not None
        conn.halves[direction].ended = True
        conn.consumer.on_end(direction, ts)
        if conn.halves[1 - direction].ended:
            self.close(conn, "fin", ts)

    # -- closing ----------------------------------------------------------------------
    def close(self, conn: Connection, reason: str, ts: float) -> None:
        """Deliver what is buffered (holes become gaps), then close the connection."""
        if conn.closed:
            return
        assert conn.consumer is not None
        for direction, half in enumerate(conn.halves):
            while half.pending:
                self._skip_hole(conn, direction, half, ts)
            if not half.ended and half.fin_seq is not None and half.next_seq == half.fin_seq:
                half.ended = True
                conn.consumer.on_end(direction, ts)
        conn.closed = True
        self.flows.pop(conn.key(0), None)
        self.flows.pop(conn.key(1), None)
        self.connections.pop(conn.key(0), None)
        self.stats.flows_closed[reason] = self.stats.flows_closed.get(reason, 0) + 1
        conn.consumer.on_close(reason, ts)

    def expire(self, now: float) -> None:
        """Housekeeping at capture time ``now``: close idle flows, give up old holes."""
        idle = now - self.limits.idle_timeout
        stale = now - self.limits.hole_timeout
        for conn in list(self.connections.values()):
            if conn.last_ts < idle:
                self.close(conn, "idle", now)
                continue
            for direction, half in enumerate(conn.halves):
                while half.pending and half.hole_since < stale:
                    self._skip_hole(conn, direction, half, now)
                if half.fin_seq is not None and not half.ended and half.next_seq == half.fin_seq:
                    self._end(conn, direction, now)
                    if conn.closed:
                        break

    def _evict(self, now: float) -> None:
        oldest = min(self.connections.values(), key=lambda c: c.last_ts)
        self.close(oldest, "evicted", now)

    def close_all(self, now: float, reason: str = "shutdown") -> None:
        for conn in list(self.connections.values()):
            self.close(conn, reason, now)
