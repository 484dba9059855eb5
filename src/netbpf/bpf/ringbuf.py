"""Read a ``BPF_MAP_TYPE_RINGBUF`` from Python without a callback per record.

The ring is memory-mapped as the kernel lays it out: a consumer page
(read-write), a producer page, then the data area mapped twice in a row, so a
record that wraps around the end is still contiguous. ``poll()`` waits on the
map fd with epoll, then takes everything committed since the last read as
one batch, with two bulk copies rather than a call per record; the consumer
position is advanced once per batch.
Decoding the records is the caller's business.

A full ring cannot be seen from here (the producer just fails to reserve):
BPF programs count those failures in a per-CPU ``*_lost`` counter, declared
by ``NETBPF_RINGBUF()`` in ``netbpf/common.h``, and :attr:`RingBuffer.lost`
reads it. Nothing is dropped silently.
"""
from __future__ import annotations

import mmap
import struct

from ..errors import NetbpfError
from ._mmap import Mapping
from ._wait import Waiter
from .maps import Map

BUSY = 1 << 31
DISCARD = 1 << 30
HEADER = 8
RINGBUF = 27

_u32 = struct.Struct("<I")



class RingBuffer:
    """A reader for one ring buffer map (loaded), with its lost counter."""

    def __init__(self, ring: Map, lost: Map | None = None) -> None:
        if ring.type != RINGBUF:
            raise NetbpfError(f"map {ring.name} is not a ring buffer")
        self.ring, self.lost_map = ring, lost
        self.size = ring.max_entries
        self.mask = self.size - 1
        page = mmap.PAGESIZE
        fd = ring.require_fd()
        self._consumer = Mapping(fd, page, offset=0, writable=True)
        self._producer = Mapping(fd, page + 2 * self.size, offset=page)
        self._data_start = page
        # Whole-word views: a torn read of producer_pos would run the reader
        # into stale records of the previous lap.
        self._cons_pos = self._consumer.u64(0)
        self._prod_pos = self._producer.u64(0)
        self._waiter = Waiter()
        self._waiter.watch(fd)
        self.records = 0
        self.bytes = 0

    @property
    def lost(self) -> int:
        """Records the BPF side could not reserve because the ring was full."""
        return self.lost_map.sum_u64(0) if self.lost_map is not None else 0

    def pending(self) -> int:
        """Bytes committed or reserved but not yet consumed."""
        return self._prod_pos.value - self._cons_pos.value

    def read(self, max_bytes: int | None = None) -> list[bytes]:
        """All committed records available now, without waiting; with ``max_bytes``, the
        first records only, up to about that many bytes (a full ring read at once costs a
        copy of all of it, and a list as long)."""
        cons = self._cons_pos.value
        prod = self._prod_pos.value
        if cons == prod:
            return []
        if max_bytes is not None and prod - cons > max_bytes:
            prod = cons + max_bytes  # records are parsed up to here; one may straddle it
        start = self._data_start + (cons & self.mask)
        end = start + (prod - cons)  # contiguous: the data area is mapped twice
        # Two copies of the span. Headers are read from the first; records are
        # taken from the second, made after the first completed: a record whose
        # header was already committed in the first copy is whole in the second,
        # however the CPU ordered the loads within one memcpy.
        headers = self._producer.read(start, end)
        records = self._producer.read(start, end)
        out: list[bytes] = []
        append = out.append
        unpack = _u32.unpack_from
        pos, size = 0, len(headers)
        while pos + HEADER <= size:
            header = unpack(headers, pos)[0]
            if header & BUSY:
                break  # reserved, not yet committed: later records must wait
            length = header & ~(BUSY | DISCARD)
            if pos + HEADER + length > size:
                break  # cut by max_bytes: the next read() takes it whole
            if not header & DISCARD:
                append(records[pos + HEADER:pos + HEADER + length])
            pos += (length + HEADER + 7) & ~7
        if pos:
            self._cons_pos.value = cons + pos
            self.records += len(out)
            self.bytes += pos
        return out

    def poll(self, timeout: float | None = None, max_bytes: int | None = None) -> list[bytes]:
        """Wait up to ``timeout`` seconds (None: forever) for records, then read them."""
        return self._waiter.read_or_wait(lambda: self.read(max_bytes), timeout)

    def close(self) -> None:
        """Stop: wakes a thread blocked in ``poll()``; then releases the mappings."""
        self._waiter.close()

    def release(self) -> None:
        self.close()
        self._waiter.release()
        self._consumer.close()
        self._producer.close()

    def __enter__(self) -> RingBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
