"""A UDP flood for benchmarks and tests, as fast as one CPU can send.

BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES (Linux 5.18) runs a
two-instruction XDP program (``return XDP_TX``) on a frame many times and
really transmits each copy on the given interface: on a veth, the peer
receives them, through its XDP hook and stack. That is xdp-trafficgen's
method; a socket cannot offer nearly as many packets per second from Python.
Frames only go out of interfaces inside the caller's own namespaces.
"""
from __future__ import annotations

import ctypes
import os
import socket
import struct
import time
from dataclasses import dataclass

from ... import netdev
from ...bpf import _libbpf as L
from ...bpf import features
from ...bpf.errors import NotSupported, from_errno

BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1
XDP_TX = 3


def _checksum(data: bytes) -> int:
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_frame(src_mac: bytes, dst_mac: bytes, src_ip: str, dst_ip: str, sport: int, dport: int,
              size: int = 64) -> bytes:
    """An Ethernet/IPv4/UDP frame of ``size`` bytes (without FCS: 64 is the minimum)."""
    payload = bytes(size - 14 - 20 - 8)
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     socket.inet_aton(src_ip), socket.inet_aton(dst_ip))
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return dst_mac + src_mac + b"\x08\x00" + ip + udp


@dataclass
class FloodResult:
    sent: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


class Flood:
    """Send frames out of ``interface`` (of the calling thread's namespace)."""

    def __init__(self, interface: str) -> None:
        self.ifindex = netdev.ifindex(interface)
        try:
            self.fd = features.load_trivial(6, 37, verdict=XDP_TX, name="netbpf_flood")
        except NotSupported:
            raise
        self._ctx = ctypes.create_string_buffer(struct.pack("<IIIIII", 0, 0, 0, self.ifindex, 0, 0), 24)

    def send(self, frame: bytes, count: int) -> None:
        data = ctypes.create_string_buffer(frame, len(frame))
        struct.pack_into("<I", self._ctx, 4, len(frame))  # xdp_md.data_end
        opts = L.TestRunOpts(sz=ctypes.sizeof(L.TestRunOpts), repeat=count,
                             flags=BPF_F_TEST_XDP_LIVE_FRAMES, batch_size=64)
        opts.data_in = ctypes.cast(data, ctypes.c_void_p)
        opts.data_size_in = len(frame)
        opts.ctx_in = ctypes.cast(self._ctx, ctypes.c_void_p)
        opts.ctx_size_in = ctypes.sizeof(self._ctx)
        ret = L.lib.bpf_prog_test_run_opts(self.fd, ctypes.byref(opts))
        if ret < 0:
            raise from_errno("send frames (BPF_PROG_TEST_RUN, live frames)", -ret)

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

    def close(self) -> None:
        os.close(self.fd)
