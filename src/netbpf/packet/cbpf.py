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
Where eBPF and libpcap's ``bpf_filter`` differ, the translation does what
libpcap does: a shift by X >= 32 leaves 0 (eBPF masks the count), division
or modulo by X == 0 returns 0, a load past the end returns 0.

libpcap's ``protochain`` jumps backwards (a loop over IPv6 extension
headers). The verifier walks every pass of such a loop, so each loop head
counts its passes on the stack and stops after ``max_passes`` (440 for one
loop in a program: every header the largest frame XDP sees can hold); a
packet whose chain goes on past that is KEPT, never silently missed. At each
back edge the verifier is made to forget A, X and M[] (``_forget_values``),
which keeps its work linear in the number of passes.

Linux's ancillary loads (``inbound``, ``outbound``, ``ifindex``) are values
the hook knows for every packet (``ancillary``): the direction at tc, the
interface everywhere; without a value they are refused in one line.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..bpf import insn as E
from ..errors import UsageError

# classic opcode fields
C_LD, C_LDX, C_ST, C_STX, C_ALU, C_JMP, C_RET, C_MISC = range(8)
C_W, C_H, C_B = 0x00, 0x08, 0x10
C_IMM, C_ABS, C_IND, C_MEM, C_LEN, C_MSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xA0
C_K, C_X, C_A = 0x00, 0x08, 0x10
C_TAX, C_TXA = 0x00, 0x80

SIZES = {C_W: (E.W, 4, 32), C_H: (E.H, 2, 16), C_B: (E.B, 1, 0)}
MAX_PACKET_OFF = 0xFFFF  # the verifier's limit on offsets into a packet
SCRATCH = -64  # M[] on the stack
FORGET = -68  # a word the verifier does not track (see _forget_values)
PASSES = -80  # one pass counter per loop head (target of backward jumps), downwards
ALU_OPS = {0x00: E.ADD, 0x10: E.SUB, 0x20: E.MUL, 0x30: E.DIV, 0x40: E.OR, 0x50: E.AND,
           0x60: E.LSH, 0x70: E.RSH, 0x80: E.NEG, 0x90: E.MOD, 0xA0: E.XOR}
JUMP_OPS = {0x10: E.JEQ, 0x20: E.JGT, 0x30: E.JGE, 0x40: E.JSET}
INVERSE = {E.JEQ: E.JNE, E.JGT: E.JLE, E.JGE: E.JLT}

A, X, DATA, END = E.R8, E.R9, E.R6, E.R7
LOOPS = E.R5  # passes through one backward jump so far
# Every IPv6 extension header (and AH) takes 8 bytes or more: 440 passes follow
# every header that the largest frame XDP sees (3,520 bytes) can hold.
MAX_LOOPS = 440
# The verifier walks every pass of every loop on one path and gives up after
# 8,192 pending branches (about 13 per pass): loops in one program share this
# (two protochains in one expression follow 300 headers each).
MAX_PASSES_ALL_LOOPS = 600


def loop_heads(prog: Classic) -> list[int]:
    """The targets of backward jumps (each a loop, libpcap's protochain)."""
    live = reachable(prog)
    return sorted({i + 1 + _signed(ins[3]) for i, ins in enumerate(prog)
                   if live[i] and ins[0] & 0x07 == C_JMP and ins[0] & 0xF0 == 0 and _signed(ins[3]) < 0})


