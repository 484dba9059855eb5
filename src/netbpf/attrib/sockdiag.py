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
_msg_id = struct.Struct("=BB2x2s2s16s16s")  # family, state, (timer, retrans), sport, dport, src, dst
SO_NETNS_COOKIE = 71
TCP_LISTEN = 10
_V4_MAPPED = bytes(10) + b"\xff\xff"


@dataclass(frozen=True, slots=True)
class DiagSocket:
    family: int
    protocol: int
    cookie: int
    inode: int  # 0: no file (TIME-WAIT, request sockets)
    state: int = 0  # TCP_ESTABLISHED (1) ... TCP_LISTEN (10); UDP: 7 (closed) or 1 (connected)
    local: bytes = b""  # the address, 4 or 16 bytes (an IPv4-mapped one as its 4)
    local_port: int = 0
    remote: bytes = b""
    remote_port: int = 0


def _address(raw: bytes, family: int) -> bytes:
    if family == socket.AF_INET:
        return raw[:4]
    return raw[12:] if raw.startswith(_V4_MAPPED) else raw


def parse(payload: bytes, family: int, protocol: int) -> DiagSocket:
    """One inet_diag_msg."""
    low, high = struct.unpack_from("=II", payload, _MSG_COOKIE)
    (inode,) = struct.unpack_from("=I", payload, _MSG_INODE)
    _, state, sport, dport, src, dst = _msg_id.unpack_from(payload)
    return DiagSocket(family, protocol, high << 32 | low, inode, state, _address(src, family),
                      int.from_bytes(sport, "big"), _address(dst, family), int.from_bytes(dport, "big"))


def netns_cookie() -> int:
    """The calling thread's network namespace's cookie (bpf_get_netns_cookie's number)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        return int.from_bytes(s.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8), "little")


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


def namespace() -> tuple[int, list[DiagSocket]]:
    """The calling thread's network namespace: its cookie and its sockets."""
    return netns_cookie(), sockets()


def sockets() -> list[DiagSocket]:
    """The TCP and UDP sockets (IPv4, IPv6) of the calling thread's network namespace."""
    out: list[DiagSocket] = []
    for family in (socket.AF_INET, socket.AF_INET6):
        for protocol in (socket.IPPROTO_TCP, socket.IPPROTO_UDP):
            out.extend(_dump(family, protocol))
    return out
