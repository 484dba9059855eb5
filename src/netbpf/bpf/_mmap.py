"""Shared memory with the kernel, mapped with mmap(2) through ctypes.

Python's ``mmap`` module cannot hand out the address of a read-only mapping,
and ``struct`` moves 64-bit words a byte at a time; ring positions shared
with the kernel must be read and written as whole aligned words (a torn
read of a producer position runs a reader into stale data). A
:class:`Mapping` gives both: ``u64(offset)`` views and ``bytes`` slices.
"""
from __future__ import annotations

import ctypes
import mmap
from typing import cast

from ..errors import from_errno
from ..libc import libc

libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                        ctypes.c_long]
libc.munmap.restype = ctypes.c_int
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
MAP_FAILED = ctypes.c_void_p(-1).value


class Mapping:
    def __init__(self, fd: int, length: int, offset: int = 0, writable: bool = False) -> None:
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
        address = libc.mmap(None, length, prot, mmap.MAP_SHARED, fd, offset)
        if address in (None, MAP_FAILED):
            raise from_errno("mmap of a BPF map", ctypes.get_errno())
        self.address: int = address
        self.length = length
        self.bytes = (ctypes.c_char * length).from_address(address)

    def u64(self, offset: int) -> ctypes.c_uint64:
        """A live view of the aligned 64-bit word at ``offset`` (``.value`` to read/write)."""
        assert offset % 8 == 0 and offset + 8 <= self.length
        return ctypes.c_uint64.from_address(self.address + offset)

    def read(self, start: int, end: int) -> bytes:
        """A copy of [start, end): one memcpy (slicing a c_char array gives bytes)."""
        return cast(bytes, self.bytes[start:end])

    def close(self) -> None:
        if self.address:
            libc.munmap(self.address, self.length)
            self.address = 0