def max_passes(loops: int) -> int:
    """How many passes each of ``loops`` loops in one program may make."""
    return min(MAX_LOOPS, MAX_PASSES_ALL_LOOPS // max(loops, 1))

Classic = Sequence[tuple[int, int, int, int]]

# Linux's ancillary loads (linux/filter.h), which libpcap emits for Linux-only
# primitives: ``inbound``/``outbound`` read the packet type, ``ifindex`` the interface.
SKF_AD_OFF = 0xFFFFF000
SKF_AD_PKTTYPE, SKF_AD_IFINDEX = 4, 8
PACKET_HOST, PACKET_OUTGOING = 0, 4
_ANCILLARY_WORDS = {SKF_AD_PKTTYPE: "inbound/outbound: the packet's direction is not known at this "
                                    "hook (--hook tc-ingress and tc-egress know it)",
                    SKF_AD_IFINDEX: "ifindex: the interface is not known here"}


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
    if cls == C_LD and mode == C_ABS and k >= SKF_AD_OFF:
        return False  # an ancillary load: a value the hook knows, or refused
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


def filter_reach(insns: Classic) -> dict[str, int]:
    """How far into a packet a classic program may read (the tc program's
    filter_* globals). In tc only the linear part of an skb is visible, so
    the program makes that much linear first, and no more.

    ``len`` must see the whole packet (the filter reads it as the linear
    length), and so must a load after an X the program computes (libpcap's
    ``protochain``); otherwise X is libpcap's IPv4 header length (``ldx
    4*([k]&0xf)``, known per packet) or a constant.
    """
    abs_end = ind_end = x_max = 0
    x_ipv4 = whole = False
    for code, _jt, _jf, k in insns:
        cls, mode = code & 0x07, code & 0xE0
        if cls in (C_LD, C_LDX) and mode == C_LEN:
            whole = True
        elif cls == C_LD and mode == C_ABS:
            abs_end = max(abs_end, k + SIZES[code & 0x18][1])
        elif cls == C_LD and mode == C_IND:
            ind_end = max(ind_end, k + SIZES[code & 0x18][1])
        elif cls == C_LDX and mode == C_MSH:
            x_ipv4, x_max = True, max(x_max, 60)
        elif cls == C_LDX and mode == C_IMM:
            x_max = max(x_max, k)
        elif cls == C_LDX or (cls == C_MISC and code & 0xF8 == 0):  # ldx M[k], tax: X computed
            whole = whole or any(c & 0x07 == C_LD and c & 0xE0 == C_IND for c, *_ in insns)
    if x_ipv4 and any(c & 0x07 == C_LDX and c & 0xE0 == C_IMM for c, *_ in insns):
        x_ipv4 = False  # X is not always the header length: assume the largest
    return {"filter_abs_end": abs_end, "filter_ind_end": ind_end, "filter_x_max": x_max,
            "filter_x_ipv4": int(x_ipv4), "filter_whole": int(whole)}


def translate(prog: Classic, ancillary: Mapping[int, int] | None = None) -> bytes:
    """eBPF instructions for the classic program ``prog`` (see the module docstring).

    ``ancillary`` gives the value of each Linux ancillary load (``SKF_AD_*``,
    keyed by offset) that the hook knows for every packet it sees, such as
    the direction at tc; any other ancillary load is refused.
    """
    if not prog:
        raise TranslationError("empty classic BPF program")
    live = reachable(prog)
    asm = E.Assembler()
    asm.mov64(DATA, E.R1)
    asm.mov64(END, E.R2)
    asm.mov32_imm(A, 0)
    asm.mov32_imm(X, 0)
    heads = loop_heads(prog)
    loops = bool(heads)
    for n in range(len(heads)):
        asm.store_imm(E.DW, E.R10, PASSES - 8 * n, 0)
    slots = sorted({ins[3] for i, ins in enumerate(prog) if live[i] and (
        ((ins[0] & 0x07) in (C_LD, C_LDX) and ins[0] & 0xE0 == C_MEM) or (ins[0] & 0x07) in (C_ST, C_STX))})
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
        needs_ret0 |= _emit(asm, i, ins, live, ancillary or {}, slots, heads)
    if needs_ret0:
        asm.label("ret0")
        asm.mov32_imm(E.R0, 0)
        asm.exit()
    if loops:
        # Past MAX_LOOPS passes the packet is kept (with the largest length the
        # program returns): a capture shows one packet too many, never one too few.
        asm.label("keep")
        asm.mov32_imm(E.R0, max((k for code, _, _, k in prog if code & 0x07 == C_RET and code & 0x18 == C_K),
                                default=0xFFFFFFFF))
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


def _emit(asm: E.Assembler, i: int, ins: tuple[int, int, int, int], live: list[bool],
          ancillary: Mapping[int, int], slots: Sequence[int] = (), heads: Sequence[int] = ()) -> bool:
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
            if k >= SKF_AD_OFF and mode == C_ABS:
                if k - SKF_AD_OFF not in ancillary:
                    raise TranslationError(_ancillary_refusal(k - SKF_AD_OFF))
                asm.mov32_imm(A, ancillary[k - SKF_AD_OFF])
                return False
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
            if op in (E.LSH, E.RSH):
                # libpcap's bpf_filter: a shift by 32 or more leaves 0; eBPF masks
                # the count to 5 bits (A << 33 would be A << 1).
                asm.jump(E.JLT, f"shift{i}", X, imm=32)
                asm.mov32_imm(A, 0)
                asm.goto(nxt)
                asm.label(f"shift{i}")
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
                _forget_values(asm, slots)
                counter = PASSES - 8 * heads.index(i + 1 + _signed(k))
                asm.load(E.DW, LOOPS, E.R10, counter)
                asm.alu64_imm(E.ADD, LOOPS, 1)
                asm.store(E.DW, E.R10, counter, LOOPS)
                asm.jump(E.JGT, "keep", LOOPS, imm=max_passes(len(heads)), wide=True)
                asm.goto(f"i{i + 1 + _signed(k)}")
                return False
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


def _forget_values(asm: E.Assembler, slots: Sequence[int]) -> None:
    """Make the verifier forget what it knows of A, X and M[] (the values stay).

    A 32-bit store at a stack offset that is not a multiple of 8 is not
    tracked as a register spill: reading it back gives an unknown scalar. At
    the back edge of a loop every path then reaches the loop head in the same
    state but for the pass counter, so the verifier prunes all but one path
    per pass and checks a long loop in linear time. Safety does not depend on
    the forgotten ranges: every packet load checks its own offset at run time.
    """
    for slot in slots:
        _check_slot(slot)
        asm.load(E.W, E.R0, E.R10, SCRATCH + 4 * slot)
        asm.store(E.W, E.R10, FORGET, E.R0)
        asm.load(E.W, E.R0, E.R10, FORGET)
        asm.store(E.W, E.R10, SCRATCH + 4 * slot, E.R0)
    for reg in (A, X):
        asm.store(E.W, E.R10, FORGET, reg)
        asm.load(E.W, reg, E.R10, FORGET)


def _ancillary_refusal(offset: int) -> str:
    what = _ANCILLARY_WORDS.get(offset)
    if what is None:
        return f"Linux ancillary load SKF_AD_OFF+{offset} is not supported in XDP/tc"
    return what


def _check_slot(k: int) -> None:
    if not 0 <= k < 16:
        raise TranslationError(f"scratch memory index {k} out of range")
