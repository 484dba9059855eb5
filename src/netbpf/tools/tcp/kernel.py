"""The kernel side of ``netbpf tcp``: tcp.bpf.o configured, loaded, attached and read.

Python side of ``tcp.h`` (mirrors checked against BTF by tests/unit/test_layouts.py).
"""
from __future__ import annotations

import ctypes
import enum
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from ...bpf import BpfObject, object_path
from ...bpf.attach import trace
from ...bpf.attach.base import Attachment
from ...bpf.ringbuf import RingBuffer
from ...errors import NotSupported
from ...run import Run
from ...tracepoints.scope import IPNetwork, scope_rodata

# At most this much of the ring per read: a reader that fell behind takes it in steps.
READ_BYTES = 1 << 20

BPF_OBJECT = "tcp.bpf.o"


class Kind(enum.IntEnum):
    RETRANS = 1
    SYNACK_RETRANS = 2
    RESET_SENT = 3
    RESET_RECEIVED = 4
    STATE = 5
    CLOSE = 6


class Total(enum.IntEnum):
    RETRANS_SEGS = 0
    RETRANS_FAILED = 1
    SYNACK_RETRANS = 2
    RESETS_SENT = 3
    RESETS_RECEIVED = 4
    STATE_CHANGES = 5
    CLOSED = 6
    FILTERED = 7
    SUMMARY_FULL = 8


class TcpEvent(ctypes.Structure):
    _c_name_ = "tcp_event"
    _fields_ = [
        ("ts_ns", ctypes.c_uint64), ("skaddr", ctypes.c_uint64), ("duration_ns", ctypes.c_uint64),
        ("rx_bytes", ctypes.c_uint64), ("tx_bytes", ctypes.c_uint64),
        ("netns", ctypes.c_uint32), ("pid", ctypes.c_uint32),
        ("kind", ctypes.c_uint8), ("family", ctypes.c_uint8),
        ("oldstate", ctypes.c_uint8), ("newstate", ctypes.c_uint8),
        ("lport", ctypes.c_uint16), ("rport", ctypes.c_uint16),
        ("reason", ctypes.c_uint32), ("segs", ctypes.c_uint32), ("err", ctypes.c_int32),
        ("total_retrans", ctypes.c_uint32), ("srtt_us", ctypes.c_uint32),
        ("laddr", ctypes.c_uint8 * 16), ("raddr", ctypes.c_uint8 * 16), ("comm", ctypes.c_char * 16),
        ("cgroup_id", ctypes.c_uint64),
    ]


class TcpKey(ctypes.Structure):
    _c_name_ = "tcp_key"
    _fields_ = [
        ("netns", ctypes.c_uint32), ("family", ctypes.c_uint8), ("_pad", ctypes.c_uint8),
        ("lport", ctypes.c_uint16), ("rport", ctypes.c_uint16), ("_pad2", ctypes.c_uint16),
        ("laddr", ctypes.c_uint8 * 16), ("raddr", ctypes.c_uint8 * 16),
    ]


class TcpCounts(ctypes.Structure):
    _c_name_ = "tcp_counts"
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "retrans_segs", "retrans_failed", "resets_sent", "resets_received", "closed", "synack_retrans")]


SHARED_STRUCTS = (TcpEvent, TcpKey, TcpCounts)

_EVENT = struct.Struct("<QQQQQIIBBBBHHIIiII16s16s16s4xQ")
_KEY = struct.Struct("<IBBHHH16s16s")
_COUNTS = struct.Struct("<6Q")
assert _EVENT.size == ctypes.sizeof(TcpEvent) and _KEY.size == ctypes.sizeof(TcpKey)


@dataclass(frozen=True, slots=True)
class Tcp:
    """One TCP event: local and remote endpoints are the socket's."""

    kind: Kind
    ts_ns: int
    skaddr: int
    netns: int
    family: int
    laddr: bytes
    lport: int
    raddr: bytes
    rport: int
    oldstate: int
    newstate: int
    pid: int
    comm: str
    reason: int = 0
    segs: int = 0
    err: int = 0
    total_retrans: int = 0
    srtt_us: int = 0
    duration_ns: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0
    cgroup_id: int = 0  # with pid (STATE, CLOSE): that process's cgroup v2


def decode(raw: bytes) -> Tcp:
    (ts, skaddr, duration, rx, tx, netns, pid, kind, family, old, new, lport, rport, reason, segs,
     err, total_retrans, srtt, laddr, raddr, comm, cgroup_id) = _EVENT.unpack_from(raw)
    alen = 4 if family == 4 else 16
    return Tcp(Kind(kind), ts, skaddr, netns, family, laddr[:alen], lport, raddr[:alen], rport, old, new,
               pid, comm.split(b"\0", 1)[0].decode(errors="replace"), reason, segs, err, total_retrans,
               srtt, duration, rx, tx, cgroup_id)


@dataclass(frozen=True, slots=True)
class FlowKey:
    netns: int
    family: int
    laddr: bytes  # empty when summarised by remote endpoint
    lport: int
    raddr: bytes
    rport: int


