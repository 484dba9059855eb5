"""The assembler's calls and map references, and xdp chain's wrapper built with it."""
from __future__ import annotations

from netbpf.bpf import insn as I
from netbpf.tools.xdp.wrap import FN_TAIL_CALL, XDP_PASS, wrapper


def test_call_and_map_reference_encode_as_the_kernel_reads_them() -> None:
    a = I.Assembler()
    a.call("f")
    a.ld_map_fd(I.R1, 7)
    a.call_helper(12)
    a.exit()
    a.label("f")
    a.exit()
    code = I.decode(a.assemble())
    assert code[0] == (0x85, 0, I.PSEUDO_CALL, 0, 4)  # imm: from the next instruction to f
    assert code[1] == (0x18, I.R1, I.PSEUDO_MAP_FD, 0, 7) and code[2] == (0, 0, 0, 0, 0)
    assert code[3] == (0x85, 0, 0, 0, 12)


def test_wrapper_calls_the_program_after_it_and_every_jump_lands_inside() -> None:
    raw = wrapper(5, 100, 200, 300)
    code = I.decode(raw)
    n = len(code)
    call = code[1]
    assert call[0] == 0x85 and call[2] == I.PSEUDO_CALL and 1 + call[4] + 1 == n  # the program follows
    for pc, (op, _dst, _src, off, _imm) in enumerate(code):
        if op & 0x07 in (I.JMP, I.JMP32) and op & 0xF0 not in (I.CALL, I.EXIT):
            assert 0 <= pc + off + 1 < n, pc
    assert code[-1][0] == I.JMP | I.EXIT
    # A verdict other than XDP_PASS goes straight to exit.
    assert code[2][0] == I.JMP | I.JNE | I.K and code[2][4] == XDP_PASS and 2 + code[2][3] + 1 == n - 1
    maps = [imm for op, _d, src, _o, imm in code if op == 0x18 and src == I.PSEUDO_MAP_FD]
    assert maps == [100, 200, 300]
    assert sum(1 for op, *_rest, imm in code if op == 0x85 and imm == FN_TAIL_CALL) == 2
    assert (0x62, I.R10, 0, -4, 5) in code  # the slot is the lookup key
