"""An AF_PACKET socket with a socket filter and a TPACKET_V3 memory-mapped RX ring.

Frames reach Python without a syscall per frame: the kernel fills blocks of
a ring shared with this process (``tpacket_req3``), hands a block over when
it is full or ``retire_ms`` after its first frame (TP_STATUS_USER), and gets
it back when we are done with it (TP_STATUS_KERNEL). Frames that find no free
block are dropped by the kernel and counted (PACKET_STATISTICS ``tp_drops``):
this module accumulates that count, the only loss between filter and parser.

Geometry: the kernel hands a block over ``retire_ms`` after its first frame
even when it is nearly empty, so what the ring can hold while the reader is
busy is counted in blocks more than in bytes. Blocks of 256 KiB (a 64 KiB GSO
frame fits; a larger BIG TCP frame is cut, and the reassembler counts the
missing bytes) and a 50 ms timeout give many blocks, each well filled.

The socket is made with protocol 0, which receives nothing; the filter is
attached and the ring mapped, and only then is it bound with ETH_P_ALL, so no
unfiltered frame ever lands in the ring. It is SOCK_DGRAM: the kernel strips
each device's link-layer header (Ethernet on veth, none on tun, a fake one on
loopback), so frames start at the network header on every interface of
``-i any``, and ``sll_protocol`` says which header that is.
"""
from __future__ import annotations

import ctypes
import errno as _errno
import mmap
import select
import socket
import struct
from collections.abc import Callable

from ...bpf.attach.socket import SocketFilterAttachment, attach_socket_filter
from ...bpf.program import Program
from ...errors import NotSupported, from_errno
from ...libc import libc

SOL_PACKET = 263
PACKET_RX_RING, PACKET_STATISTICS, PACKET_VERSION = 5, 6, 10
TPACKET_V3 = 2
ETH_P_ALL = 0x0003
TP_STATUS_KERNEL, TP_STATUS_USER = 0, 1
TPACKET3_HDRLEN = 48  # TPACKET_ALIGN(sizeof(struct tpacket3_hdr))

# struct tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1:
# block_status, num_pkts, offset_to_first_pkt, blk_len, ...
_BLOCK = struct.Struct("<8xIII")
# struct tpacket3_hdr: tp_next_offset, tp_sec, tp_nsec, tp_snaplen, tp_len, tp_status, tp_mac.
# (The struct sockaddr_ll after it is not read: the filter only keeps IPv4 and IPv6
# frames, and the version nibble tells which.)
_FRAME = struct.Struct("<IIIIIIH")

FrameHandler = Callable[[bytes, int, int, float], None]  # frame, offset, ethertype (0), timestamp


class SockaddrLL(ctypes.Structure):
    _fields_ = [("sll_family", ctypes.c_uint16), ("sll_protocol", ctypes.c_uint16),
                ("sll_ifindex", ctypes.c_int), ("sll_hatype", ctypes.c_uint16),
                ("sll_pkttype", ctypes.c_uint8), ("sll_halen", ctypes.c_uint8),
                ("sll_addr", ctypes.c_uint8 * 8)]


class PacketRing:
    """A filtered capture socket on one interface (ifindex) or all (0)."""

    def __init__(self, prog: Program, ifindex: int = 0, ring_bytes: int = 64 << 20,
                 block_bytes: int = 256 << 10, retire_ms: int = 50) -> None:
        self.block_bytes = block_bytes
        self.blocks = max(2, ring_bytes // block_bytes)
        self.retire_ms = retire_ms
        self.ifindex = ifindex
        self.packets = 0  # frames the filter kept, as the kernel counts them
        self.drops = 0  # of which found no room in the ring
        self.next_block = 0
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)
        self.mm: mmap.mmap | None = None
        self.attachment: SocketFilterAttachment | None = None
        try:
            self._setup(prog)
        except BaseException:
            self.close()
            raise

    def _setup(self, prog: Program) -> None:
        try:
            self.sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        except OSError as e:
            raise NotSupported("TPACKET_V3 packet rings", e.strerror or "") from e
        frame = 2048  # V3 packs frames of any size into blocks; this only sizes the kernel's check
        req = struct.pack("7I", self.block_bytes, self.blocks, frame,
                          self.block_bytes * self.blocks // frame, self.retire_ms, 0, 0)
        try:
            self.sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
        except OSError as e:
            raise from_errno(f"packet ring of {self.blocks} x {self.block_bytes} bytes", e.errno or 0) from e
        self.mm = mmap.mmap(self.sock.fileno(), self.block_bytes * self.blocks, mmap.MAP_SHARED,
                            mmap.PROT_READ | mmap.PROT_WRITE)
        self.attachment = attach_socket_filter(prog, self.sock)
        self._bind(socket.htons(ETH_P_ALL))
        self.poller = select.poll()
        self.poller.register(self.sock.fileno(), select.POLLIN | select.POLLERR)

    def _bind(self, protocol: int) -> None:
        addr = SockaddrLL(sll_family=socket.AF_PACKET, sll_protocol=protocol, sll_ifindex=self.ifindex)
        if libc.bind(self.sock.fileno(), ctypes.byref(addr), ctypes.sizeof(addr)) != 0:
            err = ctypes.get_errno()
            if err == _errno.ENODEV:
                from ...errors import InterfaceNotFound

                raise InterfaceNotFound(f"index {self.ifindex}")
            raise from_errno("bind packet socket", err)

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self, handler: FrameHandler, timeout: float) -> int:
        """Hand every frame of the blocks ready now (waiting up to ``timeout`` s for
        the first) to ``handler``; returns the number of blocks read."""
        mm = self.mm
        assert mm is not None
        base = self.next_block * self.block_bytes
        status, _, _ = _BLOCK.unpack_from(mm, base)
        if not status & TP_STATUS_USER:
            self.poller.poll(int(timeout * 1000))
        done = 0
        unpack_frame = _FRAME.unpack_from
        while True:
            base = self.next_block * self.block_bytes
            status, count, offset = _BLOCK.unpack_from(mm, base)
            if not status & TP_STATUS_USER:
                return done
            pos = base + offset
            for _ in range(count):
                next_offset, sec, nsec, snaplen, _len, _status, mac = unpack_frame(mm, pos)
                start = pos + mac
                handler(mm[start:start + snaplen], 0, 0, sec + nsec * 1e-9)
                pos += next_offset
            # Give the block back to the kernel.
            mm[base + 8:base + 12] = b"\0\0\0\0"
            self.next_block = (self.next_block + 1) % self.blocks
            done += 1

    def stop(self) -> None:
        """Stop receiving (bind to protocol 0) while keeping what is in the ring."""
        self._bind(0)

    def drain(self, handler: FrameHandler) -> None:
        """After :meth:`stop`: read every block, including the one being filled,
        which the kernel retires ``retire_ms`` after its first frame."""
        while self.read(handler, timeout=3 * self.retire_ms / 1000):
            pass

    def update_stats(self) -> None:
        """Add the kernel's counters (which reset when read) to ours."""
        raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12)
        packets, drops, _freeze = struct.unpack("III", raw)
        self.packets += packets
        self.drops += drops

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            try:
                self.update_stats()
            except OSError:
                pass
        if self.attachment is not None:
            self.attachment.close()
            self.attachment = None
        if self.mm is not None:
            try:
                self.mm.close()
            except BufferError:
                pass  # a frame view is still alive somewhere; the socket close frees it
            self.mm = None
        self.sock.close()
