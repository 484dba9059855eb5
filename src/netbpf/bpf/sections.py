"""libbpf's program-section handlers, claimed through this one registry.

A loader may tell libbpf that programs in ``SEC("name")`` are its own
(``libbpf_register_prog_handler``): their program type and expected attach
type, and a prepare-load callback that runs after relocation (map fds in
place, subprograms appended) and just before BPF_PROG_LOAD, where the
instructions may still be changed. netbpf uses it twice: to put a compiled
tcpdump filter into ``SEC("netbpf/xdp")``/``SEC("netbpf/tc")`` programs for the
life of the process (bpf/inject.py), and to load a user's ``SEC("xdp")``
program behind xdp chain's wrapper for the length of one load
(tools/xdp/wrap.py).

libbpf's registry is global to the process and not thread-safe: every
registration goes through here, under one lock. A callback must not raise
into C: what it raises is kept, per program, for the loader to report once
the load has failed (``Handler.take_error``).
"""
from __future__ import annotations

import ctypes
import errno as _errno
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..errors import NetbpfError
from . import _libbpf as L

LoadOpts = L.ProgLoadOpts  # struct bpf_prog_load_opts, as a prepare callback may change it
# (program handle, its load options) -> None; raise to refuse the load
Prepare = Callable[[int, LoadOpts], None]

_lock = threading.Lock()  # libbpf_register/unregister_prog_handler are not thread-safe
_handlers: dict[int, Handler] = {}  # cookie -> handler
_next_cookie = 1


class Handler:
    """A registered section: what its callback said went wrong, per program."""

    def __init__(self, section: str, prepare: Prepare, cookie: int) -> None:
        self.section, self.prepare, self.cookie = section, prepare, cookie
        self.id = -1
        self._errors: dict[int, str] = {}
        self._errors_lock = threading.Lock()

    def fail(self, prog: int, error: str) -> None:
        with self._errors_lock:
            self._errors[prog] = error

    def take_error(self, prog: int) -> str:
        """What went wrong preparing program ``prog`` (a libbpf handle), and forget it."""
        with self._errors_lock:
            return self._errors.pop(prog, "")


def _prepare(prog: int, opts: ctypes._Pointer, cookie: int) -> int:  # type: ignore[type-arg]
    handler = _handlers.get(cookie)
    if handler is None:
        return 0
    try:
        handler.prepare(prog, opts.contents)
        return 0
    except Exception as e:  # never raise into C: reported after the load
        handler.fail(prog, str(e))
        return -_errno.EINVAL


_prepare_c = L.PREPARE_LOAD_FN(_prepare)  # kept referenced: libbpf may call it for the process lifetime


def register(section: str, prog_type: int, attach_type: int, prepare: Prepare) -> Handler:
    """Claim ``SEC(section)`` until ``unregister``: programs opened meanwhile get
    ``prog_type`` and ``attach_type`` and go through ``prepare`` at load."""
    global _next_cookie
    with _lock:
        handler = Handler(section, prepare, _next_cookie)
        _next_cookie += 1
        opts = L.ProgHandlerOpts(sz=ctypes.sizeof(L.ProgHandlerOpts), cookie=handler.cookie,
                                 prog_prepare_load_fn=_prepare_c)
        _handlers[handler.cookie] = handler
        ret = L.lib.libbpf_register_prog_handler(section.encode(), prog_type, attach_type, ctypes.byref(opts))
        if ret < 0:
            del _handlers[handler.cookie]
            raise NetbpfError(f"libbpf refused a section handler for SEC(\"{section}\"): error {-ret}")
        handler.id = int(ret)
        return handler


def unregister(handler: Handler) -> None:
    """Give the section back. Programs refer to their handler from open to close:
    close objects opened under it first."""
    with _lock:
        if handler.id >= 0:
            L.lib.libbpf_unregister_prog_handler(handler.id)
            handler.id = -1
        _handlers.pop(handler.cookie, None)


@contextmanager
def registered(section: str, prog_type: int, attach_type: int, prepare: Prepare) -> Iterator[Handler]:
    handler = register(section, prog_type, attach_type, prepare)
    try:
        yield handler
    finally:
        unregister(handler)