@dataclass(frozen=True, slots=True)
class FlowCounts:
    retrans_segs: int = 0
    retrans_failed: int = 0
    resets_sent: int = 0
    resets_received: int = 0
    closed: int = 0
    synack_retrans: int = 0


# Which kinds each --events name streams, and which programs they need.
EVENT_KINDS = {
    "retrans": (Kind.RETRANS, Kind.SYNACK_RETRANS),
    "reset": (Kind.RESET_SENT, Kind.RESET_RECEIVED),
    "state": (Kind.STATE,),
    "life": (Kind.CLOSE,),
}
PROGRAMS = {
    Kind.RETRANS: "netbpf_tcp_rtx", Kind.SYNACK_RETRANS: "netbpf_tcp_synr",
    Kind.RESET_SENT: "netbpf_tcp_rsts", Kind.RESET_RECEIVED: "netbpf_tcp_rstr",
    Kind.STATE: "netbpf_tcp_stat", Kind.CLOSE: "netbpf_tcp_stat",
}


@dataclass(frozen=True, slots=True)
class TcpOptions:
    kinds: frozenset[Kind] = frozenset(Kind)  # what to stream
    stream: bool = True
    summary: bool = False
    by_remote: bool = False
    netns: int = 0
    network: IPNetwork | None = None
    port: int | None = None
    count_all: bool = False  # attach every program so that every total counts (--metrics)
    ring_bytes: int = 8 << 20


class TcpTracer:
    def __init__(self, options: TcpOptions) -> None:
        self.options = options
        self.obj: BpfObject | None = None
        self.links: list[Attachment] = []
        self.ring: RingBuffer | None = None
        self._run = Run()

    def programs(self) -> set[str]:
        """Programs to attach: those of the streamed kinds; with --summary, the counting ones."""
        kinds: Iterable[Kind] = self.options.kinds if self.options.stream else ()
        names = {PROGRAMS[k] for k in kinds}
        if self.options.count_all:
            names |= set(PROGRAMS.values())
        if self.options.summary:
            names |= {PROGRAMS[k] for k in (Kind.RETRANS, Kind.SYNACK_RETRANS, Kind.RESET_SENT,
                                            Kind.RESET_RECEIVED, Kind.CLOSE)}
        return names

    def start(self) -> TcpTracer:
        from ...bpf.btf import KIND_TYPEDEF, vmlinux

        opts = self.options
        wanted = self.programs()
        with self._run.starting():
            obj = self.obj = self._run.open(object_path(__file__, BPF_OBJECT))
            for name, prog in obj.programs.items():
                prog.set_autoload(name in wanted)
                if name in wanted:
                    tracepoint = prog.section.split("/", 1)[1]
                    try:
                        vmlinux().find(f"btf_trace_{tracepoint}", KIND_TYPEDEF)
                    except KeyError:
                        raise NotSupported(f"tp_btf/{tracepoint}", "this kernel has no such tracepoint") from None
            obj.set_rodata(
                stream_kinds=sum(1 << k for k in opts.kinds) if opts.stream else 0,
                summarise=opts.summary, by_remote=opts.by_remote,
                **scope_rodata(opts.netns, opts.network, opts.port),
            )
            obj.set_map_size("events", opts.ring_bytes if opts.stream else 4096)
            obj.set_map_size("summary", 16384 if opts.summary else 1)
            obj.load()
            for name in sorted(wanted):
                self.links.append(self._run.attach(trace.attach_tp_btf(obj.program(name))))
            self.ring = self._run.reader(RingBuffer(obj.map("events"), obj.map("events_lost")))
        return self

    def poll(self, timeout: float | None) -> list[bytes]:
        assert self.ring is not None
        return self.ring.poll(timeout, READ_BYTES)

    def read(self) -> list[bytes]:
        return self.ring.read(READ_BYTES) if self.ring is not None else []

    def wake(self) -> None:
        """Unblock a poll() (the tracer stays attached)."""
        if self.ring is not None:
            self.ring.close()

    def detach(self) -> None:
        """Stop producing events (the maps and the ring stay readable)."""
        for link in self.links:
            link.close()
        self.links = []

    @property
    def lost(self) -> int:
        return self.ring.lost if self.ring is not None else 0

    def total(self, which: Total) -> int:
        assert self.obj is not None
        return self.obj.map("totals").sum_u64(int(which))

    def summary(self) -> list[tuple[FlowKey, FlowCounts]]:
        assert self.obj is not None
        m = self.obj.map("summary")
        step = (_COUNTS.size + 7) & ~7
        rows = []
        for key, value in m.lookup_batch():
            netns, family, _p, lport, rport, _p2, laddr, raddr = _KEY.unpack(key)
            sums = [0] * 6
            for off in range(0, len(value), step):
                for i, v in enumerate(_COUNTS.unpack_from(value, off)):
                    sums[i] += v
            alen = 4 if family == 4 else 16
            local = laddr[:alen] if any(laddr) or lport else b""
            rows.append((FlowKey(netns, family, local, lport, raddr[:alen], rport), FlowCounts(*sums)))
        return rows

    def close(self) -> None:
        self._run.close()  # the ring, the links, then the object
        self.links = []
        self.ring = self.obj = None
