"""Translate classic BPF (what libpcap compiles tcpdump expressions to) into eBPF.

The result is the body of a BPF-to-BPF subprogram ``u32 f(void *data, void
*data_end)`` that XDP and tc programs call (``netbpf/filter.h``). It returns
the classic program's verdict: 0 for no match, else the bytes to keep.

Packet bytes are read with direct packet access, each load behind its own
bounds check against ``data_end``, as the verifier demands; ``LD_ABS`` and
``LD_IND`` do not exist in XDP. A load past the end of the packet makes the
filter return 0, which is what classic BPF does.

    r6 = data, r7 = data_end       the packet (r1, r2 on entry)
    w8 = A, w9 = X                 classic registers, 32-bit as in classic BPF
    M[0..15] at r10 - 64           scratch memory, zeroed when the program uses it
    r0-r5                          temporaries

Only reachable classic instructions are emitted (the verifier rejects dead
code) and comparisons use 32-bit unsigned jumps, as classic BPF compares.
libpcap's ``protochain`` jumps backwards (a loop over IPv6 extension
headers). The verifier cannot see such a loop end on its own (the offset's
range only widens), so every backward jump counts in r5 and gives up (no
match) after 16 passes: protochain follows at most 16 headers here.
"""
from __future__ import annotations

from collections.abc import Sequence

from ..bpf import insn as E
from ..bpf.errors import UsageError

# classic opcode fields
C_LD, C_LDX, C_ST, C_STX, C_ALU, C_JMP, C_RET, C_MISC = range(8)
C_W, C_H, C_B = 0x00, 0x08, 0x10
C_IMM, C_ABS, C_IND, C_MEM, C_LEN, C_MSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xA0
C_K, C_X, C_A = 0x00, 0x08, 0x10
C_TAX, C_TXA = 0x00, 0x80

SIZES = {C_W: (E.W, 4, 32), C_H: (E.H, 2, 16), C_B: (E.B, 1, 0)}
MAX_PACKET_OFF = 0xFFFF  # the verifier's limit on offsets into a packet
SCRATCH = -64  # M[] on the stack
ALU_OPS = {0x00: E.ADD, 0x10: E.SUB, 0x20: E.MUL, 0x30: E.DIV, 0x40: E.OR, 0x50: E.AND,
           0x60: E.LSH, 0x70: E.RSH, 0x80: E.NEG, 0x90: E.MOD, 0xA0: E.XOR}
JUMP_OPS = {0x10: E.JEQ, 0x20: E.JGT, 0x30: E.JGE, 0x40: E.JSET}
INVERSE = {E.JEQ: E.JNE, E.JGT: E.JLE, E.JGE: E.JLT}

A, X, DATA, END = E.R8, E.R9, E.R6, E.R7
LOOPS = E.R5  # passes through backward jumps so far
MAX_LOOPS = 16

Classic = Sequence[tuple[int, int, int, int]]


class TranslationError(UsageError):
    pass


def _successors(i: int, ins: tuple[int, int, int, int], n: int) -> list[int]:
    code, jt, jf, k = ins
    cls = code & 0x07
    if cls == C_RET:
        return []
    if cls == C_JMP:
        if code & 0xF0 == 0x00:  # JA: k is a signed offset (libpcap's protochain loops back)
            return [i + 1 + _signed(k)]
        return [i + 1 + jt, i + 1 + jf]
    if _always_out_of_bounds(ins):
        return []
    return [i + 1]


def _signed(k: int) -> int:
    return k - (1 << 32) if k & 0x80000000 else k


def _always_out_of_bounds(ins: tuple[int, int, int, int]) -> bool:
    code, _, _, k = ins
    cls, mode = code & 0x07, code & 0xE0
    if cls == C_LD and mode in (C_ABS, C_IND):
        return k + SIZES[code & 0x18][1] > MAX_PACKET_OFF
    if cls == C_LDX and mode == C_MSH:
        return k + 1 > MAX_PACKET_OFF
    return False


def reachable(prog: Classic) -> list[bool]:
    n = len(prog)
    seen = [False] * n
    stack = [0] if n else []
    while stack:
        i = stack.pop()
        if not 0 <= i < n:
            raise TranslationError(f"classic BPF jumps outside the program (to insn {i})")
        if seen[i]:
            continue
        seen[i] = True
        stack.extend(_successors(i, prog[i], n))
    return seen


def translate(prog: Classic) -> bytes:
    """eBPF instructions for the classic program ``prog`` (see the module docstring)."""
    if not prog:
        raise TranslationError("empty classic BPF program")
    live = reachable(prog)
    asm = E.Assembler()
    asm.mov64(DATA, E.R1)
    asm.mov64(END, E.R2)
    asm.mov32_imm(A, 0)
    asm.mov32_imm(X, 0)
    if any(live[i] and ins[0] & 0x07 == C_JMP and ins[0] & 0xF0 == 0 and _signed(ins[3]) < 0
           for i, ins in enumerate(prog)):
        asm.mov32_imm(LOOPS, 0)
    if any(live[i] and (ins[0] & 0x07) in (C_LD, C_LDX) and ins[0] & 0xE0 == C_MEM
           for i, ins in enumerate(prog)):
        # Classic BPF reads scratch memory as zero before any store; the verifier
        # rejects reads of uninitialised stack.
        for slot in range(0, 64, 8):
            asm.store_imm(E.DW, E.R10, SCRATCH + slot, 0)
    needs_ret0 = False
    for i, ins in enumerate(prog):
        if not live[i]:
            continue
        asm.label(f"i{i}")
        needs_ret0 |= _emit(asm, i, ins, live)
    if needs_ret0:
        asm.label("ret0")
        asm.mov32_imm(E.R0, 0)
        asm.exit()
    return asm.assemble()


