"""A chain of XDP programs on one interface: the dispatcher, its pins, add/remove/list.

Everything lives under /sys/fs/bpf/netbpf/xdp/<netns>/<interface>/: the
dispatcher program and its maps (``xdp_chain`` slots, ``chain_next`` order,
``chain_info`` descriptions, ``xdp_original``). The dispatcher is attached
over netlink (or put into the BPF link that held the interface's program),
so the chain keeps working after the command exits; ``netbpf cleanup`` takes
it down and puts the original program back.
"""
from __future__ import annotations

import ctypes
import errno as _errno
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ... import netdev, netns
from ...bpf import BpfObject, object_path
from ...bpf.attach import xdp
from ...bpf.errors import BpfError, NetbpfError, UsageError
from ...bpf.fs import pin_dir, remove_empty_dirs
from ...bpf.maps import Map
from ...bpf.program import Program
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


def chain_dir(interface: str) -> Path:
    label = netns.label(netns.current_inode()).replace("/", "_")
    from ...bpf.fs import PIN_ROOT

    return PIN_ROOT / "xdp" / label / interface


class Chain:
    """The chain on ``interface`` (of the calling thread's network namespace)."""

    def __init__(self, interface: str, directory: Path, dispatcher: Program, maps: dict[str, Map]) -> None:
        self.interface, self.directory = interface, directory
        self.dispatcher, self.maps = dispatcher, maps

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
    def create(cls, interface: str, mode: xdp.Mode = "auto") -> Chain:
        """Load the dispatcher and put it on the hook, in front of what is there."""
        state = xdp.query(interface)
        original = Program.from_id(state.prog_id) if state.prog_id else None
        if original is not None and state.mode not in ("drv", "skb"):
            raise UsageError(f"{interface}: XDP program in {state.mode} mode; cannot chain beside it")
        directory = pin_dir("xdp", netns.label(netns.current_inode()).replace("/", "_"), interface)
        obj = None
        try:
            for attach_type in (BPF_XDP, 0):
                obj = BpfObject.open(object_path(__file__, BPF_OBJECT))
                obj.program("netbpf_xdp_disp").set_expected_attach_type(attach_type)
                obj.load()
                try:
                    if original is not None:
                        obj.map("xdp_original").update(0, original.require_fd())
                    break
                except BpfError as e:  # loaded with another expected attach type: match it
                    obj.close()
                    obj = None
                    if e.errno != _errno.EINVAL or attach_type == 0:
                        raise
            assert obj is not None
            settings = ChainEntry(attach_type=attach_type, added=int(time.time()))
            obj.map("chain_info").update(0, bytes(settings))
            dispatcher = obj.program("netbpf_xdp_disp")
            for name in MAPS:
                obj.map(name).pin(directory / name)
            dispatcher.pin(str(directory / "dispatcher"))
            if original is None:
                xdp.attach_xdp_netlink(dispatcher, xdp.XdpOptions(interface, mode), None, restore_on_close=False)
            elif state.link_id:
                xdp.replace_in_link(state.link_id, dispatcher, original, restore_on_close=False).close()
            else:
                xdp.attach_xdp_netlink(dispatcher, xdp.XdpOptions(interface, _mode(state.mode)), original,
                                       restore_on_close=False)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        finally:
            if obj is not None:
                obj.close()
            if original is not None:
                original.close()
        chain = cls.find(interface)
        assert chain is not None
        return chain

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
        prog_id = xdp.query(self.interface).prog_id
        for _ in range(8):
            if prog_id == self.dispatcher.id:
                return True
            if not prog_id:
                return False
            prog_id = _tail_called_original(prog_id)
        return False

    # -- changing -----------------------------------------------------------------------------
    def add(self, path: Path, section: str | None, position: int | None = None) -> Link:
        links = self.links()
        if position is None:
            position = len(links)
        if not 0 <= position <= len(links):
            raise UsageError(f"--pos must be 0..{len(links)} (the chain has {len(links)} programs)")
        used = {link.slot for link in links}
        free = [s for s in range(1, CHAIN_SLOTS) if s not in used and not self.maps["xdp_chain"].lookup(s)]
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
            maps["chain_info"].update(slot, bytes(info))
            maps["chain_next"].update(slot, after)
            maps["xdp_chain"].update(slot, prog.require_fd())
            maps["chain_next"].update(before, slot)  # the one update that makes it run
            return Link(position, slot, prog.id, prog.name, source, float(info.added))
        finally:
            prog.close()

    def remove(self, position: int) -> Link:
        links = self.links()
        if not 0 <= position < len(links):
            raise UsageError(f"no program at position {position} (the chain has {len(links)})")
        link = links[position]
        before = 0 if position == 0 else links[position - 1].slot
        self.maps["chain_next"].update(before, self._next(link.slot))  # out of the path first
        self.maps["xdp_chain"].delete(link.slot)
        self.maps["chain_next"].update(link.slot, 0)
        self.maps["chain_info"].update(link.slot, bytes(ChainEntry()))
        return link

    def take_down(self) -> str:
        """The chain is empty: put the original back (or empty the hook), unpin it all."""
        state = xdp.query(self.interface)
        if state.prog_id != self.dispatcher.id:
            return (f"the chain's dispatcher is not on {self.interface}'s hook now (program id "
                    f"{state.prog_id} is, e.g. netbpf dump): left in place, empty")
        original_id = self.original()
        if state.link_id:
            original = Program.from_id(original_id)
            try:
                xdp.replace_in_link(state.link_id, original, self.dispatcher, restore_on_close=False).close()
            finally:
                original.close()
            said = f"XDP program id {original_id} is back in its link"
        else:
            restore = Program.from_id(original_id) if original_id else None
            try:
                xdp.swap(state.ifindex, restore, expected=self.dispatcher, flags=state.flags)
            finally:
                if restore is not None:
                    restore.close()
            said = f"XDP program id {original_id} is back" if original_id else "the XDP hook is empty again"
        self.close()
        shutil.rmtree(self.directory, ignore_errors=True)
        remove_empty_dirs(self.directory.parent)  # <netns>/, xdp/, netbpf/ unless others live there
        return f"{said} on {self.interface}"

    def close(self) -> None:
        self.dispatcher.close()
        for m in self.maps.values():
            m.close()


def _tail_called_original(prog_id: int) -> int:
    """The program in slot 0 of the ``xdp_original`` PROG_ARRAY of ``prog_id``, or 0."""
    from ...bpf.info import close_quietly, fd_by_id, map_info, prog_map_ids

    try:
        fd = fd_by_id("prog", prog_id)
    except NetbpfError:
        return 0
    try:
        map_ids = prog_map_ids(fd)
    finally:
        close_quietly(fd)
    for map_id in map_ids:
        try:
            m = Map.from_id(map_id)
        except NetbpfError:
            continue
        try:
            if map_info(m.fd).name.decode() == "xdp_original":
                raw = m.lookup(0)
                return int.from_bytes(raw[:4], "little") if raw else 0
        finally:
            m.close()
    return 0


def _mode(attached: str) -> xdp.Mode:
    """The attach mode to use for an XDP program attached in ``attached`` mode."""
    if attached == "drv":
        return "drv"
    if attached == "skb":
        return "skb"
    raise UsageError(f"XDP program attached in {attached} mode: cannot stand in front of it")
