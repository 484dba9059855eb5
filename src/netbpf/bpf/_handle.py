"""What a map handle and a program handle share: a name, libbpf's pointer (0
outside an object), and a file descriptor that is -1 until loaded.

An object's maps and programs are closed with the object; a handle taken by
id or pin owns its fd (``owns_fd``) and closes it itself.
"""
from __future__ import annotations

import os
from typing import ClassVar, Self

from ..errors import NetbpfError


class Handle:
    KIND: ClassVar[str] = "handle"  # the word in "<kind> NAME is not loaded"

    def __init__(self, name: str, fd: int, handle: int, owns_fd: bool) -> None:
        self.name = name
        self.fd = fd
        self.handle = handle
        self._owns_fd = owns_fd

    def require_fd(self) -> int:
        if self.fd < 0:
            raise NetbpfError(f"{self.KIND} {self.name} is not loaded")
        return self.fd

    def close(self) -> None:
        if self._owns_fd and self.fd >= 0:
            os.close(self.fd)
        self.fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
