"""Load a user's XDP program behind netbpf's chain wrapper.

A tail call never returns, so a program that was tail-called cannot hand
the packet on by itself. netbpf therefore loads each chained program from
its object file with a few instructions in front (the wrapper) that call the
program as a BPF-to-BPF function, keep its verdict, and on XDP_PASS
tail-call the next slot of the chain:

    r6 = r1                      keep the context
    call <the program>           its own code follows the wrapper, unchanged
    if r0 != XDP_PASS: exit      DROP, TX, REDIRECT, ABORTED end the chain
    next = chain_next[SLOT]      the slot after this one (0: end of the chain)
    if next: tail_call(ctx, xdp_chain, next)
    tail_call(ctx, xdp_original, 0)   the program that was there before
    return XDP_PASS

The instructions are put in place by a libbpf section handler for SEC("xdp")
(registered only while the object is opened and loaded): its prepare-load
callback runs after relocation, so the program's own code, subprograms and
map references are final, and all of them are addressed relatively, so
prepending the wrapper moves nothing. The BTF function and line info of the
original layout no longer describe the program and are left out of the
load: the kernel then verifies the program's functions as static ones.
"""
from __future__ import annotations

import ctypes
import struct
import threading
from pathlib import Path

from ...bpf import _libbpf as L
from ...bpf.object import BpfObject
from ...bpf.program import Program
from ...errors import NetbpfError, UsageError

BPF_PROG_TYPE_XDP = 6
BPF_XDP = 37
XDP_PASS = 2
BPF_PSEUDO_MAP_FD = 1
BPF_PSEUDO_CALL = 1
FN_MAP_LOOKUP_ELEM = 1
FN_TAIL_CALL = 12


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, src << 4 | dst, off, imm)


def _ld_map_fd(dst: int, fd: int) -> bytes:
    return _insn(0x18, dst, BPF_PSEUDO_MAP_FD, 0, fd) + _insn(0, 0, 0, 0, 0)


def wrapper(slot: int, chain_next_fd: int, xdp_chain_fd: int, xdp_original_fd: int) -> bytes:
    """The instructions that go in front of the program in ``slot`` (see the module doc)."""
    code = [
        _insn(0xBF, 6, 1),                                  # 0: r6 = r1
        b"CALL",                                            # 1: call the program
        _insn(0x55, 0, 0, 19, XDP_PASS),                    # 2: if r0 != PASS goto 22 (exit)
        _insn(0x62, 10, 0, -4, slot),                       # 3: *(u32 *)(r10 - 4) = slot
        _ld_map_fd(1, chain_next_fd),                       # 4-5: r1 = chain_next
        _insn(0xBF, 2, 10),                                 # 6: r2 = r10
        _insn(0x07, 2, 0, 0, -4),                           # 7: r2 += -4
        _insn(0x85, 0, 0, 0, FN_MAP_LOOKUP_ELEM),           # 8: r0 = lookup
        _insn(0x15, 0, 0, 11, 0),                           # 9: if r0 == 0 goto 21 (pass)
        _insn(0x61, 3, 0, 0, 0),                            # 10: r3 = *(u32 *)r0
        _insn(0x15, 3, 0, 4, 0),                            # 11: if r3 == 0 goto 16 (original)
        _insn(0xBF, 1, 6),                                  # 12: r1 = r6
        _ld_map_fd(2, xdp_chain_fd),                        # 13-14: r2 = xdp_chain
        _insn(0x85, 0, 0, 0, FN_TAIL_CALL),                 # 15: tail call (returns if empty)
        _insn(0xBF, 1, 6),                                  # 16: r1 = r6
        _ld_map_fd(2, xdp_original_fd),                     # 17-18: r2 = xdp_original
        _insn(0xB7, 3, 0, 0, 0),                            # 19: r3 = 0
        _insn(0x85, 0, 0, 0, FN_TAIL_CALL),                 # 20: tail call
        _insn(0xB7, 0, 0, 0, XDP_PASS),                     # 21: r0 = XDP_PASS
        _insn(0x95),                                        # 22: exit
    ]
    length = sum(len(c) // 8 if c != b"CALL" else 1 for c in code)
    call = _insn(0x85, 0, BPF_PSEUDO_CALL, 0, length - 2)  # pc 1 -> pc `length`
    return b"".join(call if c == b"CALL" else c for c in code)


# int (*)(struct bpf_program *, struct bpf_prog_load_opts *, long cookie)
_PREPARE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(L.ProgLoadOpts), ctypes.c_long)


