"""What the fault needs to know about an interface, asked through ioctls.

ioctls answer for the calling thread's network namespace; /sys/class/net
does not (sysfs shows the namespace it was mounted in, so after
``netbpf --netns`` it still lists the host's interfaces).
"""
from __future__ import annotations

import ctypes
import fcntl
import socket
import struct

SIOCGIFHWADDR = 0x8927
SIOCETHTOOL = 0x8946
ETHTOOL_GDRVINFO = 0x03
ETHTOOL_GTXCSUM = 0x16
ETHTOOL_STXCSUM = 0x17
ARPHRD_ETHER, ARPHRD_LOOPBACK = 1, 772


def _ioctl(request: int, ifreq: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        return fcntl.ioctl(s.fileno(), request, ifreq)


def _ifreq(name: str, pointer: int) -> bytes:
    # struct ifreq: char ifr_name[16]; union { void *ifr_data; ... } (24 bytes)
    return struct.pack("16sP16x", name.encode(), pointer)


def link_type(name: str) -> int:
    """The ARPHRD_* type (1: Ethernet, 772: loopback)."""
    out = _ioctl(SIOCGIFHWADDR, struct.pack("16s24x", name.encode()))
    return int(struct.unpack_from("H", out, 16)[0])


def driver(name: str) -> str:
    """The driver's name as ``ethtool -i`` shows it ("veth", "mlx5_core"...); "" if unknown."""
    info = ctypes.create_string_buffer(struct.pack("I", ETHTOOL_GDRVINFO), 196)
    try:
        _ioctl(SIOCETHTOOL, _ifreq(name, ctypes.addressof(info)))
    except OSError:
        return ""
    return info.raw[4:36].split(b"\0", 1)[0].decode(errors="replace")


def tx_checksum(name: str, on: bool | None = None) -> bool:
    """Whether the interface offloads transmit checksums (``ethtool -k``'s
    tx-checksumming); with ``on`` given, switch it first (``ethtool -K DEV tx on|off``)."""
    cmd = ETHTOOL_GTXCSUM if on is None else ETHTOOL_STXCSUM
    value = ctypes.create_string_buffer(struct.pack("II", cmd, int(bool(on))), 8)
    _ioctl(SIOCETHTOOL, _ifreq(name, ctypes.addressof(value)))
    if on is not None:
        return tx_checksum(name)
    return bool(struct.unpack("II", value.raw)[1])
