"""The kernel side of ``netbpf drops``: configure, load, attach, read.

    tracer = DropTracer(DropOptions(filter=DropFilter(netns=...), summary=True))
    tracer.start()                 # loads drops.bpf.o, attaches to skb:kfree_skb
    for raw in tracer.poll(0.5):   # streamed events (bytes)
        drop = decode(raw)
    tracer.summary()               # in-kernel counts by (reason, location[, flow])
    tracer.close()                 # detaches

Python side of ``drops.h``: the ctypes mirrors are checked against the
object's BTF by tests/unit/test_layouts.py.
"""
from __future__ import annotations

import ctypes
import ipaddress
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ...bpf import BpfObject, object_path
from ...bpf.attach import trace
from ...bpf.attach.base import Attachment
from ...bpf.fs import ensure_tracefs
from ...bpf.ringbuf import RingBuffer
from ...errors import NetbpfError, NotSupported
from ...run import Run
from ...tracepoints.scope import scope_rodata
from . import reasons as _reasons

# At most this much of the ring per read: a reader that fell behind takes it in steps.
READ_BYTES = 1 << 20

BPF_OBJECT = "drops.bpf.o"
MAX_STACK = 32
MAX_REASON = 512
HOOK_TP_BTF, HOOK_TRACEPOINT = 1, 2
STAT_SEEN, STAT_FILTERED, STAT_SUMMARY_FULL, STAT_STACK_LOST = range(4)


class DropEvent(ctypes.Structure):
    _c_name_ = "drop_event"
    _fields_ = [
        ("ts_ns", ctypes.c_uint64), ("location", ctypes.c_uint64),
        ("reason", ctypes.c_uint32), ("netns", ctypes.c_uint32),
        ("ifindex", ctypes.c_uint32), ("len", ctypes.c_uint32),
        ("eth_proto", ctypes.c_uint16), ("family", ctypes.c_uint8), ("l4_proto", ctypes.c_uint8),
        ("sport", ctypes.c_uint16), ("dport", ctypes.c_uint16),
        ("tcp_flags", ctypes.c_uint8), ("hook", ctypes.c_uint8), ("stack_bytes", ctypes.c_uint16),
        ("ip_len", ctypes.c_uint32),
        ("saddr", ctypes.c_uint8 * 16), ("daddr", ctypes.c_uint8 * 16),
        ("sk_cookie", ctypes.c_uint64), ("sk_side", ctypes.c_uint32), ("_pad", ctypes.c_uint32),
    ]


class DropWhere(ctypes.Structure):
    _c_name_ = "drop_where"
    _fields_ = [
        ("location", ctypes.c_uint64), ("reason", ctypes.c_uint32), ("netns", ctypes.c_uint32),
        ("ifindex", ctypes.c_uint32), ("stack_id", ctypes.c_int32),
    ]


class DropKey(ctypes.Structure):
    _c_name_ = "drop_key"
    _fields_ = [
        ("where", DropWhere),
        ("family", ctypes.c_uint8), ("l4_proto", ctypes.c_uint8),
        ("sport", ctypes.c_uint16), ("dport", ctypes.c_uint16), ("_pad", ctypes.c_uint16),
        ("saddr", ctypes.c_uint8 * 16), ("daddr", ctypes.c_uint8 * 16),
    ]


class DropCount(ctypes.Structure):
    _c_name_ = "drop_count"
    _fields_ = [("packets", ctypes.c_uint64), ("bytes", ctypes.c_uint64)]


class DropSlot(ctypes.Structure):
    _c_name_ = "drop_slot"
    _fields_ = [("key", DropKey), ("count", DropCount)]


SHARED_STRUCTS = (DropEvent, DropWhere, DropKey, DropCount, DropSlot)

# The same layouts as struct formats, for decoding a flood without ctypes objects.
_EVENT = struct.Struct("<QQIIIIHBBHHBBHI16s16sQI4x")
SK_NONE, SK_RX, SK_SKB = 0, 1, 2  # enum drop_sk_side
_KEY = struct.Struct("<QIIIiBBHHH16s16s")
assert _EVENT.size == ctypes.sizeof(DropEvent) and _KEY.size == ctypes.sizeof(DropKey)


@dataclass(frozen=True, slots=True)
class Drop:
    """One dropped packet. Addresses are bytes (4 or 16), empty without an IP header."""

    ts_ns: int
    location: int
    reason: int
    netns: int
    ifindex: int
    length: int  # skb->len
    ip_len: int  # from the IP header; 0 without one
    eth_proto: int
    family: int
    l4_proto: int
    sport: int
    dport: int
    tcp_flags: int
    saddr: bytes
    daddr: bytes
    stack: tuple[int, ...] = ()
    sk_cookie: int = 0  # the packet's socket (sk_side says which): its owner, with --process
    sk_side: int = 0


