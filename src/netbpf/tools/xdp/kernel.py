"""A chain of XDP programs on one interface: the dispatcher, its pins, add/remove/list.

Everything lives under /sys/fs/bpf/netbpf/xdp/<netns>/<interface>/: the
dispatcher program and its maps (``xdp_chain`` slots, ``chain_next`` order,
``chain_info`` descriptions, ``xdp_original``). The dispatcher is attached
over netlink (or put into the BPF link that held the interface's program),
so the chain keeps working after the command exits; ``netbpf cleanup`` takes
it down and puts the original program back. When a BPF link held that
program, the link is pinned there too (``link``): its owner may exit first.

A new chain is built under ``<interface>:new:<pid>`` and renamed into place
once its dispatcher is on the hook, so a chain is found whole or not at all,
and a SIGKILL leaves only what ``netbpf cleanup --this-netns`` removes.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ... import netdev, netns
from ...bpf import BpfObject, object_path
from ...bpf.attach import xdp, xdp_front
from ...bpf.fs import pin_dir, remove_empty_dirs
from ...bpf.maps import Map
from ...bpf.program import Program
from ...errors import NetbpfError, UsageError
from ...run import Run
from .wrap import BPF_XDP, load_wrapped, wrapper

BPF_OBJECT = "chain.bpf.o"
CHAIN_SLOTS = 32
SOURCE_LEN = 112
MAPS = ("xdp_chain", "chain_next", "chain_info", "xdp_original")


class ChainEntry(ctypes.Structure):
    _c_name_ = "chain_entry"
    _fields_ = [("prog_id", ctypes.c_uint32), ("attach_type", ctypes.c_uint32), ("added", ctypes.c_uint64),
                ("source", ctypes.c_char * SOURCE_LEN)]


SHARED_STRUCTS = (ChainEntry,)


@dataclass(frozen=True, slots=True)
class Link:
    position: int
    slot: int
    prog_id: int
    name: str
    source: str
    added: float


def _load_dispatcher(expected_attach_type: int) -> BpfObject:
    obj = BpfObject.open(object_path(__file__, BPF_OBJECT))
    try:
        obj.program("netbpf_xdp_disp").set_expected_attach_type(expected_attach_type)
        obj.load()
    except BaseException:
        obj.close()
        raise
    return obj


def building_name(interface: str, pid: int) -> str:
    """The pin directory of a chain that process ``pid`` is building (bpffs refuses
    dots in names; interface names cannot hold a colon)."""
    return f"{interface}:new:{pid}"


def chain_dir(interface: str) -> Path:
    label = netns.label(netns.current_inode()).replace("/", "_")
    from ...bpf.fs import PIN_ROOT

    return PIN_ROOT / "xdp" / label / interface


class Chain:
    """The chain on ``interface`` (of the calling thread's network namespace)."""

    def __init__(self, interface: str, directory: Path, dispatcher: Program, maps: dict[str, Map]) -> None:
        self.interface, self.directory = interface, directory
        self.dispatcher, self.maps = dispatcher, maps
        self._before: tuple[xdp.XdpState | None, Program | None] = (None, None)  # see build()

    # -- finding, creating ---------------------------------------------------------------
    @classmethod
    def find(cls, interface: str) -> Chain | None:
        netdev.ifindex(interface)  # a clear error for a missing interface
        directory = chain_dir(interface)
        if not (directory / "dispatcher").exists():
            return None
        dispatcher = Program.from_pin(str(directory / "dispatcher"))
        maps = {name: Map.from_pin(directory / name) for name in MAPS}
        return cls(interface, directory, dispatcher, maps)

    @classmethod
    def find_attached(cls, interface: str) -> tuple[Chain | None, str]:
        """The chain if it still runs; a stale one (its dispatcher taken off the
        hook by someone else) is unpinned, and said so."""
        chain = cls.find(interface)
        if chain is None or chain.attached():
            return chain, ""
        directory = chain.directory
        chain.close()
        shutil.rmtree(directory, ignore_errors=True)
        return None, f"removed a stale chain (its dispatcher was no longer on {interface}) at {directory}"

    @classmethod
    def build(cls, interface: str) -> Chain:
        """Load the dispatcher in front of what is on the hook, pinned in a
        directory of this process (``IFACE:new:PID``) and attached nowhere yet:
        ``add()`` a program, then ``attach()``; ``discard()`` on any failure.

        A SIGKILL at any point leaves either that directory with the
        dispatcher on no hook (``netbpf cleanup`` removes it: its process is
        gone and nothing runs through it) or the dispatcher on the hook,
        which cleanup takes down like any chain.
        """
        state = xdp.query(interface)
        if state.prog_id and state.mode not in ("drv", "skb"):
            raise UsageError(f"{interface}: XDP program in {state.mode} mode; cannot chain beside it")
        original = Program.from_id(state.prog_id) if state.prog_id else None
        label = netns.label(netns.current_inode()).replace("/", "_")
        directory = pin_dir("xdp", label, building_name(interface, os.getpid()))
        undo = Run()  # what a failure takes back, last first: the object, the pins, the original's fd
        with undo.starting():
            if original is not None:
                undo.callback(original.close)
            undo.callback(remove_empty_dirs, directory.parent)
            undo.callback(shutil.rmtree, directory, True)
            with Run() as loading:  # the object is closed either way: the pins hold what stays
                if original is not None:
                    obj, attach_type = xdp_front.load_in_front(_load_dispatcher, original)
                else:
                    obj, attach_type = _load_dispatcher(BPF_XDP), BPF_XDP
                loading.callback(obj.close)
                settings = ChainEntry(attach_type=attach_type, added=int(time.time()))
                obj.map("chain_info").update(0, bytes(settings))
                for name in MAPS:
                    obj.map(name).pin(directory / name)
                obj.program("netbpf_xdp_disp").pin(str(directory / "dispatcher"))
                dispatcher = Program.from_pin(str(directory / "dispatcher"))
                maps = {name: Map.from_pin(directory / name) for name in MAPS}
        chain = cls(interface, directory, dispatcher, maps)
        chain._before = (state, original)
        return chain

    def attach(self, mode: xdp.Mode = "auto") -> None:
        """Put the dispatcher built by ``build()`` on the hook, atomically in place
        of the program found there then, and its pins where ``find()`` looks."""
        state, original = self._before
        assert state is not None, "attach() follows build()"
        try:
            # Outliving this process; a link that held the original is pinned with the
            # chain: its owner exiting (netbpf dump on an empty hook holds one) would
            # otherwise take the chain off the hook.
            xdp_front.stand_in_front(self.dispatcher, state, original, mode, outlive=self.directory)
        finally:
            if original is not None:
                original.close()
            self._before = (state, None)
        final = chain_dir(self.interface)
        # bpffs renames atomically: the chain is found complete or not at all. A
        # stale chain there (its dispatcher off every hook) was removed by find_attached().
        os.rename(self.directory, final)
        self.directory = final

    def discard(self) -> None:
        """Undo ``build()`` (and ``attach()``, ``add()``): the hook as it was, no pins."""
        try:
            if self.dispatcher.id in xdp_front.path(self.interface):
                xdp_front.leave(self.interface, self.dispatcher, self.maps["xdp_original"])
        finally:
            _, original = self._before
            if original is not None:
                original.close()
            self.close()
            shutil.rmtree(self.directory, ignore_errors=True)
            remove_empty_dirs(self.directory.parent)

    # -- reading ------------------------------------------------------------------------------
    def _next(self, slot: int) -> int:
        raw = self.maps["chain_next"].lookup(slot)
        return int.from_bytes(raw[:4], "little") if raw else 0

    def _info(self, slot: int) -> ChainEntry:
        raw = self.maps["chain_info"].lookup(slot)
        return ChainEntry.from_buffer_copy(raw) if raw else ChainEntry()

    @property
    def attach_type(self) -> int:
        return int(self._info(0).attach_type)

    def links(self) -> list[Link]:
        found: list[Link] = []
        slot, seen = self._next(0), set()
        while slot and slot not in seen and len(found) < CHAIN_SLOTS:
            seen.add(slot)
            info = self._info(slot)
            raw = self.maps["xdp_chain"].lookup(slot)
            prog_id = int.from_bytes(raw[:4], "little") if raw else 0
            name = ""
            if prog_id:
                try:
                    prog = Program.from_id(prog_id)
                    name = prog.name
                    prog.close()
                except NetbpfError:
                    name = "?"
            found.append(Link(len(found), slot, prog_id, name, info.source.decode(errors="replace"),
                              float(info.added)))
            slot = self._next(slot)
        return found

    def original(self) -> int:
        raw = self.maps["xdp_original"].lookup(0)
        return int.from_bytes(raw[:4], "little") if raw else 0

    def on_hook(self) -> bool:
        return xdp.query(self.interface).prog_id == self.dispatcher.id

    def attached(self) -> bool:
        """On the hook, or behind netbpf programs that tail-call it (netbpf dump)."""
        return self.dispatcher.id in xdp_front.path(self.interface)

    # -- changing -----------------------------------------------------------------------------
    def add(self, path: Path, section: str | None, position: int | None = None) -> Link:
        links = self.links()
        if position is None:
            position = len(links)
        if not 0 <= position <= len(links):
            raise UsageError(f"--pos must be 0..{len(links)} (the chain has {len(links)} programs)")
        used = {link.slot for link in links}
        free = [s for s in range(1, CHAIN_SLOTS) if s not in used]  # what a killed add left is unreachable
        if not free:
            raise UsageError(f"the chain on {self.interface} is full ({CHAIN_SLOTS - 1} programs)")
        slot = free[0]
        maps = self.maps
        code = wrapper(slot, maps["chain_next"].require_fd(), maps["xdp_chain"].require_fd(),
                       maps["xdp_original"].require_fd())
        prog = load_wrapped(path, section, code, self.attach_type)
        try:
            before = 0 if position == 0 else links[position - 1].slot
            after = self._next(before)
            source = f"{path}:{section}" if section else str(path)
            info = ChainEntry(prog_id=prog.id, attach_type=self.attach_type, added=int(time.time()),
                              source=source.encode()[:SOURCE_LEN - 1])
            try:
                # The free slot first, then the one update that makes it run: a failure
                # (or a kill) before that leaves a slot that nothing reaches.
                maps["chain_info"].update(slot, bytes(info))
                maps["chain_next"].update(slot, after)
                maps["xdp_chain"].update(slot, prog.require_fd())
                maps["chain_next"].update(before, slot)
            except BaseException:
                self._clear(slot)
                raise
            return Link(position, slot, prog.id, prog.name, source, float(info.added))
        finally:
            prog.close()

    def _clear(self, slot: int) -> None:
        self.maps["xdp_chain"].delete(slot)
        self.maps["chain_next"].update(slot, 0)
        self.maps["chain_info"].update(slot, bytes(ChainEntry()))

    def remove(self, position: int) -> Link:
        links = self.links()
        if not 0 <= position < len(links):
            raise UsageError(f"no program at position {position} (the chain has {len(links)})")
        link = links[position]
        before = 0 if position == 0 else links[position - 1].slot
        self.maps["chain_next"].update(before, self._next(link.slot))  # out of the path first
        self._clear(link.slot)
        return link

    def take_down(self) -> str:
        """The chain is empty: put the program behind it in its place (on the hook,
        or in the slot of whoever stands in front of it), unpin it all."""
        said = xdp_front.leave(self.interface, self.dispatcher, self.maps["xdp_original"])
        self.close()
        shutil.rmtree(self.directory, ignore_errors=True)
        remove_empty_dirs(self.directory.parent)  # <netns>/, xdp/, netbpf/ unless others live there
        return said

    def close(self) -> None:
        self.dispatcher.close()
        for m in self.maps.values():
            m.close()

