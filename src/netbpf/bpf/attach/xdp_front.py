"""XDP programs that stand in front of others, and leaving such a stack from anywhere in it.

netbpf dump's capture program and xdp chain's dispatcher each take the hook
from the program that was there and keep that one in slot 0 of a PROG_ARRAY
named ``xdp_original``, which they tail-call. Slot 0 is the record of what a
front program stands in front of, read from the kernel. They stack:

    hook -> dump (started second) -> dispatcher -> dump (started first) -> original

Any of them may leave first. On the hook, a leaving program puts its
successor there in its own place (XDP_FLAGS_REPLACE or BPF_F_REPLACE against
itself, so a newcomer is never overwritten); further down, it points its
predecessor's slot 0 at its successor: one map update, after which no packet
reaches it. The successor is read from the kernel at that moment, never from
what the program remembers: one behind it may have left meanwhile. Two
programs leaving at once can undo each other's step (one puts back the
other, which has just spliced itself out); each therefore checks again
until it is nowhere in the path.
"""
from __future__ import annotations

import errno as _errno

from ..errors import BpfError, InterfaceNotFound, NetbpfError
from ..info import close_quietly, fd_by_id, map_info, prog_map_ids
from ..maps import Map
from ..program import Program
from . import xdp
from .base import Link

ORIGINAL_MAP = "xdp_original"
MAX_DEPTH = 16  # front programs stacked on one hook (a loop guard)
ATTEMPTS = 20  # rounds of "leave, look again" under concurrent changes


def original_map(prog_id: int) -> Map | None:
    """The ``xdp_original`` PROG_ARRAY that ``prog_id`` tail-calls, or None (not a front program)."""
    try:
        fd = fd_by_id("prog", prog_id)
    except NetbpfError:
        return None
    try:
        map_ids = prog_map_ids(fd)
    except NetbpfError:
        return None
    finally:
        close_quietly(fd)
    for map_id in map_ids:
        try:
            m = Map.from_id(map_id)
        except NetbpfError:
            continue
        if m.type == 3 and map_info(m.fd).name.decode() == ORIGINAL_MAP:
            return m
        m.close()
    return None


def successor(prog_id: int) -> int:
    """The program id in slot 0 of ``prog_id``'s ``xdp_original`` (0: none, or not a front program)."""
    m = original_map(prog_id)
    if m is None:
        return 0
    try:
        raw = m.lookup(0)
        return int.from_bytes(raw[:4], "little") if raw else 0
    finally:
        m.close()


def path(interface: str | int) -> list[int]:
    """The programs a packet meets at the XDP hook: the one attached, then each
    successor through ``xdp_original`` (program ids; [] for an empty hook)."""
    found: list[int] = []
    prog_id = xdp.query(interface).prog_id
    while prog_id and prog_id not in found and len(found) < MAX_DEPTH:
        found.append(prog_id)
        prog_id = successor(prog_id)
    return found


def leave(interface: str | int, ours: Program, own: Map) -> str:
    """Take ``ours`` (whose ``xdp_original`` is ``own``) out of the XDP path of
    ``interface``, wherever it stands; returns what was done, for the user."""
    said = ""
    placed: tuple[int, int] | None = None  # (0 for the hook, or the predecessor's id; what we put there)
    try:
        for _ in range(ATTEMPTS):
            programs = path(interface)
            raw = own.lookup(0)
            after = int.from_bytes(raw[:4], "little") if raw else 0
            try:
                if ours.id in programs:
                    at = programs.index(ours.id)
                    where = 0 if at == 0 else programs[at - 1]
                    said = _take_place(interface, where, ours.id, after)
                    placed = (where, after)
                elif placed is not None and placed[1] != after and placed[1] in programs:
                    # What we put in our place was leaving at the same moment and has
                    # spliced itself out of our slot: it must not stay where we put it.
                    said = _take_place(interface, placed[0], placed[1], after)
                    placed = (placed[0], after)
                else:
                    return said or f"XDP program id {ours.id} was no longer in the path of {xdp_name(interface)}"
            except BpfError as e:
                if e.errno not in (_errno.EEXIST, _errno.EBUSY, _errno.EPERM, _errno.ENOENT):
                    raise
                # The hook or a slot changed under us: look again.
    except InterfaceNotFound:
        return f"{xdp_name(interface)} is gone (its XDP programs went with it)"
    raise BpfError(f"leave the XDP path of {xdp_name(interface)}", _errno.EBUSY,
                   f"it kept changing over {ATTEMPTS} attempts")


def _take_place(interface: str | int, where: int, leaving: int, after: int) -> str:
    """``after`` in place of ``leaving``: on the hook (``where`` 0), or in the slot 0
    of program ``where``, which tail-calls it."""
    if where:
        return _splice(where, leaving, after, interface)
    expected = Program.from_id(leaving)
    try:
        return _replace_on_hook(interface, expected, after)
    finally:
        expected.close()


def xdp_name(interface: str | int) -> str:
    return interface if isinstance(interface, str) else f"ifindex {interface}"


def _replace_on_hook(interface: str | int, ours: Program, after: int) -> str:
    """``after`` on the hook in place of ``ours`` (the link that holds ours, or netlink)."""
    state = xdp.query(interface)
    name = xdp_name(interface)
    if state.prog_id != ours.id:
        raise BpfError(f"replace XDP program id {ours.id} on {name}", _errno.EBUSY)  # changed since we looked
    restore = Program.from_id(after) if after else None
    try:
        if state.link_id:
            with Link.from_id(state.link_id) as link:
                link.description = f"XDP link {state.link_id} on {name}"
                if restore is not None:
                    link.update(restore, old=ours)
                else:  # nothing behind us: the link has nothing left to hold
                    link.detach()
        else:
            xdp.swap(state.ifindex, restore, expected=ours, flags=state.flags)
    finally:
        if restore is not None:
            restore.close()
    return f"XDP program id {after} is back on {name}" if after else f"the XDP hook is empty again on {name}"


def _splice(before_id: int, ours: int, after: int, interface: str | int) -> str:
    """Point the slot 0 of ``before_id`` (which tail-calls ``ours``) at ``after``."""
    m = original_map(before_id)
    if m is None:
        raise BpfError(f"find the xdp_original of XDP program id {before_id}", _errno.ENOENT)
    try:
        raw = m.lookup(0)
        if not raw or int.from_bytes(raw[:4], "little") != ours:
            raise BpfError("splice", _errno.EBUSY)  # changed since we looked
        if after:
            restore = Program.from_id(after)
            try:
                m.update(0, restore.require_fd())
            finally:
                restore.close()
        else:
            m.delete(0)
    finally:
        m.close()
    then = f"XDP program id {after}" if after else "nothing"
    return (f"stepped out from behind XDP program id {before_id} on {xdp_name(interface)}, "
            f"which now tail-calls {then}")