class _HandlerOpts(ctypes.Structure):
    _fields_ = [("sz", ctypes.c_size_t), ("cookie", ctypes.c_long), ("prog_setup_fn", ctypes.c_void_p),
                ("prog_prepare_load_fn", _PREPARE_FN), ("prog_attach_fn", ctypes.c_void_p)]


# Own prototypes (netbpf.bpf.inject binds the same functions with its own struct type).
_register = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p)(
    ("libbpf_register_prog_handler", L.lib))
_unregister = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(("libbpf_unregister_prog_handler", L.lib))
_lock = threading.Lock()
_pending: dict[int, bytes] = {}  # program handle -> wrapper
_errors: dict[int, str] = {}


def _prepare(prog: int, opts: ctypes._Pointer, cookie: int) -> int:  # type: ignore[type-arg]
    code = _pending.get(prog)
    if code is None:
        return 0
    try:
        count = L.lib.bpf_program__insn_cnt(prog)
        final = ctypes.string_at(L.lib.bpf_program__insns(prog), count * 8)
        new = code + final
        buf = (L.BpfInsn * (len(new) // 8)).from_buffer_copy(new)
        ret = int(L.lib.bpf_program__set_insns(prog, buf, len(new) // 8))
        if ret < 0:
            _errors[prog] = f"bpf_program__set_insns: error {-ret}"
            return ret
        o = opts.contents
        o.func_info, o.func_info_cnt, o.line_info, o.line_info_cnt = None, 0, None, 0
        return 0
    except Exception as e:  # never raise into C
        _errors[prog] = str(e)
        return -22


_prepare_c = _PREPARE_FN(_prepare)  # kept referenced while libbpf may call it


def load_wrapped(path: Path, section: str | None, code: bytes, attach_type: int) -> Program:
    """Load the SEC("xdp") program of ``path`` (``section``: its name, when there are
    several) with ``code`` in front; returns it by its own fd (the object is closed)."""
    opts = _HandlerOpts(sz=ctypes.sizeof(_HandlerOpts), prog_prepare_load_fn=_prepare_c)
    with _lock:  # libbpf's handler registry is global and not thread-safe
        handler = _register(b"xdp", BPF_PROG_TYPE_XDP, attach_type, ctypes.addressof(opts))
        if handler < 0:
            raise NetbpfError(f"libbpf refused a section handler for SEC(\"xdp\"): error {-handler}")
        try:
            # Programs refer to the handler's definition from open to close: the
            # object is closed before the handler goes.
            with BpfObject.open(path) as obj:
                prog = _choose(obj, path, section)
                for other in obj.programs.values():
                    other.set_autoload(other is prog)
                prog.set_expected_attach_type(attach_type)
                _pending[prog.handle] = code
                try:
                    obj.load()
                finally:
                    _pending.pop(prog.handle, None)
                    error = _errors.pop(prog.handle, "")
                if error:
                    raise NetbpfError(f"cannot wrap {prog.name}: {error}")
                return Program.from_id(prog.id)
        finally:
            _unregister(handler)


def check_program(path: Path, section: str | None) -> str:
    """The name of the program ``load_wrapped`` would load, or the UsageError it
    would meet: checked before anything is put on a hook."""
    try:
        with BpfObject.open(path) as obj:
            prog = _choose(obj, path, section)
            if L.lib.bpf_program__type(prog.handle) != BPF_PROG_TYPE_XDP:
                raise UsageError(f"{path.name}: {prog.name} is not an XDP program")
            return prog.name
    except UsageError:
        raise
    except NetbpfError as e:
        raise UsageError(f"{path}: not a BPF object file libbpf can open ({e})") from e


def _choose(obj: BpfObject, path: Path, section: str | None) -> Program:
    xdp = [p for p in obj.programs.values() if p.section == "xdp"]
    if section:
        for p in obj.programs.values():
            if section in (p.name, p.section):
                if p.section != "xdp":
                    raise UsageError(f"{path.name}: {p.name} is in SEC(\"{p.section}\"); "
                                     "a chained program must be in SEC(\"xdp\")")
                return p
        raise UsageError(f"{path.name}: no program or section {section!r} "
                         f"(has: {', '.join(f'{p.name} in {p.section}' for p in obj.programs.values())})")
    if len(xdp) != 1:
        names = ", ".join(p.name for p in xdp) or "none"
        raise UsageError(f"{path.name}: say which program to chain (OBJ:NAME); its SEC(\"xdp\") programs: {names}")
    return xdp[0]
