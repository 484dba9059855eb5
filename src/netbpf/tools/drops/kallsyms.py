"""Kernel addresses to ``function+0xoffset``, from ``/proc/kallsyms``.

Read once, text symbols only, sorted by address; a lookup is a bisect, and
each address is remembered (a drop storm repeats a handful of locations).
Module symbols carry their module: ``nf_hook_slow+0x46 [nf_tables]``.

kallsyms gives addresses, not sizes, so "the symbol before the address" is
only the answer where nothing can lie between it and the next symbol:

- vmlinux text is contiguous from ``_stext`` to ``_etext``;
- a module's functions are bounded by the module's next symbol, or by its
  extent in ``/proc/modules`` (else the address stays raw);
- BPF programs (``bpf_prog_<tag>_<name> [bpf]``) are JIT images packed with
  free space between them: their extents come from the kernel
  (``jited_ksyms`` and ``jited_func_lens`` of every loaded program). A
  program loaded after the table was read is found by reading it again.
  Trampolines and dispatchers (other ``[bpf]`` symbols) are one page at most.

An address in none of these is printed raw (``0xffffffffc0201b19``): the
nearest symbol before it may be an unrelated BPF program.
"""
from __future__ import annotations

import bisect
import ctypes
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

KALLSYMS = Path("/proc/kallsyms")
MODULES = Path("/proc/modules")
_TEXT = frozenset("tTwW")
BPF_MODULE = "[bpf]"
# kernel/bpf: a trampoline image is a page; a dispatcher image half of one.
BPF_IMAGE_MAX = 4096
# Re-reading kallsyms and the programs' extents for an unknown address, at most this often.
REFRESH_S = 1.0


@dataclass(frozen=True, slots=True)
class Extent:
    start: int
    end: int  # exclusive
    name: str


def bpf_program_extents() -> list[Extent]:
    """The JIT images of every loaded BPF program (and its subprograms), from the kernel.

    Needs CAP_SYS_ADMIN (root); without it, or without the bpf syscall, none."""
    from ...bpf import info

    extents: list[Extent] = []
    try:
        ids = list(info.prog_ids())
    except OSError:
        return extents
    for prog_id in ids:
        try:
            fd = info.fd_by_id("prog", prog_id)
        except Exception:  # unloaded since, or not permitted
            continue
        try:
            extents.extend(_extents_of(fd))
        except Exception:
            pass
        finally:
            info.close_quietly(fd)
    return extents


def _extents_of(fd: int) -> list[Extent]:
    from ...bpf import info

    first = info.prog_info(fd)
    count = min(first.nr_jited_ksyms, first.nr_jited_func_lens)
    if not count:
        return []
    ksyms = (ctypes.c_uint64 * count)()
    lens = (ctypes.c_uint32 * count)()
    again = info.BpfProgInfo(nr_jited_ksyms=count, nr_jited_func_lens=count,
                             jited_ksyms=ctypes.addressof(ksyms), jited_func_lens=ctypes.addressof(lens))
    info._get_info(fd, again, "program")
    tag = bytes(first.tag).hex()
    name = first.name.decode(errors="replace")
    # kallsyms names the main program bpf_prog_<tag>_<name>; subprograms get their own
    # names there (found by address when the table is read), this one is a fallback.
    return [Extent(int(ksyms[i]), int(ksyms[i]) + int(lens[i]),
                   f"bpf_prog_{tag}_{name}" if i == 0 else f"bpf_prog_{tag}_{name}_sub{i}")
            for i in range(count) if ksyms[i]]


def module_extents(path: Path = MODULES) -> dict[str, tuple[int, int]]:
    """``[module]`` -> (base, end) from /proc/modules (absent when the kernel has none)."""
    found: dict[str, tuple[int, int]] = {}
    try:
        text = path.read_text()
    except OSError:
        return found
    for line in text.splitlines():
        parts = line.split()
        try:
            base, size = int(parts[5], 16), int(parts[1])
        except (IndexError, ValueError):
            continue
        if base:
            found[f"[{parts[0]}]"] = (base, base + size)
    return found


