"""XDP programs that stand in front of others: taking the hook, pinning, leaving, cleanup.

netbpf dump's capture program and xdp chain's dispatcher each take the hook
from the program that was there and keep that one in slot 0 of a PROG_ARRAY
named ``xdp_original`` (declared by NETBPF_XDP_ORIGINAL in common.h), which
they tail-call. Slot 0 is the record of what a front program stands in
front of, read from the kernel. This module is the one place that does it:

    load_in_front    load a front object whose xdp_original accepts the original
    pin_original     keep slot 0 through a SIGKILL (the kernel empties an unpinned one)
    stand_in_front   take the hook, atomically, from what is there (or an empty hook)
    leave            step out from wherever in a stack the program stands
    original_in      what a front program stands in front of (status, cleanup)
    put_back         cleanup: the original back in place of a front program

Front programs stack:

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
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import BpfError, InterfaceNotFound, NetbpfError, NotSupported
from ..info import close_quietly, fd_by_id, map_info, prog_map_ids
from ..maps import Map
from ..program import Program
from . import xdp
from .base import Attachment, Link

if TYPE_CHECKING:
    from ..object import BpfObject

ORIGINAL_MAP = "xdp_original"
MAX_DEPTH = 16  # front programs stacked on one hook (a loop guard)
ATTEMPTS = 20  # rounds of "leave, look again" under concurrent changes
BPF_XDP = 37
BPF_MAP_TYPE_PROG_ARRAY = 3


# -- standing in front ------------------------------------------------------------------------

def load_in_front(load: Callable[[int], BpfObject], original: Program) -> tuple[BpfObject, int]:
    """``load(expected_attach_type)``'s object, with ``original`` in slot 0 of its
    ``xdp_original``; and the expected attach type that the kernel accepted.

    The kernel lets a PROG_ARRAY hold only programs loaded with the same
    expected attach type as the one that uses it (BPF_XDP, or 0 for loaders
    that never set it) and answers EINVAL otherwise; the original's type is
    not in its info, so try BPF_XDP, then 0.
    """
    for attach_type in (BPF_XDP, 0):
        obj = load(attach_type)
        try:
            obj.map(ORIGINAL_MAP).update(0, original.require_fd())
            return obj, attach_type
        except BpfError as e:
            obj.close()
            if e.errno != _errno.EINVAL or attach_type == 0:
                raise
        except BaseException:
            obj.close()
            raise
    raise AssertionError("unreachable")


def pin_original(own: Map, directory: Path) -> Path:
    """Pin a front program's ``xdp_original`` in ``directory``: the kernel empties a
    PROG_ARRAY with its last user, and after a SIGKILL the original must still
    run through the tail call (cleanup finds it there too)."""
    path = directory / ORIGINAL_MAP
    if path.exists():
        path.unlink()  # a previous process with our pid: stale
    own.pin(path)
    return path


def stand_in_front(prog: Program, state: xdp.XdpState, original: Program | None, mode: xdp.Mode = "auto",
                   outlive: Path | None = None) -> Attachment:
    """Put ``prog`` on the hook of ``state`` (as queried) in place of ``original``
    (its program, None for an empty hook), atomically: a program that took the
    hook meanwhile is never overwritten. The original keeps its mode and, when a
    BPF link held it, its link (updated with BPF_F_REPLACE).

    ``outlive=None``: gone with this process (an empty hook gets a link in
    ``mode``), and ``close()`` puts the original back. ``outlive``: a directory;
    ``prog`` stays after this process exits (netlink, or the original's link
    pinned there as ``link``: its owner may exit first) and the attachment
    returned is already released (``leave`` or cleanup takes it off).
    """
    interface = state.ifindex
    if original is None:
        if outlive is None:
            return xdp.attach_xdp(prog, xdp.XdpOptions(interface, mode))
        held: Attachment = xdp.attach_xdp_netlink(prog, xdp.XdpOptions(interface, mode), None,
                                                  restore_on_close=False)
    else:
        if state.mode not in ("drv", "skb"):  # hw, multi: no program can stand in front
            raise NotSupported(f"stand in front of an XDP program attached in {state.mode} mode")
        own_mode: xdp.Mode = "drv" if state.mode == "drv" else "skb"
        if state.link_id:
            update = xdp.replace_in_link(state.link_id, prog, original, restore_on_close=outlive is None)
            if outlive is None:
                return update
            try:
                update.link.pin(outlive / "link")
            finally:
                update.release()
            return update
        held = xdp.attach_xdp_netlink(prog, xdp.XdpOptions(interface, own_mode), original,
                                      restore_on_close=outlive is None)
        if outlive is None:
            return held
    held.release()
    return held


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


# -- status and cleanup ------------------------------------------------------------------------

def original_in(map_ids: Iterable[int]) -> int | None:
    """The program id in slot 0 of the ``xdp_original`` among ``map_ids`` (a program's
    maps; 0: empty), or None when there is none (it stands in front of nothing)."""
    for map_id in map_ids:
        try:
            m = Map.from_id(map_id)
        except NetbpfError:
            continue
        with m:
            if m.type != BPF_MAP_TYPE_PROG_ARRAY or m.name != ORIGINAL_MAP:
                continue
            try:
                raw = m.lookup(0)
            except NetbpfError:
                raw = None  # as an empty slot: there is nothing to put back
            return int.from_bytes(raw[:4], "little") if raw else 0
    return None


def put_back(ours: int, original: int, ifindex: int = 0, flags: int = 0, link_id: int = 0) -> None:
    """Cleanup's step for the front program ``ours`` (an id) found on a hook:
    ``original`` (0: nothing) in its place, with XDP_FLAGS_REPLACE or
    BPF_F_REPLACE against ours. In the BPF link ``link_id`` when one holds it,
    else over netlink on ``ifindex`` (of the calling thread's namespace) in the
    mode ``flags``."""
    with Program.from_id(ours) as front:
        restore = Program.from_id(original) if original else None
        try:
            if link_id:
                with Link.from_id(link_id) as link:
                    link.description = f"XDP link {link_id}"
                    if restore is not None:
                        link.update(restore, old=front)
                    else:
                        link.detach()
            else:
                xdp.swap(ifindex, restore, expected=front, flags=flags)
        finally:
            if restore is not None:
                restore.close()
