"""Socket filters: ``SO_ATTACH_BPF`` on a socket, such as an AF_PACKET raw socket.

The program sees a copy of each frame queued to that socket only; its return
value is how many bytes to keep (0 drops the copy). The real receivers are
never affected, which is what makes it safe on a production gateway.
"""
from __future__ import annotations

import socket
import struct

from ...errors import from_errno
from ..program import Program
from .base import Attachment

SO_ATTACH_BPF = 50
SO_DETACH_BPF = 27  # same value as SO_DETACH_FILTER


class SocketFilterAttachment(Attachment):
    kind = "socket_filter"

    def __init__(self, sock: socket.socket, prog: Program) -> None:
        super().__init__(f"socket filter {prog.name} on fd {sock.fileno()}")
        self.sock = sock

    def _detach(self) -> None:
        if self.sock.fileno() >= 0:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_BPF, 0)
            except OSError:
                pass  # nothing attached any more


def attach_socket_filter(prog: Program, sock: socket.socket) -> SocketFilterAttachment:
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, struct.pack("i", prog.require_fd()))
    except OSError as e:
        raise from_errno(f"attach socket filter {prog.name}", e.errno or 0) from e
    return SocketFilterAttachment(sock, prog)