def decode(raw: bytes) -> Drop:
    (ts, loc, reason, netns, ifindex, length, eth, family, l4, sport, dport, flags, _hook,
     stack_bytes, ip_len, saddr, daddr, sk_cookie, sk_side) = _EVENT.unpack_from(raw)
    alen = 4 if family == 4 else 16 if family == 6 else 0
    stack: tuple[int, ...] = ()
    if stack_bytes:
        n = min(stack_bytes, len(raw) - _EVENT.size) // 8
        stack = struct.unpack_from(f"<{n}Q", raw, _EVENT.size)
    return Drop(ts, loc, reason, netns, ifindex, length, ip_len, eth, family, l4, sport, dport, flags,
                saddr[:alen], daddr[:alen], stack, sk_cookie, sk_side)


@dataclass(frozen=True, slots=True)
class SummaryKey:
    location: int
    reason: int
    netns: int
    ifindex: int
    stack_id: int
    family: int
    l4_proto: int
    sport: int
    dport: int
    saddr: bytes
    daddr: bytes


def decode_key(raw: bytes) -> SummaryKey:
    """A key of `flow_summary`, or of `summary` (its first bytes: no flow)."""
    raw = raw.ljust(_KEY.size, b"\0")
    (loc, reason, netns, ifindex, stack_id, family, l4, sport, dport, _pad,
     saddr, daddr) = _KEY.unpack_from(raw)
    alen = 4 if family == 4 else 16 if family == 6 else 0
    return SummaryKey(loc, reason, netns, ifindex, stack_id, family, l4, sport, dport,
                      saddr[:alen], daddr[:alen])


