"""Whose pin directory is this, and is anything still using it?

The tools pin under /sys/fs/bpf/netbpf in places that name their network
namespace and interface (dump/NETNS_IFACE_IFINDEX_PID/, xdp/NETNS/IFACE/,
fault/NETNS/IFACE/DIRECTION/). An interface deleted under them, or a SIGKILL
before a tool used or removed its pins, leaves pins that no hook reaches:
``netbpf status`` shows them with their interface, and ``netbpf cleanup
--this-netns`` removes them (in that namespace only, and only what nothing
in its XDP paths uses).
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from .bpf import fs
from .bpf.info import close_quietly, fd_by_id, prog_map_ids
from .errors import BpfError, NetbpfError


@dataclass(frozen=True, slots=True)
class PinOwner:
    """Whose pin directory this is, from its place under the pin root:
    dump/NETNS_IFACE_IFINDEX_PID/, xdp/NETNS/IFACE[:new:PID]/, fault/NETNS/IFACE/DIRECTION/."""

    tool: str
    netns: str
    interface: str
    directory: Path
    pid: int = 0  # the process that pinned it and removes it on exit (dump; xdp chain while adding)
    present: bool = True  # the interface is still there (same index, where the path says it)


def pin_owner(path: Path, places: dict[str, set[tuple[int, str]]]) -> PinOwner | None:
    try:
        parts = path.relative_to(fs.PIN_ROOT).parts
    except ValueError:
        return None
    if len(parts) >= 2 and parts[0] == "dump":
        for label, interfaces in places.items():
            if parts[1].startswith(label + "_"):
                rest = parts[1][len(label) + 1:].rsplit("_", 2)
                if len(rest) == 3 and rest[1].isdigit() and rest[2].isdigit():
                    return PinOwner("dump", label, rest[0], fs.PIN_ROOT / parts[0] / parts[1],
                                     int(rest[2]), (int(rest[1]), rest[0]) in interfaces)
        return None
    if len(parts) >= 3 and parts[0] in ("xdp", "fault"):
        label, name = parts[1], parts[2]
        interface, _, pid = name.partition(":new:")
        directory = fs.PIN_ROOT.joinpath(*parts[:3 if parts[0] == "xdp" else min(4, len(parts))])
        present = interface in {n for _, n in places.get(label, set())}
        return PinOwner("xdp chain" if parts[0] == "xdp" else "fault", label, interface, directory,
                         int(pid) if pid.isdigit() else 0, present)
    return None


def _running(pid: int) -> bool:
    """Is ``pid`` a netbpf process (not another one that took its number)?"""
    try:
        return b"netbpf" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _in_xdp_paths() -> tuple[set[int], set[int]]:
    """Program ids and map ids of everything a packet meets at the XDP hooks of
    this namespace's interfaces (front programs and what they tail-call)."""
    from .bpf.attach import xdp_front

    progs: set[int] = set()
    maps: set[int] = set()
    for index, _ in socket.if_nameindex():
        try:
            path = xdp_front.path(index)
        except NetbpfError:
            continue
        for prog_id in path:
            progs.add(prog_id)
            try:
                fd = fd_by_id("prog", prog_id)
            except BpfError:
                continue
            try:
                maps.update(prog_map_ids(fd))
            finally:
                close_quietly(fd)
    return progs, maps


def remove_left_pins(label: str, pins: list[tuple[str, str, int, str]]) -> list[str]:
    """Pin directories of this namespace that nothing runs through any more: their
    interface is gone, or the process that made them died before it could use or
    remove them (a SIGKILL during start-up). Then empty directories. Run in the
    namespace itself, after its attachments are taken down."""
    done: list[str] = []
    if not fs.PIN_ROOT.is_dir():
        return done
    places = {label: set(socket.if_nameindex())}
    used_progs, used_maps = _in_xdp_paths()
    owners: dict[Path, PinOwner] = {}
    used: set[Path] = set()
    ours = {path for path, _, _, _ in pins}
    for path, kind, obj_id, _ in pins:
        owner = pin_owner(Path(path), places)
        if owner is None or owner.netns != label:
            continue
        owners.setdefault(owner.directory, owner)
        if obj_id in (used_progs if kind == "prog" else used_maps if kind == "map" else ()):
            used.add(owner.directory)
    for directory, owner in owners.items():
        if directory in used or (owner.present and owner.pid and _running(owner.pid)):
            continue  # in the path, or its process still runs (and removes it on exit)
        if owner.tool == "fault" and owner.present:
            continue  # a pinned fault on a live interface: `netbpf fault stop` or a full cleanup
        for dirpath, _, files in os.walk(directory):
            for name in files:
                if os.path.join(dirpath, name) not in ours:
                    continue  # not netbpf's (not on its record): left alone
                os.unlink(os.path.join(dirpath, name))
                done.append(f"unpinned {os.path.join(dirpath, name)} ({owner.tool} on {owner.interface}"
                            f"{'' if owner.present else ', gone'})")
    for top in (fs.PIN_ROOT / "xdp" / label, fs.PIN_ROOT / "fault" / label, *_dump_dirs(label)):
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
            owner = pin_owner(Path(dirpath) / "x", places)
            if owner is not None and owner.pid and _running(owner.pid):
                continue  # being filled right now
            fs.remove_empty_dirs(Path(dirpath))
    return done


def _dump_dirs(label: str) -> list[Path]:
    root = fs.PIN_ROOT / "dump"
    return [d for d in root.iterdir() if d.name.startswith(label + "_")] if root.is_dir() else []
