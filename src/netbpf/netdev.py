"""Network interfaces by name or index, with netbpf's error for a missing one."""
from __future__ import annotations

import socket

from .errors import InterfaceNotFound


def ifindex(name_or_index: str | int) -> int:
    """The index of an interface in the current network namespace."""
    if isinstance(name_or_index, int):
        try:
            socket.if_indextoname(name_or_index)
        except OSError:
            raise InterfaceNotFound(f"index {name_or_index}") from None
        return name_or_index
    try:
        return socket.if_nametoindex(name_or_index)
    except (OSError, ValueError):  # ValueError: a NUL in the name
        raise InterfaceNotFound(name_or_index) from None


def ifname(index: int) -> str:
    try:
        return socket.if_indextoname(index)
    except OSError:
        return f"if{index}"
