"""A frame flood for benchmarks and tests, as fast as one CPU can send.

Two generators behind one interface (``send``/``run``/``close``, ``FloodResult``):

- ``xdp-live`` (:class:`LiveFrames`): BPF_PROG_TEST_RUN with
  BPF_F_TEST_XDP_LIVE_FRAMES (Linux 5.18) runs a two-instruction XDP program
  on a frame many times and really sends each copy: ``XDP_TX`` transmits it
  on the interface (on a veth, the peer receives it through its XDP hook and
  stack), ``XDP_PASS`` hands it to the interface's own stack as if received.
  xdp-trafficgen's method; nothing from Python sends faster. Some kernels
  refuse it, even to root (EPERM: lockdown, sandboxed VMs; EINVAL before 5.18).
- ``af_packet`` (:class:`PacketSocket`): an AF_PACKET socket with
  PACKET_QDISC_BYPASS and sendmmsg(2) of a whole batch per call; needs only
  CAP_NET_RAW. Frames leave as from a NIC driver's xmit, never as if received.
  (A TPACKET TX ring costs ~0.86x its CPU per frame but cannot count a refused
  frame exactly: bench/flood_generators.py.)

:func:`open_flood` picks one: ``NETBPF_FLOOD=live|socket|auto`` (default auto:
live frames where the kernel allows them). Frames only go out of interfaces
inside the caller's own namespaces.
"""
from __future__ import annotations

import ctypes
import errno as _errno
import os
import socket
import struct
import time
from dataclasses import dataclass

from ... import netdev
from ...bpf import features
from ...bpf.program import Program
from ...errors import BpfError, UsageError, from_errno

BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1
XDP_PASS, XDP_TX = 2, 3
BPF_XDP = 37

ENV = "NETBPF_FLOOD"
CHOICES = ("auto", "live", "socket")
LIVE, SOCKET = "xdp-live", "af_packet"  # what a benchmark prints


def _checksum(data: bytes) -> int:
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_frame(src_mac: bytes, dst_mac: bytes, src_ip: str, dst_ip: str, sport: int, dport: int,
              size: int = 64, payload: bytes = b"") -> bytes:
    """An Ethernet/IPv4/UDP frame of ``size`` bytes (without FCS: 64 is the minimum);
    ``payload`` makes the UDP length its own, the rest is Ethernet padding."""
    data = payload or bytes(size - 14 - 20 - 8)
    udp = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     socket.inet_aton(src_ip), socket.inet_aton(dst_ip))
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return (dst_mac + src_mac + b"\x08\x00" + ip + udp).ljust(size, b"\0")


@dataclass
class FloodResult:
    sent: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


class Paced:
    """What both generators share: pacing, and closing as a context manager."""

    generator: str  # xdp-live or af_packet: what a benchmark prints

    def send(self, frame: bytes, count: int) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def run(self, frames: list[tuple[bytes, int]], total: int, rate: float | None = None,
            batch: int = 1000) -> FloodResult:
        """Send ``total`` frames, cycling through (frame, share) with ``share`` copies
        of each per round, paced to ``rate`` frames/s (None: as fast as possible)."""
        start = time.monotonic()
        sent = 0
        while sent < total:
            for frame, share in frames:
                remaining = share
                while remaining and sent < total:
                    n = min(remaining, batch, total - sent)
                    self.send(frame, n)
                    sent += n
                    remaining -= n
                    if rate:
                        ahead = sent / rate - (time.monotonic() - start)
                        if ahead > 0:
                            time.sleep(ahead)
        return FloodResult(sent, time.monotonic() - start)

    def __enter__(self) -> Paced:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LiveFrames(Paced):
    """XDP live frames on ``interface`` (of the calling thread's namespace): ``XDP_TX``
    sends them out of it, ``XDP_PASS`` receives them on it."""

    generator = LIVE

    def __init__(self, interface: str, verdict: int = XDP_TX) -> None:
        features.require_xdp_live_frames()
        self.ifindex = netdev.ifindex(interface)
        self.prog = Program("netbpf_flood", fd=features.load_trivial(6, BPF_XDP, verdict=verdict,
                                                                     name="netbpf_flood"), owns_fd=True)
        self._ctx = bytearray(struct.pack("<IIIIII", 0, 0, 0, self.ifindex, 0, 0))
        self.kernel_ns = 0  # the kernel's own timing of its loop, summed over calls

    def send(self, frame: bytes, count: int) -> int:
        struct.pack_into("<I", self._ctx, 4, len(frame))  # xdp_md.data_end
        run = self.prog.test_run(frame, repeat=count, ctx=bytes(self._ctx), data_out_size=0,
                                 flags=BPF_F_TEST_XDP_LIVE_FRAMES, batch_size=64,
                                 what="send frames (BPF_PROG_TEST_RUN, live frames)")
        self.kernel_ns += run.duration_ns * count  # duration: mean ns per frame
        return count

    def close(self) -> None:
        self.prog.close()


