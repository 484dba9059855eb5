"""Every TCP and UDP socket of a network namespace with its cookie and inode (sock_diag).

NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY with an inet_diag_req_v2 dump request,
as ``ss`` asks. Answering generates a socket's cookie if it had none, so the
cookie given here is the one a BPF program reads later.
"""
from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
_nlmsghdr = struct.Struct("=IHHII")
_req = struct.Struct("=BBBxI48s")  # inet_diag_req_v2: family, protocol, ext, pad, states, id
_MSG_COOKIE, _MSG_INODE = 4 + 40, 4 + 48 + 16  # offsets in inet_diag_msg


@dataclass(frozen=True, slots=True)
class DiagSocket:
    family: int
    protocol: int
    cookie: int
    inode: int  # 0: no file (TIME-WAIT, request sockets)


def parse(payload: bytes, family: int, protocol: int) -> DiagSocket:
    """One inet_diag_msg."""
    low, high = struct.unpack_from("=II", payload, _MSG_COOKIE)
    (inode,) = struct.unpack_from("=I", payload, _MSG_INODE)
    return DiagSocket(family, protocol, high << 32 | low, inode)


def _dump(family: int, protocol: int) -> Iterator[DiagSocket]:
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG) as s:
        body = _req.pack(family, protocol, 0, 0xFFFFFFFF, bytes(48))
        s.send(_nlmsghdr.pack(_nlmsghdr.size + len(body), SOCK_DIAG_BY_FAMILY,
                              NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body)
        while True:
            data = s.recv(1 << 16)
            pos = 0
            while pos + _nlmsghdr.size <= len(data):
                length, kind, _, _, _ = _nlmsghdr.unpack_from(data, pos)
                if length < _nlmsghdr.size:
                    return
                if kind == NLMSG_DONE:
                    return
                if kind == NLMSG_ERROR:
                    (err,) = struct.unpack_from("=i", data, pos + _nlmsghdr.size)
                    if err == -errno.ENOENT:  # no diag module for this protocol
                        return
                    raise OSError(-err, f"sock_diag: {os.strerror(-err)}")
                yield parse(data[pos + _nlmsghdr.size:pos + length], family, protocol)
                pos += (length + 3) & ~3


def sockets() -> list[DiagSocket]:
    """The TCP and UDP sockets (IPv4, IPv6) of the calling thread's network namespace."""
    out: list[DiagSocket] = []
    for family in (socket.AF_INET, socket.AF_INET6):
        for protocol in (socket.IPPROTO_TCP, socket.IPPROTO_UDP):
            out.extend(_dump(family, protocol))
    return out
