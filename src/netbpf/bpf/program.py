"""A BPF program: from an object (before or after load) or taken by id."""
from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass

from ..errors import check, from_errno
from . import _libbpf as L
from ._handle import Handle
from .info import PROG_TYPES, BpfProgInfo, fd_by_id, fd_by_pin, prog_info

PROG_TYPE_SOCKET_FILTER = 1
PROG_TYPE_SCHED_CLS = 3
PROG_TYPE_XDP = 6


@dataclass(frozen=True, slots=True)
class TestRun:
    retval: int
    duration_ns: int
    data_out: bytes


class Program(Handle):
    """A program handle. ``fd`` is -1 until the object is loaded.

    Programs of an object are owned by it (closed with it); programs taken by
    id (``Program.from_id``) own their fd and must be closed.
    """

    KIND = "program"

    def __init__(self, name: str, fd: int = -1, handle: int = 0, prog_type: int = 0,
                 section: str = "", owns_fd: bool = False) -> None:
        super().__init__(name, fd, handle, owns_fd)
        self._type = prog_type
        self.section = section

    @classmethod
    def from_libbpf(cls, handle: int) -> Program:
        return cls(
            name=L.lib.bpf_program__name(handle).decode(),
            handle=handle,
            section=(L.lib.bpf_program__section_name(handle) or b"").decode(),
        )

    @classmethod
    def from_id(cls, prog_id: int) -> Program:
        fd = fd_by_id("prog", prog_id)
        info = prog_info(fd)
        return cls(info.name.decode(), fd=fd, prog_type=info.type, owns_fd=True)

    @classmethod
    def from_pin(cls, path: str | os.PathLike[str]) -> Program:
        fd = fd_by_pin(path, "program")
        info = prog_info(fd)
        return cls(info.name.decode(), fd=fd, prog_type=info.type, owns_fd=True)

    @classmethod
    def load(cls, prog_type: int, name: str, code: bytes, expected_attach_type: int = 0,
             attach_prog: Program | None = None, attach_btf_id: int = 0) -> Program:
        """Load instructions that netbpf made itself (BPF_PROG_LOAD, no object file):
        probes, stand-ins. The program owns its fd. ``attach_prog``/``attach_btf_id``:
        the target of a tracing (fentry/fexit) program."""
        if len(code) % 8 or not code:
            raise ValueError("BPF instructions are 8 bytes each")
        insns = (L.BpfInsn * (len(code) // 8)).from_buffer_copy(code)
        opts = L.ProgLoadOpts(sz=ctypes.sizeof(L.ProgLoadOpts), expected_attach_type=expected_attach_type,
                              attach_btf_id=attach_btf_id)
        if attach_prog is not None:
            opts.attach_prog_fd = attach_prog.require_fd()
        fd = L.lib.bpf_prog_load(prog_type, name.encode(), b"GPL", insns, len(insns), ctypes.byref(opts))
        if fd < 0:  # the kernel's own errno stays in __cause__ (probes report it as it is)
            raise from_errno(f"load program {name}", -fd) from OSError(-fd, os.strerror(-fd))
        return cls(name, fd=int(fd), prog_type=prog_type, owns_fd=True)

    @property
    def type(self) -> int:
        if self.handle:
            return int(L.lib.bpf_program__type(self.handle))
        return self._type

    @property
    def type_name(self) -> str:
        return PROG_TYPES.get(self.type, str(self.type))

    @property
    def expected_attach_type(self) -> int:
        return int(L.lib.bpf_program__expected_attach_type(self.handle)) if self.handle else 0

    @property
    def id(self) -> int:
        return int(prog_info(self.require_fd()).id)

    def func_btf_id(self) -> int:
        """The BTF type id of the program's main function (0: loaded without BTF):
        what a tracing program aimed at this one names as its target."""
        records = (ctypes.c_uint32 * 2)()  # struct bpf_func_info {insn_off, type_id}
        info = BpfProgInfo(nr_func_info=1, func_info_rec_size=8, func_info=ctypes.addressof(records))
        size = ctypes.c_uint32(ctypes.sizeof(info))
        if L.lib.bpf_obj_get_info_by_fd(self.require_fd(), ctypes.byref(info), ctypes.byref(size)) < 0:
            return 0
        return int(records[1]) if info.nr_func_info else 0

    # -- before load ------------------------------------------------------------------
    def set_autoload(self, autoload: bool) -> None:
        check(L.lib.bpf_program__set_autoload(self.handle, autoload), f"set autoload of {self.name}")

    def set_expected_attach_type(self, attach_type: int) -> None:
        """Before load. Tail calls need caller and callee to agree on it: the kernel
        refuses (EINVAL) to put a program loaded with BPF_XDP into a PROG_ARRAY
        owned by one loaded with 0, and the other way round."""
        check(L.lib.bpf_program__set_expected_attach_type(self.handle, attach_type),
              f"set expected attach type of {self.name}")

    def insns(self) -> bytes:
        """The program's instructions as libbpf holds them (8 bytes each)."""
        count = L.lib.bpf_program__insn_cnt(self.handle)
        ptr = L.lib.bpf_program__insns(self.handle)
        return ctypes.string_at(ptr, count * 8)

    def set_insns(self, code: bytes) -> None:
        """Replace the instructions before load (libbpf ``bpf_program__set_insns``)."""
        if len(code) % 8:
            raise ValueError("BPF instructions are 8 bytes each")
        buf = (L.BpfInsn * (len(code) // 8)).from_buffer_copy(code)
        check(L.lib.bpf_program__set_insns(self.handle, buf, len(code) // 8),
              f"set instructions of {self.name}")

    # -- after load -------------------------------------------------------------------
    def test_run(self, data: bytes = b"", repeat: int = 1, ctx: bytes | None = None,
                 data_out_size: int | None = None, flags: int = 0, batch_size: int = 0,
                 what: str = "") -> TestRun:
        """Run the program once (or ``repeat`` times) on ``data`` (BPF_PROG_TEST_RUN).

        ``flags``/``batch_size``: BPF_F_TEST_XDP_LIVE_FRAMES sends the frames for real
        (then give ``data_out_size=0``: the kernel refuses an output buffer)."""
        data_in = ctypes.create_string_buffer(data, len(data)) if data else None
        out_size = data_out_size if data_out_size is not None else len(data) + 256
        out = ctypes.create_string_buffer(out_size) if out_size else None
        opts = L.TestRunOpts(sz=ctypes.sizeof(L.TestRunOpts), repeat=repeat, flags=flags,
                             batch_size=batch_size)
        if data_in is not None:
            opts.data_in = ctypes.cast(data_in, ctypes.c_void_p)
            opts.data_size_in = len(data)
        if out is not None:
            opts.data_out = ctypes.cast(out, ctypes.c_void_p)
            opts.data_size_out = out_size
        ctx_buf = None
        if ctx is not None:
            ctx_buf = ctypes.create_string_buffer(ctx, len(ctx))
            opts.ctx_in = ctypes.cast(ctx_buf, ctypes.c_void_p)
            opts.ctx_size_in = len(ctx)
        check(L.lib.bpf_prog_test_run_opts(self.require_fd(), ctypes.byref(opts)),
              what or f"test run of {self.name}")
        data_out = out.raw[: opts.data_size_out] if out is not None else b""
        return TestRun(opts.retval, opts.duration, data_out)

    def pin(self, path: str) -> None:
        check(L.lib.bpf_obj_pin(self.require_fd(), path.encode()), f"pin program {self.name} at {path}")

    def __repr__(self) -> str:
        return f"<Program {self.name} {self.type_name} fd={self.fd}>"