# -- AF_PACKET + sendmmsg -------------------------------------------------------------------------
SOL_PACKET, PACKET_QDISC_BYPASS = 263, 20
ETH_P_IP = 0x0800
STALL_SECONDS = 5.0  # no frame accepted for this long: something is wrong, say so


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.POINTER(_Iovec)),
                ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", _Msghdr), ("len", ctypes.c_uint32)]


def packet_socket() -> socket.socket:
    """An AF_PACKET socket to send frames from; protocol 0: it receives nothing, so reading
    costs nothing."""
    try:
        return socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    except OSError as e:
        raise from_errno("open an AF_PACKET socket", e.errno or _errno.EPERM) from e


class PacketSocket(Paced):
    """Frames out of ``interface`` (of the calling thread's namespace) from an AF_PACKET
    socket, up to ``batch`` per sendmmsg(2).

    PACKET_QDISC_BYPASS hands each frame straight to the driver's xmit, so that the
    answer of each send is the driver's: a veth whose peer's ring is full refuses the
    frame (ENOBUFS) instead of a queue taking it. ``send`` then waits for the peer to
    drain and sends the rest: every frame counted as sent was taken by the driver.
    """

    generator = SOCKET

    def __init__(self, interface: str, batch: int = 1024) -> None:
        self.ifindex = netdev.ifindex(interface)
        self.sock = packet_socket()
        try:
            self.sock.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
            self.sock.bind((interface, 0))
        except OSError as e:
            self.sock.close()
            raise from_errno(f"bind an AF_PACKET socket to {interface}", e.errno or _errno.EINVAL) from e
        self.batch = batch
        self.refused = 0  # sends the driver refused (and that were sent again)
        # struct sockaddr_ll: the protocol the frame's skb carries (ETH_P_IP).
        addr = struct.pack("=HHiHBB8s", socket.AF_PACKET, socket.htons(ETH_P_IP), self.ifindex, 0, 0, 6, b"")
        self._addr = ctypes.create_string_buffer(addr, len(addr))
        self._msgs = (_Mmsghdr * batch)()
        self._iov = _Iovec()
        self._frame = ctypes.create_string_buffer(0)
        for m in self._msgs:
            m.hdr.name = ctypes.cast(self._addr, ctypes.c_void_p)
            m.hdr.namelen = len(addr)
            m.hdr.iov = ctypes.pointer(self._iov)
            m.hdr.iovlen = 1
        self._libc = ctypes.CDLL(None, use_errno=True)

    def send(self, frame: bytes, count: int) -> int:
        if self._frame.raw != frame:
            self._frame = ctypes.create_string_buffer(frame, len(frame))
            self._iov.base, self._iov.len = ctypes.cast(self._frame, ctypes.c_void_p), len(frame)
        fd, sent, stalled = self.sock.fileno(), 0, 0.0
        while sent < count:
            n = self._libc.sendmmsg(fd, self._msgs, min(self.batch, count - sent), 0)
            if n > 0:
                sent, stalled = sent + n, 0.0
                continue
            err = ctypes.get_errno()
            if err not in (_errno.ENOBUFS, _errno.EAGAIN, _errno.EINTR):
                raise from_errno("send frames (AF_PACKET sendmmsg)", err)
            # The peer's ring is full: let its NAPI run, then send the rest.
            self.refused += 1
            now = time.monotonic()
            stalled = stalled or now
            if now - stalled > STALL_SECONDS:
                raise BpfError("send frames (AF_PACKET sendmmsg)", err,
                               f"none accepted for {STALL_SECONDS:.0f} s")
            os.sched_yield()
        return sent

    def close(self) -> None:
        self.sock.close()


# -- the choice -------------------------------------------------------------------------------------
def choose(choice: str | None = None) -> str:
    """``xdp-live`` or ``af_packet``: ``choice`` (or $NETBPF_FLOOD) live, socket or auto
    (live frames where the kernel allows them). A forced ``live`` that the kernel
    refuses raises NotSupported, naming the feature."""
    wanted = (choice if choice is not None else os.environ.get(ENV, "")).strip().lower() or "auto"
    if wanted not in CHOICES:
        raise UsageError(f"{ENV}={wanted!r}: expected one of {', '.join(CHOICES)}")
    if wanted == "socket":
        return SOCKET
    if wanted == "live":
        features.require_xdp_live_frames()
        return LIVE
    return LIVE if features.has_xdp_live_frames() else SOCKET


def open_flood(interface: str, generator: str | None = None) -> Paced:
    """The flood out of ``interface``: ``generator`` (xdp-live, af_packet) or the
    choice of :func:`choose`."""
    generator = generator or choose()
    if generator == LIVE:
        return LiveFrames(interface, XDP_TX)
    if generator == SOCKET:
        return PacketSocket(interface)
    raise UsageError(f"no such flood generator: {generator!r} (expected {LIVE} or {SOCKET})")
