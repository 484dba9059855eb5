"""Put generated code (a compiled tcpdump filter) into a program before load.

Programs in ``SEC("netbpf/xdp")`` and ``SEC("netbpf/tc")`` are handled by
netbpf's own libbpf section handlers (registered in bpf/sections.py). Their prepare-load callback runs after
libbpf has relocated the program (map fds in place, subprograms appended)
and just before BPF_PROG_LOAD: there the body of the ``netbpf_filter`` stub
(``netbpf/filter.h``) is replaced by the given instructions with
``bpf_program__set_insns``, which is what libbpf documents that call for.

The stub must be the program's only subprogram, so that it sits last and its
body can change length without moving anything else. The replacement is
never shorter than the stub (it is padded with ``ja +0``), so that the
stub's BTF line info keeps pointing inside the program.
"""
from __future__ import annotations

import struct
import threading
from dataclasses import dataclass

from ..errors import NetbpfError
from . import _libbpf as L
from . import sections
from .program import Program

BPF_PROG_TYPE_SCHED_CLS = 3
BPF_PROG_TYPE_XDP = 6
BPF_XDP = 37
BPF_PSEUDO_CALL = 1
BPF_PSEUDO_FUNC = 4
JA_0 = struct.pack("<BBhi", 0x05, 0, 0, 0)

SECTIONS = {"netbpf/xdp": (BPF_PROG_TYPE_XDP, BPF_XDP), "netbpf/tc": (BPF_PROG_TYPE_SCHED_CLS, 0)}


class InjectError(NetbpfError):
    pass


@dataclass
class _Patch:
    name: str
    main_len: int  # the entry program's own instructions, before libbpf appends subprograms
    code: bytes
    error: str = ""


_patches: dict[int, _Patch] = {}
_lock = threading.Lock()

def splice(final: bytes, main_len: int, code: bytes) -> bytes:
    """The relocated program with the stub (everything after ``main_len``) replaced."""
    count = len(final) // 8
    stub_len = count - main_len
    if stub_len <= 0:
        raise InjectError("the program does not call netbpf_filter()")
    for i in range(main_len):
        opcode, regs, _off, imm = struct.unpack_from("<BBhi", final, i * 8)
        src = regs >> 4
        if opcode == 0x85 and src == BPF_PSEUDO_CALL and i + imm + 1 != main_len:
            raise InjectError("netbpf_filter must be the program's only subprogram "
                              f"(a call at insn {i} goes to {i + imm + 1})")
        if opcode == 0x18 and src == BPF_PSEUDO_FUNC:
            raise InjectError("programs with a filter cannot use callbacks (bpf_loop...)")
    if not any(struct.unpack_from("<BBhi", final, i * 8)[0] == 0x85
               and struct.unpack_from("<BBhi", final, i * 8)[1] >> 4 == BPF_PSEUDO_CALL
               for i in range(main_len)):
        raise InjectError("the program does not call netbpf_filter()")
    if len(code) % 8:
        raise InjectError("generated code is not a whole number of instructions")
    padding = max(0, stub_len - len(code) // 8)
    return final[:main_len * 8] + JA_0 * padding + code


def _prepare(prog: int, opts: L.ProgLoadOpts) -> None:
    with _lock:
        patch = _patches.get(prog)
    if patch is None:
        return
    try:
        program = Program.from_libbpf(prog)
        program.set_insns(splice(program.insns(), patch.main_len, patch.code))
    except Exception as e:  # reported after load (take_error), with the program's name
        patch.error = str(e)
        raise


# For the process lifetime: programs in these sections may be opened at any time.
_handlers = [sections.register(section, prog_type, attach_type, _prepare)
             for section, (prog_type, attach_type) in SECTIONS.items()]


def set_code(prog: Program, code: bytes) -> None:
    """Replace the body of ``netbpf_filter`` in ``prog`` with ``code`` at load."""
    if prog.fd >= 0:
        raise InjectError(f"{prog.name} is already loaded")
    if prog.section not in SECTIONS:
        raise InjectError(f"{prog.name}: only programs in SEC(\"netbpf/xdp\") or SEC(\"netbpf/tc\") "
                          f"can be given a filter (this one is in {prog.section!r})")
    main_len = int(L.lib.bpf_program__insn_cnt(prog.handle))
    with _lock:
        _patches[prog.handle] = _Patch(prog.name, main_len, code)


def take_error(prog_handle: int) -> str:
    """What went wrong while patching a program (after a failed load), and forget it."""
    with _lock:
        patch = _patches.pop(prog_handle, None)
    for handler in _handlers:
        handler.take_error(prog_handle)  # the same error, kept by the registry too
    return patch.error if patch else ""


def forget(prog_handle: int) -> None:
    with _lock:
        _patches.pop(prog_handle, None)