@dataclass(frozen=True, slots=True)
class DropFilter:
    """Filters applied in the kernel, before any event or count."""

    netns: int = 0  # namespace inode; 0: every namespace
    ifindex: int = 0  # with netns: an interface of that namespace
    reasons: tuple[int, ...] = ()
    protocol: int | None = None  # IPPROTO_*
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None  # src or dst in it
    port: int | None = None  # src or dst port

    def rodata(self) -> dict[str, object]:
        values = scope_rodata(self.netns, self.network, self.port)
        values["filter_ifindex"] = self.ifindex
        if self.reasons:
            mask = [0] * (MAX_REASON // 64)
            for r in self.reasons:
                if not 0 <= r < MAX_REASON:
                    raise NotSupported(f"filtering on drop reason {r}", f"only values below {MAX_REASON}")
                mask[r // 64] |= 1 << (r % 64)
            values["filter_reasons"] = 1
            values["reason_mask"] = struct.pack(f"<{len(mask)}Q", *mask)
        if self.protocol is not None:
            values.update(filter_proto=1, proto_value=self.protocol)
        return values


@dataclass(frozen=True, slots=True)
class DropOptions:
    filter: DropFilter = field(default_factory=DropFilter)
    stream: bool = True  # events through the ring buffer
    summary: bool = False  # counts in the kernel
    summary_flows: bool = False  # ... keyed by flow too
    stack: bool = False
    hook: str = "auto"  # auto | tp_btf | tracepoint
    ring_bytes: int = 32 << 20
    summary_entries: int = 16384


def tracepoint_format() -> str:
    path = Path(ensure_tracefs()) / "events" / "skb" / "kfree_skb" / "format"
    try:
        return path.read_text()
    except FileNotFoundError:
        raise NotSupported("tracepoint skb:kfree_skb", "not in this kernel's tracefs") from None


def has_tp_btf() -> bool:
    """tp_btf/kfree_skb needs kernel BTF describing the tracepoint (btf_trace_kfree_skb)."""
    from ...bpf.btf import KIND_TYPEDEF, vmlinux

    try:
        vmlinux().find("btf_trace_kfree_skb", KIND_TYPEDEF)
        return True
    except (KeyError, NotSupported):
        return False


class DropTracer:
    """drops.bpf.o loaded and attached to skb:kfree_skb, with its readers."""

    PROGRAMS: ClassVar[dict[str, str]] = {"tp_btf": "netbpf_drop_btf", "tracepoint": "netbpf_drop_tp"}

    def __init__(self, options: DropOptions, drop_reasons: _reasons.DropReasons | None = None) -> None:
        self.options = options
        self.reasons = drop_reasons or _reasons.load()
        self.hook = options.hook if options.hook != "auto" else ("tp_btf" if has_tp_btf() else "tracepoint")
        if self.hook not in self.PROGRAMS:
            raise ValueError(f"hook must be auto, tp_btf or tracepoint, not {options.hook!r}")
        self.obj: BpfObject | None = None
        self.link: Attachment | None = None
        self.ring: RingBuffer | None = None
        self._run = Run()

    def start(self) -> DropTracer:
        opts = self.options
        fmt = tracepoint_format()
        with self._run.starting():
            obj = self.obj = self._run.open(object_path(__file__, BPF_OBJECT))
            for name, prog in obj.programs.items():
                prog.set_autoload(name == self.PROGRAMS[self.hook])
            not_drops = list(self.reasons.not_drops[:2]) + [0xFFFFFFFF] * (2 - len(self.reasons.not_drops[:2]))
            obj.set_rodata(
                stream=opts.stream, summarise=opts.summary, summary_flows=opts.summary_flows,
                want_stack=opts.stack, has_rx_sk="rx_sk;" in fmt,
                not_a_drop=struct.pack("<2I", *not_drops),
                **opts.filter.rodata(),
            )
            obj.set_map_size("events", opts.ring_bytes if opts.stream else 4096)
            obj.set_map_size("summary", opts.summary_entries if opts.summary and not opts.summary_flows else 1)
            obj.set_map_size("flow_summary", opts.summary_entries if opts.summary_flows else 1)
            if not opts.stack:
                obj.set_map_size("stacks", 1)
            obj.load()
            self.link = self._run.attach(trace.attach_section(obj.program(self.PROGRAMS[self.hook])))
            if opts.stream:
                self.ring = self._run.reader(RingBuffer(obj.map("events"), obj.map("events_lost")))
        return self

    # -- reading ----------------------------------------------------------------------------
    def poll(self, timeout: float | None) -> list[bytes]:
        if self.ring is None:
            raise NetbpfError("drops: not streaming")
        return self.ring.poll(timeout, READ_BYTES)

    def read(self) -> list[bytes]:
        """What the ring holds now, without waiting."""
        return self.ring.read(READ_BYTES) if self.ring is not None else []

    def detach(self) -> None:
        """Stop producing events (the maps and the ring stay readable)."""
        if self.link is not None:
            self.link.close()  # closed once: the run's undo finds it closed

    def wake(self) -> None:
        """Unblock a poll() in another thread (the tracer stays attached)."""
        if self.ring is not None:
            self.ring.close()

    @property
    def lost(self) -> int:
        """Events the ring buffer had no room for (counted by the BPF program)."""
        return self.ring.lost if self.ring is not None else 0

    def stat(self, index: int) -> int:
        assert self.obj is not None
        return self.obj.map("stats").sum_u64(index)

    @property
    def seen(self) -> int:
        """Drops that passed the filters (streamed, counted, or both)."""
        return self.stat(STAT_SEEN)

    def summary(self) -> list[tuple[SummaryKey, int, int]]:
        """(key, packets, bytes) of every row of the in-kernel summary, summed over CPUs.

        Each drop was counted in one place: a slot of its CPU's cache, or the hash map.
        Counts only grow where they are, so two reads never go backwards.
        """
        assert self.obj is not None
        totals: dict[bytes, list[int]] = {}
        m = self.obj.map("flow_summary" if self.options.summary_flows else "summary")
        step = (ctypes.sizeof(DropCount) + 7) & ~7
        for key, value in m.lookup_batch():
            total = totals.setdefault(key.ljust(_KEY.size, b"\0"), [0, 0])
            for off in range(0, len(value), step):
                p, b = struct.unpack_from("<QQ", value, off)
                total[0] += p
                total[1] += b
        slot_size = ctypes.sizeof(DropSlot)
        step = (slot_size + 7) & ~7
        for _, value in self.obj.map("slots").lookup_batch():
            for off in range(0, len(value), step):
                p, b = struct.unpack_from("<QQ", value, off + _KEY.size)
                if p:
                    total = totals.setdefault(value[off:off + _KEY.size], [0, 0])
                    total[0] += p
                    total[1] += b
        return [(decode_key(k), p, b) for k, (p, b) in totals.items()]

    def stack(self, stack_id: int) -> tuple[int, ...]:
        """The frames of a stack id from the summary's stack map."""
        assert self.obj is not None
        if stack_id < 0:
            return ()
        raw = self.obj.map("stacks").lookup(stack_id)
        if raw is None:
            return ()
        frames = struct.unpack(f"<{len(raw) // 8}Q", raw)
        return tuple(f for f in frames if f)

    def program_id(self) -> int:
        assert self.obj is not None
        return self.obj.program(self.PROGRAMS[self.hook]).id

    def close(self) -> None:
        self._run.close()  # the ring, the link, then the object (last made, first undone)
        self.link = self.ring = self.obj = None

    def __enter__(self) -> DropTracer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def current_netns() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino
