"""Read BTF type information: struct layouts, enums, and global variable offsets.

Used to set ``const volatile`` globals by name (their offsets in ``.rodata``
come from the object's BTF), to check that Python mirrors of shared structs
match the C definitions, and to read enums of the running kernel (drop
reasons change between kernels and must never be copied into the code).
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass
from functools import cache

from ..errors import NotSupported, check_ptr
from . import _libbpf as L

KIND_INT, KIND_PTR, KIND_ARRAY, KIND_STRUCT, KIND_UNION, KIND_ENUM = 1, 2, 3, 4, 5, 6
KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_VAR, KIND_DATASEC = 8, 9, 10, 14, 15
KIND_ENUM64 = 19


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    offset: int  # bytes
    size: int  # bytes
    bit_offset: int = 0
    bit_size: int = 0  # non-zero for bitfields


@dataclass(frozen=True, slots=True)
class Variable:
    name: str
    offset: int
    size: int


class Btf:
    """A view of a ``struct btf``; owns it when ``owned`` (must then be closed)."""

    def __init__(self, handle: int, owned: bool) -> None:
        self._handle = handle
        self._owned = owned

    @classmethod
    def from_file(cls, path: str) -> Btf:
        handle = check_ptr(L.lib.btf__parse(path.encode(), None), f"parse BTF of {path}")
        return cls(handle, owned=True)

    def close(self) -> None:
        if self._owned and self._handle:
            L.lib.btf__free(self._handle)
        self._handle = 0

    def __enter__(self) -> Btf:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- low level -----------------------------------------------------------------
    def _type(self, type_id: int) -> L.BtfType:
        t: L.BtfType = L.lib.btf__type_by_id(self._handle, type_id).contents
        return t

    def _name(self, offset: int) -> str:
        raw = L.lib.btf__name_by_offset(self._handle, offset)
        return raw.decode() if raw else ""

    @staticmethod
    def _kind(t: L.BtfType) -> int:
        return int(t.info >> 24) & 0x1F

    @staticmethod
    def _vlen(t: L.BtfType) -> int:
        return int(t.info) & 0xFFFF

    def _trailing(self, t: L.BtfType, count: int, width: int) -> list[tuple[int, ...]]:
        """The ``count`` records of ``width`` u32 words that follow a btf_type."""
        base = ctypes.addressof(t) + ctypes.sizeof(L.BtfType)
        words = (ctypes.c_uint32 * (count * width)).from_address(base)
        return [tuple(words[i * width:(i + 1) * width]) for i in range(count)]

    def find(self, name: str, kind: int) -> int:
        type_id = L.lib.btf__find_by_name_kind(self._handle, name.encode(), kind)
        if type_id < 0:
            raise KeyError(name)
        return int(type_id)

    def size_of(self, type_id: int) -> int:
        return int(L.lib.btf__resolve_size(self._handle, type_id))

    # -- what callers need -------------------------------------------------------------
    def struct_members(self, name: str) -> tuple[int, list[Member]]:
        """Size and members of ``struct name`` (or ``union name``)."""
        try:
            type_id = self.find(name, KIND_STRUCT)
        except KeyError:
            type_id = self.find(name, KIND_UNION)
        t = self._type(type_id)
        kflag = bool(t.info >> 31)
        members = []
        for name_off, member_type, offset in self._trailing(t, self._vlen(t), 3):
            bit_size = (offset >> 24) if kflag else 0
            bit_offset = (offset & 0xFFFFFF) if kflag else offset
            members.append(
                Member(
                    name=self._name(name_off),
                    offset=bit_offset // 8,
                    size=self.size_of(member_type),
                    bit_offset=bit_offset,
                    bit_size=bit_size,
                )
            )
        return t.size_or_type, members

    def enum_values(self, name: str) -> dict[str, int]:
        for kind in (KIND_ENUM, KIND_ENUM64):
            try:
                t = self._type(self.find(name, kind))
            except KeyError:
                continue
            if kind == KIND_ENUM:
                signed = bool(t.info >> 31)  # kflag: signed enum
                return {self._name(n): ctypes.c_int32(v).value if signed else v
                        for n, v in self._trailing(t, self._vlen(t), 2)}
            return {self._name(n): lo | (hi << 32) for n, lo, hi in self._trailing(t, self._vlen(t), 3)}
        raise KeyError(name)

    def datasec_variables(self, section: str) -> dict[str, Variable]:
        """Variables of a data section (``.rodata``, ``.bss``...) by name."""
        try:
            t = self._type(self.find(section, KIND_DATASEC))
        except KeyError:
            return {}
        out = {}
        for var_type, offset, size in self._trailing(t, self._vlen(t), 3):
            var_name = self._name(self._type(var_type).name_off)
            out[var_name] = Variable(var_name, offset, size)
        return out


@cache
def vmlinux() -> Btf:
    """The running kernel's BTF, loaded once per process."""
    handle = L.lib.btf__load_vmlinux_btf()
    if not handle:
        raise NotSupported("kernel BTF (/sys/kernel/btf/vmlinux)", "CONFIG_DEBUG_INFO_BTF=y needed")
    return Btf(handle, owned=True)
