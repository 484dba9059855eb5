"""Read a ``BPF_MAP_TYPE_PERF_EVENT_ARRAY``: one perf ring per CPU.

``bpf_perf_event_output`` is the helper that can copy packet bytes straight
from an XDP or tc context (``BPF_F_CTXLEN_MASK``), which a BPF ring buffer
cannot; capture uses it. Each CPU gets a ``PERF_COUNT_SW_BPF_OUTPUT`` event
whose ring is memory-mapped here. Overflows are counted by the BPF side in a
``*_lost`` per-CPU counter (``NETBPF_PERF_EVENTS()`` in ``netbpf/common.h``),
exact at any moment; without one, the kernel's own ``PERF_RECORD_LOST``
records are added up, which arrive only once the ring has room again.

Wake-ups come after ``watermark`` bytes rather than per sample, so a flood
costs one wake-up per batch; ``poll(timeout)`` also collects what sits below
the watermark when the timeout expires.
"""
from __future__ import annotations

import ctypes
import fcntl
import mmap
import os
import struct
from ctypes import Structure, c_int32, c_uint16, c_uint32, c_uint64

from ..errors import NetbpfError, from_errno
from ..libc import libc
from ._mmap import Mapping
from ._wait import Waiter
from .maps import Map

PERF_EVENT_ARRAY = 4
PERF_TYPE_SOFTWARE = 1
PERF_COUNT_SW_BPF_OUTPUT = 10
PERF_SAMPLE_RAW = 1 << 10
PERF_FLAG_FD_CLOEXEC = 1 << 3
PERF_RECORD_LOST = 2
PERF_RECORD_SAMPLE = 9
PERF_EVENT_IOC_ENABLE = 0x2400
PERF_EVENT_IOC_DISABLE = 0x2401
ATTR_FLAG_WATERMARK = 1 << 14
SYS_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241}.get(os.uname().machine, 298)

_header = struct.Struct("<IHH")
_u32 = struct.Struct("<I")
_lost = struct.Struct("<QQ")


class PerfEventAttr(Structure):
    _fields_ = [
        ("type", c_uint32), ("size", c_uint32), ("config", c_uint64),
        ("sample_period", c_uint64), ("sample_type", c_uint64), ("read_format", c_uint64),
        ("flags", c_uint64), ("wakeup", c_uint32), ("bp_type", c_uint32),
        ("config1", c_uint64), ("config2", c_uint64), ("branch_sample_type", c_uint64),
        ("sample_regs_user", c_uint64), ("sample_stack_user", c_uint32), ("clockid", c_int32),
        ("sample_regs_intr", c_uint64), ("aux_watermark", c_uint32),
        ("sample_max_stack", c_uint16), ("_reserved2", c_uint16),
    ]


def online_cpus() -> list[int]:
    with open("/sys/devices/system/cpu/online") as f:
        spec = f.read().strip()
    cpus: list[int] = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def _perf_event_open(cpu: int, watermark: int) -> int:
    attr = PerfEventAttr(type=PERF_TYPE_SOFTWARE, size=ctypes.sizeof(PerfEventAttr),
                         config=PERF_COUNT_SW_BPF_OUTPUT, sample_period=1,
                         sample_type=PERF_SAMPLE_RAW, flags=ATTR_FLAG_WATERMARK, wakeup=watermark)
    fd = libc.syscall(SYS_PERF_EVENT_OPEN, ctypes.byref(attr), -1, cpu, -1, PERF_FLAG_FD_CLOEXEC)
    if fd < 0:
        raise from_errno(f"perf_event_open on CPU {cpu}", ctypes.get_errno())
    return int(fd)


class _CpuRing:
    def __init__(self, cpu: int, fd: int, pages: int) -> None:
        self.cpu, self.fd = cpu, fd
        page = mmap.PAGESIZE
        self.size = pages * page
        self.mask = self.size - 1
        self.mem = Mapping(fd, page + self.size, writable=True)
        self.base = page
        # struct perf_event_mmap_page: data_head at 1024, data_tail at 1032;
        # whole-word views, never byte-wise (a torn head reads garbage).
        self.head = self.mem.u64(1024)
        self.tail = self.mem.u64(1032)


class PerfBuffer:
    """Per-CPU perf rings behind a perf event array map (loaded)."""

    def __init__(self, events: Map, lost: Map | None = None, pages_per_cpu: int = 256,
                 watermark: int | None = None) -> None:
        if events.type != PERF_EVENT_ARRAY:
            raise NetbpfError(f"map {events.name} is not a perf event array")
        if pages_per_cpu & (pages_per_cpu - 1):
            raise ValueError("pages_per_cpu must be a power of two")
        size = pages_per_cpu * mmap.PAGESIZE
        watermark = watermark if watermark is not None else size // 4
        self.map = events
        self.lost_map = lost
        self._rings: dict[int, _CpuRing] = {}
        self._waiter = Waiter()
        self.lost_records = 0  # from PERF_RECORD_LOST
        self.records = 0
        try:
            for cpu in online_cpus():
                if cpu >= events.max_entries:
                    break
                fd = _perf_event_open(cpu, watermark)
                ring = _CpuRing(cpu, fd, pages_per_cpu)
                self._rings[fd] = ring
                events.update(cpu, fd)
                self._waiter.watch(fd)
                fcntl.ioctl(fd, PERF_EVENT_IOC_ENABLE, 0)
        except BaseException:
            self.release()
            raise

    @property
    def lost(self) -> int:
        """Samples that did not fit."""
        if self.lost_map is not None:
            return self.lost_map.sum_u64(0)
        return self.lost_records

    def read(self) -> list[bytes]:
        """Every sample available now, from every CPU (raw bytes, padding included)."""
        out: list[bytes] = []
        for ring in self._rings.values():
            self._drain(ring, out)
        return out

    def _drain(self, ring: _CpuRing, out: list[bytes]) -> None:
        head = ring.head.value
        tail = ring.tail.value
        if head == tail:
            return
        # Everything below data_head is complete (the kernel publishes the head
        # after the record), so one copy of the span is safe.
        size, base, mask, mem = ring.size, ring.base, ring.mask, ring.mem
        start = tail & mask
        if start + (head - tail) <= size:
            span = mem.read(base + start, base + start + (head - tail))
        else:  # the span wraps: join its two parts
            first = size - start
            span = mem.read(base + start, base + size) + mem.read(base, base + (head - tail) - first)
        pos, end = 0, len(span)
        append = out.append
        unpack = _header.unpack_from
        samples = 0
        while pos + 8 <= end:
            rtype, _misc, rsize = unpack(span, pos)
            if rsize == 0 or pos + rsize > end:
                break
            if rtype == PERF_RECORD_SAMPLE:
                raw_size = _u32.unpack_from(span, pos + 8)[0]
                append(span[pos + 12:pos + 12 + raw_size])
                samples += 1
            elif rtype == PERF_RECORD_LOST:
                self.lost_records += _lost.unpack_from(span, pos + 8)[1]
            pos += rsize
        self.records += samples
        ring.tail.value = tail + pos

    def poll(self, timeout: float | None = None) -> list[bytes]:
        return self._waiter.read_or_wait(self.read, timeout)

    def close(self) -> None:
        """Wake a thread blocked in ``poll()`` and make it return."""
        self._waiter.close()

    def release(self) -> None:
        self.close()
        for cpu_fd, ring in list(self._rings.items()):
            try:
                self.map.delete(ring.cpu)
            except NetbpfError:
                pass
            ring.mem.close()
            os.close(cpu_fd)
        self._rings.clear()
        self._waiter.release()

    def __enter__(self) -> PerfBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
