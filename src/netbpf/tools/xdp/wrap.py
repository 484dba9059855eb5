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

import threading
from pathlib import Path

from ...bpf import insn as I
from ...bpf import sections
from ...bpf.object import BpfObject
from ...bpf.program import Program
from ...errors import NetbpfError, UsageError

BPF_PROG_TYPE_XDP = 6
BPF_XDP = 37
XDP_PASS = 2
FN_MAP_LOOKUP_ELEM = 1
FN_TAIL_CALL = 12


def wrapper(slot: int, chain_next_fd: int, xdp_chain_fd: int, xdp_original_fd: int) -> bytes:
    """The instructions that go in front of the program in ``slot`` (see the module doc)."""
    a = I.Assembler()
    a.mov64(I.R6, I.R1)                                     # keep the context
    a.call("program")                                       # its own code follows the wrapper
    a.jump(I.JNE, "exit", I.R0, imm=XDP_PASS, wide=True)    # DROP, TX, REDIRECT, ABORTED end the chain
    a.store_imm(I.W, I.R10, -4, slot)                       # key = slot
    a.ld_map_fd(I.R1, chain_next_fd)
    a.mov64(I.R2, I.R10)
    a.alu64_imm(I.ADD, I.R2, -4)
    a.call_helper(FN_MAP_LOOKUP_ELEM)                       # r0 = &chain_next[slot]
    a.jump(I.JEQ, "pass", I.R0, imm=0, wide=True)
    a.load(I.W, I.R3, I.R0)                                 # r3 = the next slot (0: end of the chain)
    a.jump(I.JEQ, "original", I.R3, imm=0, wide=True)
    a.mov64(I.R1, I.R6)
    a.ld_map_fd(I.R2, xdp_chain_fd)
    a.call_helper(FN_TAIL_CALL)                             # returns only if the slot is empty
    a.label("original")
    a.mov64(I.R1, I.R6)
    a.ld_map_fd(I.R2, xdp_original_fd)
    a.emit(I.encode(I.ALU64 | I.MOV | I.K, I.R3, imm=0))
    a.call_helper(FN_TAIL_CALL)                             # the program that was there before
    a.label("pass")
    a.emit(I.encode(I.ALU64 | I.MOV | I.K, I.R0, imm=XDP_PASS))
    a.label("exit")
    a.exit()
    a.label("program")
    return a.assemble()


_lock = threading.Lock()  # one wrapped load at a time: SEC("xdp") is claimed for its length
_pending: dict[int, bytes] = {}  # program handle -> wrapper


def _prepare(prog: int, opts: sections.LoadOpts) -> None:
    code = _pending.get(prog)
    if code is None:
        return  # an SEC("xdp") program of another object, opened meanwhile
    program = Program.from_libbpf(prog)
    program.set_insns(code + program.insns())
    # The BTF function and line info describe the layout before the wrapper.
    opts.func_info, opts.func_info_cnt, opts.line_info, opts.line_info_cnt = None, 0, None, 0


def load_wrapped(path: Path, section: str | None, code: bytes, attach_type: int) -> Program:
    """Load the SEC("xdp") program of ``path`` (``section``: its name, when there are
    several) with ``code`` in front; returns it by its own fd (the object is closed)."""
    # Programs refer to the handler's definition from open to close: the
    # object (opened last) is closed before the handler goes.
    with (_lock, sections.registered("xdp", BPF_PROG_TYPE_XDP, attach_type, _prepare) as handler,
          BpfObject.open(path) as obj):
        prog = _choose(obj, path, section)
        obj.load_only(prog.name)
        prog.set_expected_attach_type(attach_type)
        _pending[prog.handle] = code
        try:
            obj.load()
        finally:
            _pending.pop(prog.handle, None)
            error = handler.take_error(prog.handle)
        if error:
            raise NetbpfError(f"cannot wrap {prog.name}: {error}")
        return Program.from_id(prog.id)


class NotChainable(NetbpfError):
    """The object file is not one whose program can be chained (bad input: exit 1)."""


def check_program(path: Path, section: str | None) -> str:
    """The name of the program ``load_wrapped`` would load, or the refusal it
    would meet: checked before anything is put on a hook."""
    try:
        with BpfObject.open(path) as obj:
            prog = _choose(obj, path, section)
            if prog.type != BPF_PROG_TYPE_XDP:
                raise NotChainable(f"{path.name}: {prog.name} is not an XDP program")
            return prog.name
    except (NotChainable, UsageError):
        raise
    except NetbpfError as e:
        raise NotChainable(f"{path}: not a BPF object file libbpf can open ({e})") from e


def _choose(obj: BpfObject, path: Path, section: str | None) -> Program:
    xdp = [p for p in obj.programs.values() if p.section == "xdp"]
    if section:
        for p in obj.programs.values():
            if section in (p.name, p.section):
                if p.section != "xdp":
                    raise NotChainable(f"{path.name}: {p.name} is in SEC(\"{p.section}\"); "
                                     "a chained program must be in SEC(\"xdp\")")
                return p
        raise NotChainable(f"{path.name}: no program or section {section!r} "
                         f"(has: {', '.join(f'{p.name} in {p.section}' for p in obj.programs.values())})")
    if not xdp:
        raise NotChainable(f"{path.name}: no program in SEC(\"xdp\") "
                           f"(has: {', '.join(f'{p.name} in {p.section}' for p in obj.programs.values()) or 'none'})")
    if len(xdp) > 1:
        names = ", ".join(p.name for p in xdp)
        raise UsageError(f"{path.name}: say which program to chain (OBJ:NAME); its SEC(\"xdp\") programs: {names}")
    return xdp[0]
