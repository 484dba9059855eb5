"""Encode eBPF instructions (8 bytes each) for code that netbpf generates.

What the classic-BPF translator and xdp chain's wrapper need: moves,
32/64-bit ALU, memory loads and stores, byte swaps, map references, helper
and BPF-to-BPF calls, jumps with labels resolved at the end.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

# classes
LD, LDX, ST, STX, ALU, JMP, JMP32, ALU64 = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07
# sizes
W, H, B, DW = 0x00, 0x08, 0x10, 0x18
SIZE_BYTES = {W: 4, H: 2, B: 1, DW: 8}
MEM = 0x60
# ALU operations
ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG, MOD, XOR, MOV, ARSH, END = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0)
# jumps
JA, JEQ, JGT, JGE, JSET, JNE, JLT, JLE, CALL, EXIT = 0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0xA0, 0xB0, 0x80, 0x90
IMM = 0x00  # mode of LD | IMM | DW: a 64-bit immediate, in two instructions
PSEUDO_MAP_FD = 1  # src of LD | IMM | DW: the immediate is a map fd
PSEUDO_CALL = 1  # src of JMP | CALL: a BPF-to-BPF call, imm relative to the next instruction
K, X = 0x00, 0x08
TO_BE = 0x08

R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = range(11)

_insn = struct.Struct("<BBhi")


def encode(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    if not -0x8000 <= off <= 0x7FFF:
        raise ValueError(f"jump or memory offset {off} does not fit in 16 bits")
    imm = imm if imm < 0x80000000 else imm - 0x100000000  # u32 constants as s32
    return _insn.pack(code, (src << 4) | dst, off, imm)


def decode(raw: bytes) -> list[tuple[int, int, int, int, int]]:
    """(code, dst, src, off, imm) for each instruction."""
    out = []
    for i in range(0, len(raw), 8):
        code, regs, off, imm = _insn.unpack_from(raw, i)
        out.append((code, regs & 0xF, regs >> 4, off, imm))
    return out


@dataclass
class Assembler:
    """Instructions with symbolic jump targets, resolved by :meth:`assemble`."""

    # (code, dst, src, label, imm): a jump whose off (or, for a BPF-to-BPF call, imm) is the label's
    code: list[bytes | tuple[int, int, int, str, int]] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.code)

    def label(self, name: str) -> None:
        if name in self.labels:
            raise ValueError(f"label {name} defined twice")
        self.labels[name] = len(self.code)

    def emit(self, raw: bytes) -> None:
        self.code.append(raw)

    # -- convenience -----------------------------------------------------------------------
    def mov64(self, dst: int, src: int) -> None:
        self.emit(encode(ALU64 | MOV | X, dst, src))

    def mov32_imm(self, dst: int, imm: int) -> None:
        self.emit(encode(ALU | MOV | K, dst, imm=imm))

    def mov32(self, dst: int, src: int) -> None:
        self.emit(encode(ALU | MOV | X, dst, src))

    def alu64_imm(self, op: int, dst: int, imm: int) -> None:
        self.emit(encode(ALU64 | op | K, dst, imm=imm))

    def alu64(self, op: int, dst: int, src: int) -> None:
        self.emit(encode(ALU64 | op | X, dst, src))

    def alu32_imm(self, op: int, dst: int, imm: int) -> None:
        self.emit(encode(ALU | op | K, dst, imm=imm))

    def alu32(self, op: int, dst: int, src: int) -> None:
        self.emit(encode(ALU | op | X, dst, src))

    def load(self, size: int, dst: int, src: int, off: int = 0) -> None:
        self.emit(encode(LDX | MEM | size, dst, src, off))

    def store(self, size: int, dst: int, off: int, src: int) -> None:
        self.emit(encode(STX | MEM | size, dst, src, off))

    def store_imm(self, size: int, dst: int, off: int, imm: int) -> None:
        self.emit(encode(ST | MEM | size, dst, 0, off, imm))

    def to_be(self, dst: int, bits: int) -> None:
        self.emit(encode(ALU | END | TO_BE, dst, imm=bits))

    def jump(self, op: int, target: str, dst: int = 0, src: int | None = None, imm: int = 0,
             wide: bool = False) -> None:
        """``if dst OP src/imm goto target`` (32-bit compare unless ``wide``); ``op=JA``: always."""
        cls = JMP if (wide or op == JA) else JMP32
        if src is not None:
            self.code.append((cls | op | X, dst, src, target, 0))
        else:
            self.code.append((cls | op | K, dst, 0, target, imm))

    def ld_map_fd(self, dst: int, fd: int) -> None:
        """``dst = map`` (by fd; the kernel turns it into the map's address): two slots."""
        self.emit(encode(LD | IMM | DW, dst, PSEUDO_MAP_FD, imm=fd))
        self.emit(encode(0))

    def call_helper(self, helper: int) -> None:
        self.emit(encode(JMP | CALL, imm=helper))

    def call(self, target: str) -> None:
        """A BPF-to-BPF call of the function at label ``target``."""
        self.code.append((JMP | CALL, 0, PSEUDO_CALL, target, 0))

    def goto(self, target: str) -> None:
        self.jump(JA, target)

    def exit(self) -> None:
        self.emit(encode(JMP | EXIT))

    def assemble(self) -> bytes:
        out = []
        for pc, item in enumerate(self.code):
            if isinstance(item, bytes):
                out.append(item)
                continue
            code, dst, src, target, imm = item
            if target not in self.labels:
                raise ValueError(f"jump to undefined label {target}")
            distance = self.labels[target] - pc - 1  # one item is one instruction
            if code == JMP | CALL:
                out.append(encode(code, dst, src, 0, distance))
            else:
                out.append(encode(code, dst, src, distance, imm))
        return b"".join(out)
