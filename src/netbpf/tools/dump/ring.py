"""The capture ring: per-CPU blocks of finished pcap records, shared with the kernel.

``dump.bpf.c`` writes each kept packet as a complete pcap record (or pcapng
Enhanced Packet Block) into the block its CPU is filling, then adds the
record's length to the block's ``len`` with an atomic add: everything below
``len`` is whole. When a block is full the program moves to the next one of
its CPU, provided Python has released it (``consumed``), else the packet is
counted as lost. This is how a TPACKET_V3 socket hands blocks to tcpdump;
here the records are already in the output format, so writing a capture file
is one ``write()`` per block span, without touching single packets.

Wake-ups come through a small BPF ring buffer: when a block is filled, or,
when Python asked for it (``waiting``), at the next record.
"""
from __future__ import annotations

import ctypes
import mmap
import time
from collections.abc import Callable
from ctypes import Structure, c_uint32, c_uint64

from ...bpf._mmap import Mapping
from ...bpf.maps import Map
from ...bpf.ringbuf import RingBuffer

BLOCK_HEADER = 64
PAGE = mmap.PAGESIZE


class DumpRing(Structure):
    _c_name_ = "dump_ring"
    _fields_ = [
        ("produced", c_uint64), ("_pad0", c_uint64 * 7),
        ("consumed", c_uint64), ("clock_offset", c_uint64), ("waiting", c_uint32),
        ("_pad1", c_uint32), ("_pad2", c_uint64 * 5),
    ]


class DumpBlock(Structure):
    _c_name_ = "dump_block"
    _fields_ = [("len", c_uint32), ("count", c_uint32), ("seq", c_uint64), ("_pad", c_uint64 * 6)]


def _round_up(n: int, to: int) -> int:
    return (n + to - 1) // to * to


class Geometry:
    """Block size and count for a snap length and a per-CPU buffer size.

    A record may start anywhere up to ``fill_limit`` and is at most
    ``record_max`` long, so a block is ``fill_limit + record_max`` plus its
    header: the verifier checks exactly that sum. Blocks are at least four
    records of the largest size, so at least three quarters of each is used.
    """

    def __init__(self, snap: int, buffer_bytes: int, cpus: int, options: int = 0) -> None:
        self.snap = snap
        # pcapng EPB: 28 header + 3 padding + 4 trailer, rounded up; `options`: the owner (attribution)
        self.record_max = snap + 64 + options
        self.block_size = _round_up(max(256 << 10, 4 * (self.record_max + BLOCK_HEADER)), PAGE)
        self.fill_limit = self.block_size - BLOCK_HEADER - self.record_max
        per_cpu = max(2, -(-buffer_bytes // self.block_size))
        self.blocks_per_cpu = 1 << (per_cpu - 1).bit_length()  # a power of two
        self.cpus = cpus

    @property
    def total_bytes(self) -> int:
        return self.block_size * self.blocks_per_cpu * self.cpus


Sink = Callable[[memoryview], None]


class BlockRing:
    """Python's side of the ring: hands out spans of whole records, in order per CPU."""

    def __init__(self, rings: Map, blocks: Map, wakeups: Map, geometry: Geometry) -> None:
        self.geometry = g = geometry
        self.cpus = g.cpus
        self._ctl = Mapping(rings.require_fd(), _round_up(ctypes.sizeof(DumpRing) * g.cpus, PAGE),
                            writable=True)
        self._data = Mapping(blocks.require_fd(), _round_up(g.total_bytes, PAGE))
        self._view = memoryview(self._data.bytes).cast("B")
        self._ring = [DumpRing.from_address(self._ctl.address + i * ctypes.sizeof(DumpRing))
                      for i in range(g.cpus)]
        self._cons = [0] * g.cpus
        self._pos = [0] * g.cpus
        self._wakeups = RingBuffer(wakeups)
        self.bytes = 0
        self.set_clock()

    def set_clock(self) -> None:
        """Tell the kernel side how to turn CLOCK_MONOTONIC into wall-clock time."""
        before = time.monotonic_ns()
        wall = time.time_ns()
        after = time.monotonic_ns()
        offset = wall - (before + after) // 2
        for ring in self._ring:
            ring.clock_offset = offset

    def _block_len(self, cpu: int, seq: int) -> tuple[int, int]:
        g = self.geometry
        base = (cpu * g.blocks_per_cpu + (seq & (g.blocks_per_cpu - 1))) * g.block_size
        return base + BLOCK_HEADER, c_uint32.from_address(self._data.address + base).value

    def drain(self, sink: Sink) -> int:
        """Give every whole record committed so far to ``sink`` (spans); return bytes."""
        total = 0
        view = self._view
        for cpu in range(self.cpus):
            ring = self._ring[cpu]
            cons, pos = self._cons[cpu], self._pos[cpu]
            while True:
                produced = ring.produced  # read before the length: see below
                start, length = self._block_len(cpu, cons)
                if length > pos:
                    sink(view[start + pos:start + length])
                    total += length - pos
                    pos = length
                if produced > cons:
                    # The block was already full when its length was read, so
                    # that length was final: release it and go on to the next.
                    cons += 1
                    pos = 0
                    ring.consumed = cons
                    continue
                break
            self._cons[cpu], self._pos[cpu] = cons, pos
        self.bytes += total
        return total

    def pending(self) -> bool:
        """Whether a record is there that :meth:`drain` has not handed out yet."""
        for cpu, ring in enumerate(self._ring):
            cons = self._cons[cpu]
            if ring.produced != cons or self._block_len(cpu, cons)[1] != self._pos[cpu]:
                return True
        return False

    def wait(self, timeout: float, immediate: bool) -> None:
        """Sleep until a block fills, or (``immediate``) the next record, or ``timeout``."""
        if immediate:
            for ring in self._ring:
                ring.waiting = 1
            if self.pending():  # it came before the flag was seen: no wake-up for it
                return
        self._wakeups.poll(timeout)  # the notifications carry nothing

    def interrupt(self) -> None:
        self._wakeups.close()

    def release(self) -> None:
        self._view.release()
        self._wakeups.release()
        self._data.close()
        self._ctl.close()