class Kallsyms:
    def __init__(self, lines: Iterable[str], bpf_extents: Callable[[], list[Extent]] | None = None,
                 modules: dict[str, tuple[int, int]] | None = None,
                 reload: Callable[[], Iterable[str]] | None = None) -> None:
        self._bpf_source = bpf_extents or (lambda: [])
        self._modules = modules or {}
        self._reload = reload
        self._refreshed = 0.0
        self._cache: dict[int, str] = {}
        self._read(lines)

    def _read(self, lines: Iterable[str]) -> None:
        symbols: list[tuple[int, str, str]] = []
        self._etext = 0
        for line in lines:
            parts = line.split()
            if len(parts) < 3 or parts[1] not in _TEXT:
                continue
            address = int(parts[0], 16)
            if not address:
                continue
            module = parts[3] if len(parts) > 3 else ""
            if parts[2] == "_etext" and not module:
                self._etext = address
            symbols.append((address, parts[2], module))
        symbols.sort()
        self._addresses = [a for a, _, _ in symbols]
        self._names = [n for _, n, _ in symbols]
        self._module_of = [m for _, _, m in symbols]
        self._read_bpf()

    def _read_bpf(self) -> None:
        extents = sorted(self._bpf_source(), key=lambda e: e.start)
        # kallsyms' own name for an image where it has one (subprograms: bpf_prog_<tag>_F)
        by_address = {a: n for a, n, m in zip(self._addresses, self._names, self._module_of, strict=True)
                      if m == BPF_MODULE}
        self._bpf = [Extent(e.start, e.end, by_address.get(e.start, e.name)) for e in extents]
        self._bpf_starts = [e.start for e in self._bpf]

    @classmethod
    def load(cls, path: Path = KALLSYMS) -> Kallsyms:
        def read() -> list[str]:
            with open(path) as f:
                return f.readlines()

        root = os.geteuid() == 0
        return cls(read(), bpf_program_extents if root else None, module_extents(), read)

    def note_programs(self) -> None:
        """Read the loaded programs' extents again, now: called once the tracer is
        loaded and before the drop to -Z USER, after which programs cannot be opened by
        id. Its own program is the top frame of every --stack; read before it was loaded,
        the table left that frame a raw address."""
        self._read_bpf()
        self._cache.clear()

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
        text = self._lookup(address)
        if text is None and self._refresh():
            text = self._lookup(address)  # a program loaded since the table was read
        if text is None:
            text = f"0x{address:x}"
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[address] = text
        return text

    def _refresh(self) -> bool:
        """Read kallsyms and the programs' extents again; False if done too recently."""
        now = time.monotonic()
        if now - self._refreshed < REFRESH_S:
            return False
        self._refreshed = now
        # After the privilege drop (-Z) kallsyms reads as zeros and programs cannot be
        # opened by id: what was read as root stays, rather than nothing.
        before = (self._addresses, self._names, self._module_of, self._etext, self._bpf, self._bpf_starts)
        if self._reload is not None:
            self._read(self._reload())
        else:
            self._read_bpf()
        if not self._addresses:
            (self._addresses, self._names, self._module_of, self._etext, self._bpf, self._bpf_starts) = before
        elif not self._bpf and before[4]:
            self._bpf, self._bpf_starts = before[4], before[5]
        self._cache.clear()
        return True

    def _lookup(self, address: int) -> str | None:
        if not address:
            return None
        j = bisect.bisect_right(self._bpf_starts, address) - 1
        if j >= 0 and address < self._bpf[j].end:
            e = self._bpf[j]
            return f"{e.name}+0x{address - e.start:x}"
        i = bisect.bisect_right(self._addresses, address) - 1
        if i < 0:
            return None
        start, name, module = self._addresses[i], self._names[i], self._module_of[i]
        if not self._within(i, address):
            return None
        return f"{name}+0x{address - start:x}" + (f" {module}" if module else "")

    def _within(self, i: int, address: int) -> bool:
        """Whether ``address`` can belong to symbol ``i`` (see the module docstring)."""
        module = self._module_of[i]
        if not module:
            return not self._etext or address < self._etext
        if module == BPF_MODULE:
            if self._names[i].startswith("bpf_prog_"):
                return False  # a program's extent is known exactly, and this is outside it
            return address - self._addresses[i] < BPF_IMAGE_MAX
        nxt = i + 1
        if nxt < len(self._addresses) and self._module_of[nxt] == module:
            return True  # the next symbol of the same module ends it
        extent = self._modules.get(module)
        return extent is not None and extent[0] <= address < extent[1]

    def function(self, address: int) -> str:
        """The function alone (``tcp_v4_rcv``), for grouping."""
        return self.symbolise(address).split("+", 1)[0]