def _packet_pointer(asm: E.Assembler, k: int, size: int, indexed: bool) -> None:
    """r1 = data + [X +] k, checked so that r1 + size <= data_end; else return 0."""
    asm.mov64(E.R1, DATA)
    if indexed:
        # Bound X first: the verifier needs a known range for a variable
        # offset into the packet, and no packet is 64 KiB long here.
        asm.mov32(E.R2, X)
        asm.jump(E.JGT, "ret0", E.R2, imm=MAX_PACKET_OFF - k - size, wide=True)
        asm.alu64(E.ADD, E.R1, E.R2)
    if k:
        asm.alu64_imm(E.ADD, E.R1, k)
    asm.mov64(E.R3, E.R1)
    asm.alu64_imm(E.ADD, E.R3, size)
    asm.jump(E.JGT, "ret0", E.R3, src=END, wide=True)


def _emit(asm: E.Assembler, i: int, ins: tuple[int, int, int, int], live: list[bool]) -> bool:
    """Emit one classic instruction; True when it may return 0 through ``ret0``."""
    code, jt, jf, k = ins
    cls = code & 0x07
    nxt = f"i{i + 1}"

    if cls in (C_LD, C_LDX):
        dst = A if cls == C_LD else X
        mode = code & 0xE0
        if mode == C_IMM:
            asm.mov32_imm(dst, k)
        elif mode == C_MEM:
            _check_slot(k)
            asm.load(E.W, dst, E.R10, SCRATCH + 4 * k)
        elif mode == C_LEN:
            # pkt_end - pkt: allowed to privileged loaders, which netbpf needs anyway.
            asm.mov64(dst, END)
            asm.alu64(E.SUB, dst, DATA)
            asm.mov32(dst, dst)
        elif cls == C_LD and mode in (C_ABS, C_IND):
            size_code, size, bits = SIZES[code & 0x18]
            if k >= 0x80000000:
                raise TranslationError("Linux ancillary loads (SKF_AD_*) are not supported in XDP/tc")
            if _always_out_of_bounds(ins):
                asm.goto("ret0")
                return True
            _packet_pointer(asm, k, size, indexed=mode == C_IND)
            asm.load(size_code, A, E.R1)
            if bits:
                asm.to_be(A, bits)
            return True
        elif cls == C_LDX and mode == C_MSH:
            if _always_out_of_bounds(ins):
                asm.goto("ret0")
                return True
            _packet_pointer(asm, k, 1, indexed=False)
            asm.load(E.B, X, E.R1)
            asm.alu32_imm(E.AND, X, 0x0F)
            asm.alu32_imm(E.LSH, X, 2)
            return True
        else:
            raise TranslationError(f"unsupported classic load 0x{code:02x} at {i}")
        return False

    if cls in (C_ST, C_STX):
        _check_slot(k)
        asm.store(E.W, E.R10, SCRATCH + 4 * k, A if cls == C_ST else X)
        return False

    if cls == C_ALU:
        op = ALU_OPS.get(code & 0xF0)
        if op is None:
            raise TranslationError(f"unsupported classic ALU op 0x{code:02x} at {i}")
        if op == E.NEG:
            asm.alu32_imm(E.NEG, A, 0)
            return False
        if code & C_X:
            if op in (E.DIV, E.MOD):
                asm.jump(E.JEQ, "ret0", X, imm=0)  # classic BPF: division by zero rejects
                asm.alu32(op, A, X)
                return True
            asm.alu32(op, A, X)
            return False
        if op in (E.DIV, E.MOD) and k == 0:
            asm.goto("ret0")
            return True
        if op in (E.LSH, E.RSH) and k >= 32:
            asm.mov32_imm(A, 0)  # what a 32-bit shift by 32 or more leaves in classic BPF
            return False
        asm.alu32_imm(op, A, k)
        return False

    if cls == C_JMP:
        if code & 0xF0 == 0x00:  # JA
            if _signed(k) < 0:
                asm.alu64_imm(E.ADD, LOOPS, 1)
                asm.jump(E.JGT, "ret0", LOOPS, imm=MAX_LOOPS, wide=True)
                asm.goto(f"i{i + 1 + _signed(k)}")
                return True
            asm.goto(f"i{i + 1 + k}")
            return False
        op = JUMP_OPS.get(code & 0xF0)
        if op is None:
            raise TranslationError(f"unsupported classic jump 0x{code:02x} at {i}")
        true, false = f"i{i + 1 + jt}", f"i{i + 1 + jf}"
        src = X if code & C_X else None
        if true == false:
            asm.goto(true)
        elif true == nxt and op in INVERSE:
            asm.jump(INVERSE[op], false, A, src=src, imm=k)  # fall through to the true branch
        else:
            asm.jump(op, true, A, src=src, imm=k)
            if false != nxt:
                asm.goto(false)
        return False

    if cls == C_RET:
        rval = code & 0x18
        if rval == C_K:
            asm.mov32_imm(E.R0, k)
        elif rval == C_A:
            asm.mov32(E.R0, A)
        else:
            asm.mov32(E.R0, X)
        asm.exit()
        return False

    if cls == C_MISC:
        if code & 0xF8 == C_TAX:
            asm.mov32(X, A)
        elif code & 0xF8 == C_TXA:
            asm.mov32(A, X)
        else:
            raise TranslationError(f"unsupported classic misc op 0x{code:02x} at {i}")
        return False

    raise TranslationError(f"unknown classic instruction 0x{code:02x} at {i}")


def _check_slot(k: int) -> None:
    if not 0 <= k < 16:
        raise TranslationError(f"scratch memory index {k} out of range")
