"""BPF objects: open an ELF file (no kernel needed), configure it, load it.

Opening reads the ELF and its BTF: program and map names, sections and the
``const volatile`` globals can be inspected and set without root. ``load()``
creates maps, applies CO-RE relocations against the running kernel and runs
the verifier; a rejection raises :class:`VerifierError` carrying the log.

    with BpfObject.open(path) as obj:
        obj.set_rodata(target_port=80)
        obj.load()
        link = attach_xdp(obj.program("netbpf_dump"), XdpOptions(ifname="eth0"))
"""
from __future__ import annotations

import ctypes
import errno as _errno
import logging
import os
import re
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import BuildMissing, NetbpfError, NotPermitted, VerifierError, check, from_errno
from ..libc import libc
from . import _libbpf as L
from . import (
    inject,  # registers the netbpf/xdp and netbpf/tc sections with libbpf
    made,
)
from .btf import Btf
from .maps import Map
from .program import Program

log = logging.getLogger("netbpf.libbpf")

# libbpf prints through a callback; keep its recent messages so that an error
# can say what libbpf said (missing BTF, unknown helper, map creation failed).
_messages: deque[str] = deque(maxlen=200)
_messages_lock = threading.Lock()


def _libbpf_print(level: int, fmt: bytes, args: int) -> int:
    buf = ctypes.create_string_buffer(4096)
    libc.vsnprintf(buf, len(buf), fmt, args)
    text = buf.value.decode(errors="replace").rstrip()
    with _messages_lock:
        _messages.append(text)
    log.log(logging.DEBUG if level >= 2 else logging.INFO, "%s", text)
    return 0


_libbpf_print_c = L.PRINT_FN(_libbpf_print)  # kept referenced for the process lifetime
L.lib.libbpf_set_print(_libbpf_print_c)


def recent_libbpf_messages(limit: int = 5) -> list[str]:
    with _messages_lock:
        return [m for m in list(_messages)[-limit:] if m]


VERIFIER_LOG_SIZE = 16 << 20
_FAILED_PROG = re.compile(r"prog '([^']+)': (?:BPF program load failed|failed to load)")


def object_path(package_file: str | Path, name: str) -> Path:
    """Path of a compiled BPF object that lives beside a tool's Python module."""
    path = Path(package_file).resolve().parent / name
    if not path.exists():
        raise BuildMissing(f"BPF object {path} is missing: run `make build` (clang compiles it)")
    return path


