"""Kernel addresses to ``function+0xoffset``, from ``/proc/kallsyms``.

Read once, text symbols only, sorted by address; a lookup is a bisect, and
each address is remembered (a drop storm repeats a handful of locations).
Module symbols carry their module: ``nf_hook_slow+0x46 [nf_tables]``.
"""
from __future__ import annotations

import bisect
from collections.abc import Iterable
from pathlib import Path

KALLSYMS = Path("/proc/kallsyms")
_TEXT = frozenset("tTwW")


class Kallsyms:
    def __init__(self, lines: Iterable[str]) -> None:
        symbols: list[tuple[int, str]] = []
        for line in lines:
            parts = line.split()
            if len(parts) < 3 or parts[1] not in _TEXT:
                continue
            address = int(parts[0], 16)
            if not address:
                continue
            name = parts[2]
            if len(parts) > 3:
                name = f"{name} {parts[3]}"  # "[module]"
            symbols.append((address, name))
        symbols.sort()
        self._addresses = [a for a, _ in symbols]
        self._names = [n for _, n in symbols]
        self._cache: dict[int, str] = {}

    @classmethod
    def load(cls, path: Path = KALLSYMS) -> Kallsyms:
        with open(path) as f:
            return cls(f)

    @property
    def usable(self) -> bool:
        """False when the kernel hides addresses (kptr_restrict, not root): all zero."""
        return bool(self._addresses)

    def __len__(self) -> int:
        return len(self._addresses)

    def symbolise(self, address: int) -> str:
        try:
            return self._cache[address]
        except KeyError:
            pass
        i = bisect.bisect_right(self._addresses, address) - 1
        if i < 0 or not address:
            text = f"0x{address:x}"
        else:
            name = self._names[i]
            offset = address - self._addresses[i]
            function, _, module = name.partition(" ")
            text = f"{function}+0x{offset:x}" + (f" {module}" if module else "")
        self._cache[address] = text
        return text

    def function(self, address: int) -> str:
        """The function alone (``tcp_v4_rcv``), for grouping."""
        return self.symbolise(address).split("+", 1)[0]
