"""The C library, for the system calls Python's ``os`` does not offer (setns, mount, bind of a
packet socket, perf_event_open, capset...).

One handle for the whole toolkit, with errno kept (``use_errno``) so that a failed call can be
turned into a netbpf error by :func:`netbpf.errors.from_errno`. Prototypes set on it (``argtypes``,
``restype``) hold for every caller: they are set here, or where the call is wrapped (``bpf/_mmap.py``).
"""
from __future__ import annotations

import ctypes
from ctypes import c_char_p, c_int, c_long, c_size_t, c_ulong, c_void_p

libc = ctypes.CDLL(None, use_errno=True)

libc.vsnprintf.restype = c_int
libc.vsnprintf.argtypes = [c_void_p, c_size_t, c_char_p, c_void_p]
libc.syscall.restype = c_long
libc.setns.restype = c_int
libc.setns.argtypes = [c_int, c_int]
libc.mount.restype = c_int
libc.mount.argtypes = [c_char_p, c_char_p, c_char_p, c_ulong, c_void_p]
