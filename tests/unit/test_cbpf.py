"""The classic-to-eBPF translator's structure (its verdicts are checked against libpcap in
tests/kernel/test_filter.py, where the kernel runs the result)."""
from __future__ import annotations

import pytest

from netbpf.bpf import insn as E
from netbpf.errors import FilterError
from netbpf.packet import cbpf
from netbpf.packet.filter import compile_filter
from netbpf.packet.libpcap import compile_classic

RET_K = 0x06
LD_H_ABS = 0x28
JEQ_K = 0x15
JA = 0x05


def ops(code: bytes) -> list[int]:
    return [c for c, *_ in E.decode(code)]


def test_prologue_saves_the_packet_and_clears_the_registers() -> None:
    code = E.decode(cbpf.translate(compile_classic("tcp").insns))
    assert code[0][:3] == (E.ALU64 | E.MOV | E.X, E.R6, E.R1)
    assert code[1][:3] == (E.ALU64 | E.MOV | E.X, E.R7, E.R2)
    assert code[-1][0] == E.JMP | E.EXIT


def test_unreachable_classic_instructions_are_not_emitted() -> None:
    # ret #1; then an instruction nobody can reach (the verifier would reject it).
    prog = [(RET_K, 0, 0, 1), (LD_H_ABS, 0, 0, 12), (RET_K, 0, 0, 0)]
    assert cbpf.reachable(prog) == [True, False, False]
    code = E.decode(cbpf.translate(prog))
    assert sum(1 for c in code if c[0] == E.JMP | E.EXIT) == 1
    assert not any(c[0] == E.LDX | E.MEM | E.H for c in code)


def test_every_packet_load_is_bounds_checked() -> None:
    code = E.decode(cbpf.translate(compile_classic("ip[8] = 64").insns))
    loads = [i for i, c in enumerate(code) if c[0] & 0x07 == E.LDX and c[2] == E.R1]
    assert loads
    for i in loads:  # a JGT against data_end (r7) right before each packet load
        window = code[max(0, i - 3):i]
        assert any(c[0] == E.JMP | E.JGT | E.X and c[2] == E.R7 for c in window)


def test_loads_beyond_the_verifier_limit_return_no_match() -> None:
    prog = [(0x20, 0, 0, 0x10000), (RET_K, 0, 0, 1)]  # ld [65536]
    code = cbpf.translate(prog)
    assert E.decode(code)[-1][0] == E.JMP | E.EXIT  # through ret0


def test_backward_jumps_are_bounded() -> None:
    code = E.decode(compile_filter("ip6 protochain 6").ebpf)
    assert any(c[0] == E.JMP | E.JGT | E.K and c[1] == cbpf.LOOPS and c[4] == cbpf.MAX_LOOPS for c in code)


def test_jumps_out_of_the_program_are_refused() -> None:
    with pytest.raises(cbpf.TranslationError, match="outside the program"):
        cbpf.translate([(JEQ_K, 5, 0, 1), (RET_K, 0, 0, 0)])


def test_words_are_joined_like_tcpdump() -> None:
    assert compile_filter(["tcp", "port", "80"]).expression == "tcp port 80"


@pytest.mark.parametrize("expression,message", [
    ("tcp port", "syntax error"), ("net 10.0.0.0/33", "mask length must be"), ("port 99999", "illegal port"),
    ("inbound", "direction is not known at this hook"),
])
def test_errors_carry_the_reason(expression: str, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        compile_filter(expression)


def test_words_that_are_not_utf8_reach_libpcap_as_their_bytes() -> None:
    """argv decodes such bytes to surrogates: libpcap must judge the bytes (as tcpdump does), not
    Python's encoder raise on them."""
    word = b"tcp\xff".decode(errors="surrogateescape")
    with pytest.raises(FilterError, match="syntax error"):
        compile_classic(word, 262144)
    with pytest.raises(FilterError, match="syntax error"):
        compile_filter(["port", b"8\xff".decode(errors="surrogateescape")])