class BpfObject:
    """An opened (and, after ``load()``, loaded) BPF ELF object."""

    def __init__(self, handle: int, path: Path) -> None:
        self._handle = handle
        self.path = path
        self.loaded = False
        self._log_buf: ctypes.Array[ctypes.c_char] | None = None
        self.programs: dict[str, Program] = {}
        self.maps: dict[str, Map] = {}
        prog = L.lib.bpf_object__next_program(handle, None)
        while prog:
            p = Program.from_libbpf(prog)
            self.programs[p.name] = p
            prog = L.lib.bpf_object__next_program(handle, prog)
        m = L.lib.bpf_object__next_map(handle, None)
        while m:
            mp = Map.from_libbpf(m)
            self.maps[mp.name] = mp
            m = L.lib.bpf_object__next_map(handle, m)

    @classmethod
    def open(cls, path: str | Path, log_buffer: bool = True) -> BpfObject:
        path = Path(path)
        if not path.exists():
            raise BuildMissing(f"BPF object {path} is missing: run `make build`")
        opts = L.ObjectOpenOpts(sz=ctypes.sizeof(L.ObjectOpenOpts))
        log_buf = None
        if log_buffer:
            # Level 0: libbpf asks for a log only when a load fails, then retries
            # with level 1 into this buffer, so the verifier's reason is kept.
            log_buf = ctypes.create_string_buffer(VERIFIER_LOG_SIZE)
            opts.kernel_log_buf = ctypes.cast(log_buf, ctypes.c_void_p)
            opts.kernel_log_size = VERIFIER_LOG_SIZE
        handle = L.lib.bpf_object__open_file(str(path).encode(), ctypes.byref(opts))
        if not handle:
            err = ctypes.get_errno() or _errno.EINVAL
            raise from_errno(f"open BPF object {path.name}", err, "; ".join(recent_libbpf_messages(3)))
        obj = cls(handle, path)
        obj._log_buf = log_buf
        return obj

    # -- configuration before load -----------------------------------------------------
    def btf(self) -> Btf:
        handle = L.lib.bpf_object__btf(self._handle)
        if not handle:
            raise BuildMissing(f"{self.path.name} has no BTF: compile with -g")
        return Btf(handle, owned=False)

    def _rodata_map(self) -> Map:
        for m in self.maps.values():
            if m.is_internal and m.name.endswith(".rodata"):
                return m
        raise KeyError(f"{self.path.name} has no const volatile globals (.rodata)")

    def rodata_variables(self) -> dict[str, int]:
        """Names and sizes of the ``const volatile`` globals."""
        return {v.name: v.size for v in self.btf().datasec_variables(".rodata").values()}

    def set_rodata(self, **values: Any) -> None:
        """Set ``const volatile`` globals by name before load.

        Integers are written little-endian in the variable's size; bytes and
        ctypes objects are copied as they are and must have exactly that size.
        """
        if self.loaded:
            raise NetbpfError("set_rodata after load(): read-only globals are frozen at load")
        variables = self.btf().datasec_variables(".rodata")
        m = self._rodata_map()
        size = ctypes.c_size_t()
        base = L.lib.bpf_map__initial_value(m.handle, ctypes.byref(size))
        for name, value in values.items():
            var = variables.get(name)
            if var is None:
                raise KeyError(f"{self.path.name}: no const volatile global named {name!r}")
            if isinstance(value, bool):
                raw = int(value).to_bytes(var.size, "little")
            elif isinstance(value, int):
                raw = value.to_bytes(var.size, "little", signed=value < 0)
            else:
                raw = bytes(value)
            if len(raw) != var.size:
                raise ValueError(f"{name}: {len(raw)} bytes given, variable has {var.size}")
            assert var.offset + var.size <= size.value
            ctypes.memmove(base + var.offset, raw, var.size)

    def set_map_size(self, name: str, max_entries: int) -> None:
        check(L.lib.bpf_map__set_max_entries(self.map(name).handle, max_entries),
              f"set max_entries of map {name}")

    def set_value_size(self, name: str, size: int) -> None:
        """Before load: the size of each value of map ``name`` (an array whose
        elements are sized at run time, such as a ring of blocks)."""
        if self.loaded:
            raise NetbpfError(f"set the value size of map {name} after load()")
        check(L.lib.bpf_map__set_value_size(self.map(name).handle, size), f"set value size of map {name}")

    def load_only(self, *names: str) -> None:
        """Before load: load just these programs (the others stay out of the kernel:
        no verifier run, nothing to clean up). Names the object lacks are refused."""
        for name in names:
            self.program(name)  # KeyError naming what there is
        for p in self.programs.values():
            p.set_autoload(p.name in names)

    # -- load ---------------------------------------------------------------------------
    def load(self) -> BpfObject:
        if os.geteuid() != 0:
            # The kernel would say EPERM much later, after a confusing libbpf message.
            caps = _effective_caps()
            if not caps & ((1 << 39) | (1 << 21)):  # CAP_BPF or CAP_SYS_ADMIN
                raise NotPermitted(f"load BPF object {self.path.name}")
        if self._log_buf is not None:
            self._log_buf[0] = b"\0"
        ret = L.lib.bpf_object__load(self._handle)
        patch_errors = [(p.name, inject.take_error(p.handle)) for p in self.programs.values()]
        for name, error in patch_errors:
            if error:
                raise inject.InjectError(f"cannot put the filter into {name}: {error}")
        if ret < 0:
            self._raise_load_error(-ret)
        self.loaded = True
        for p in self.programs.values():
            p.fd = L.lib.bpf_program__fd(p.handle) if p.handle else -1
        for m in self.maps.values():
            m.fd = L.lib.bpf_map__fd(m.handle)
        # On record before anything is attached: cleanup removes only what is (bpf/made.py).
        made.record([p.fd for p in self.programs.values() if p.fd >= 0],
                    [m.fd for m in self.maps.values() if m.fd >= 0])
        return self

    def _raise_load_error(self, err: int) -> None:
        messages = recent_libbpf_messages(20)
        verifier_log = self._log_buf.value.decode(errors="replace") if self._log_buf else ""
        failed = None
        for msg in reversed(messages):
            match = _FAILED_PROG.search(msg)
            if match:
                failed = match.group(1)
                break
        if failed and (verifier_log or err in (_errno.EACCES, _errno.EINVAL)):
            if err == _errno.EPERM and os.geteuid() != 0:
                raise NotPermitted(f"load program {failed}")
            raise VerifierError(failed, verifier_log or "\n".join(messages), err)
        raise from_errno(f"load BPF object {self.path.name}", err, "; ".join(messages[-3:]))

    # -- access -------------------------------------------------------------------------
    def program(self, name: str) -> Program:
        try:
            return self.programs[name]
        except KeyError:
            raise KeyError(f"{self.path.name} has no program {name!r} "
                           f"(has: {', '.join(self.programs)})") from None

    def map(self, name: str) -> Map:
        try:
            return self.maps[name]
        except KeyError:
            raise KeyError(f"{self.path.name} has no map {name!r} (has: {', '.join(self.maps)})") from None

    def __iter__(self) -> Iterator[Program]:
        return iter(self.programs.values())

    def close(self) -> None:
        if self._handle:
            for p in self.programs.values():
                inject.forget(p.handle)
                p.fd = -1
            for m in self.maps.values():
                m.fd = -1
            L.lib.bpf_object__close(self._handle)
            self._handle = 0
            self._log_buf = None

    def __enter__(self) -> BpfObject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def _effective_caps() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0
