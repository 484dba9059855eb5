"""``netbpf status`` and ``netbpf cleanup``: what netbpf has in the kernel, and removing it.

Everything is read from the kernel: programs named ``netbpf_*``, the links
that hold them, netlink XDP programs and cls_bpf filters in every network
namespace, and pins under the pin root (/sys/fs/bpf/netbpf). So a tool
killed with SIGKILL is found all the same. What is netbpf's is decided by
the record every netbpf load writes (bpf/made.py: program ids and tags, map
ids), never by a name or a place: a program named ``netbpf_*`` or a pin
under the pin root that is not on record is listed as "not netbpf's, left
alone", and cleanup never touches it.

A netbpf XDP program that took the place of another keeps the original in
slot 0 of a PROG_ARRAY named ``xdp_original`` (it tail-calls it); cleanup
puts that original back, atomically, instead of leaving the hook empty.
"""
from __future__ import annotations

import errno as _errno
import json
import os
import shutil
import socket
import subprocess
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from . import netns
from .bpf import fs, made
from .bpf.attach import tc, xdp_front
from .bpf.attach import xdp as xdp_attach
from .bpf.attach.base import Link
from .bpf.info import (
    PROG_TYPES,
    boottime_to_epoch,
    close_quietly,
    fd_by_id,
    fd_by_pin,
    link_info,
    links,
    prog_ids,
    prog_info,
    prog_map_ids,
)
from .errors import BpfError, NetbpfError
from .pin_owners import pin_owner, remove_left_pins

PREFIX = "netbpf_"
ORIGINAL_MAP = "xdp_original"
BPF_TCX_INGRESS, BPF_TCX_EGRESS = 46, 47
DETACHABLE_LINKS = {"xdp", "tcx", "cgroup", "sockmap", "netns", "netkit"}


@dataclass(frozen=True, slots=True)
class Entry:
    kind: str  # xdp, xdp-netlink, tcx, cls_bpf, cgroup, sockmap, tracepoint, loaded, pin, foreign
    program: str
    prog_id: int
    target: str
    since: float | None = None
    holders: tuple[str, ...] = ()
    link_id: int = 0
    netns: str = ""
    netns_path: str = ""
    ifindex: int = 0
    pinned: str = ""
    restores: int = 0  # prog id of the original XDP program it keeps in xdp_original
    stacked: tuple[int, ...] = ()  # netbpf front programs between it and that original
    map_ids: tuple[int, ...] = ()
    tc: dict[str, Any] = field(default_factory=dict)  # how to find it again: tc filter, XDP flags

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d.pop("netns_path")
        d.pop("map_ids")
        return {k: v for k, v in d.items() if v not in (None, "", 0, (), {})}


@dataclass(frozen=True, slots=True)
class _Prog:
    id: int
    name: str
    type: str
    since: float
    map_ids: tuple[int, ...]


# -- reading the kernel ------------------------------------------------------------------

FOREIGN = "not netbpf's, left alone"


def _netbpf_programs(record: made.Made, foreign: dict[int, _Prog] | None = None) -> dict[int, _Prog]:
    """Programs named netbpf_* that netbpf loaded (on record, same tag); the
    others named so go to ``foreign``."""
    progs = {}
    for pid in prog_ids():
        try:
            fd = fd_by_id("prog", pid)
        except BpfError:
            continue  # unloaded meanwhile
        try:
            info = prog_info(fd)
            name = info.name.decode(errors="replace")
            if name.startswith(PREFIX) and name != "netbpf_probe":
                prog = _Prog(pid, name, PROG_TYPES.get(info.type, str(info.type)),
                             boottime_to_epoch(info.load_time), tuple(prog_map_ids(fd)))
                if record.has_prog(pid, bytes(info.tag).hex()):
                    progs[pid] = prog
                elif foreign is not None:
                    foreign[pid] = prog
        finally:
            close_quietly(fd)
    return progs


def _holders() -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """Processes holding an fd of each program id and link id (from /proc/*/fdinfo)."""
    progs: dict[int, list[str]] = defaultdict(list)
    links: dict[int, list[str]] = defaultdict(list)
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            fds = os.listdir(f"/proc/{pid}/fdinfo")
        except OSError:
            continue
        who = f"pid {pid} ({comm})"
        for fd in fds:
            try:
                text = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
            except OSError:
                continue
            for line in text.splitlines():
                key, _, value = line.partition(":")
                table = progs if key == "prog_id" else links if key == "link_id" else None
                if table is not None and who not in table[int(value)]:
                    table[int(value)].append(who)
    return progs, links


def _original_of(prog: _Prog) -> int | None:
    """The program id kept in the ``xdp_original`` PROG_ARRAY of ``prog`` (0: empty),
    or None when ``prog`` has no such map (it stands in front of nothing).

    The kernel empties a PROG_ARRAY when the last process holding it exits,
    so a front program that must keep its original after a SIGKILL pins the
    map; cleanup then finds the original here.
    """
    return xdp_front.original_in(prog.map_ids)


def _unwind(prog: _Prog, progs: dict[int, _Prog]) -> tuple[int, tuple[_Prog, ...]]:
    """What cleanup puts back in place of the front program ``prog``: the first
    program behind it that is not a netbpf front program (0: none), and the
    netbpf front programs passed on the way. netbpf dump and xdp chain stack
    (dump in front of a chain's dispatcher in front of another dump...), and
    one cleanup must reach the program that was there before all of them."""
    passed: list[_Prog] = []
    behind = _original_of(prog) or 0
    while behind in progs and len(passed) < 16:
        nxt = progs[behind]
        further = _original_of(nxt)
        if further is None or nxt in passed:
            break  # a netbpf program that stands in front of nothing: it is the original
        passed.append(nxt)
        behind = further
    return behind, tuple(passed)


@dataclass
class _NamespaceView:
    inode: int
    path: str
    interfaces: dict[int, str]
    xdp: dict[int, tuple[int, int]]  # ifindex -> (prog id, xdp flags of its mode)
    tcx: dict[tuple[int, int], list[int]]  # (ifindex, attach type) -> prog ids
    cls_bpf: list[dict[str, Any]]


def _scan_namespace() -> _NamespaceView:
    """Run inside a namespace (see netns.run_in): its hooks and what sits on them."""
    interfaces = {index: name for index, name in socket.if_nameindex()}
    xdp: dict[int, tuple[int, int]] = {}
    tcx: dict[tuple[int, int], list[int]] = {}
    for index in interfaces:
        for prog_id, flags in xdp_attach.attached_by_mode(index):
            xdp[index] = (prog_id, flags)
        for attach_type in (BPF_TCX_INGRESS, BPF_TCX_EGRESS):
            ids = tc.tcx_prog_ids(index, attach_type)
            if ids:
                tcx[(index, attach_type)] = ids
    cls_bpf: list[dict[str, Any]] = []
    qdiscs = _tc_json(["qdisc", "show"])
    for dev in sorted({str(q.get("dev")) for q in qdiscs if q.get("kind") == "clsact"}):
        for parent in ("ingress", "egress"):
            for f in _tc_json(["filter", "show", "dev", str(dev), parent]):
                options = f.get("options") or {}
                prog = options.get("prog") or {}
                if f.get("kind") == "bpf" and str(prog.get("name", "")).startswith(PREFIX):
                    cls_bpf.append({"dev": dev, "parent": parent, "pref": f.get("pref"),
                                    "handle": options.get("handle"), "prog_id": prog.get("id"),
                                    "protocol": f.get("protocol", "all")})
    return _NamespaceView(netns.current_inode(), "", interfaces, xdp, tcx, cls_bpf)


def _tc_json(args: list[str]) -> list[dict[str, Any]]:
    if not shutil.which("tc"):
        return []
    out = subprocess.run(["tc", "-j", *args], capture_output=True, text=True, check=False).stdout
    try:
        data = json.loads(out or "[]")
    except json.JSONDecodeError:
        return []
    return data if isinstance(data, list) else []


def _scan_all_namespaces() -> list[_NamespaceView]:
    views = []
    for path in netns.all_namespaces().values():
        try:
            view = netns.run_in(path, _scan_namespace)
        except (NetbpfError, OSError):
            # Gone meanwhile: `ip netns del` between listing and entering it
            # leaves open() with FileNotFoundError, not a NetbpfError.
            continue
        view.path = path
        views.append(view)
    return views


def _holds_xdp(view: _NamespaceView, ifindex: int, prog_id: int) -> bool:
    return view.xdp.get(ifindex, (0, 0))[0] == prog_id


def _holds_tcx(view: _NamespaceView, key: tuple[int, int], prog_id: int) -> bool:
    return prog_id in view.tcx.get(key, [])


def _cgroup_path(cgroup_id: int) -> str:
    try:
        root = fs.cgroup2_root()
    except NetbpfError:
        return f"cgroup id {cgroup_id}"
    for dirpath, _, _ in os.walk(root):
        try:
            if os.stat(dirpath).st_ino == cgroup_id:
                return dirpath
        except OSError:
            continue
    return f"cgroup id {cgroup_id}"


def _pins() -> list[tuple[str, str, int, str]]:
    """(path, object kind, id, name) of everything pinned under the pin root
    (nothing when the root is not netbpf's: see _pin_root_problem)."""
    pins: list[tuple[str, str, int, str]] = []
    try:
        root = fs.check_pin_root()
    except NetbpfError:
        return pins
    if root is None:
        return pins
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            try:
                fd = fd_by_pin(path)
            except NetbpfError:
                pins.append((path, "?", 0, ""))
                continue
            try:
                kind, obj_id, obj_name = _describe_fd(fd)
            finally:
                close_quietly(fd)
            pins.append((path, kind, obj_id, obj_name))
    return pins


def _pin_root_problem() -> str:
    """Why the pin root is not netbpf's ('' when it is, or is absent)."""
    try:
        fs.check_pin_root()
    except NetbpfError as e:
        return str(e)
    return ""


def _pin_is_ours(record: made.Made, kind: str, obj_id: int) -> bool:
    """A pin is netbpf's when the object it holds is on record (a link: its program)."""
    if kind == "map":
        return record.has_map(obj_id)
    if kind == "prog":
        return record.has_prog(obj_id, made.prog_tag(obj_id))
    if kind == "link":
        try:
            fd = fd_by_id("link", obj_id)
        except BpfError:
            return False
        try:
            prog_id = link_info(fd).prog_id
        finally:
            close_quietly(fd)
        return record.has_prog(prog_id, made.prog_tag(prog_id))
    return False


def _describe_fd(fd: int) -> tuple[str, int, str]:
    link = Path(f"/proc/self/fd/{fd}").resolve().name  # anon_inode:bpf-prog / bpf-map / bpf-link
    text = Path(f"/proc/self/fdinfo/{fd}").read_text()
    fields = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
    if "link_id" in fields:
        return "link", int(fields["link_id"]), fields.get("link_type", "")
    if "prog_id" in fields:
        return "prog", int(fields["prog_id"]), ""
    if "map_id" in fields:
        return "map", int(fields["map_id"]), ""
    return link, 0, ""


def collect() -> list[Entry]:
    """Everything netbpf has attached, loaded or pinned, across all namespaces;
    what only looks like it is last, as kind "foreign"."""
    record = made.read()
    foreign: dict[int, _Prog] = {}
    progs = _netbpf_programs(record, foreign)
    prog_holders, link_holders = _holders()
    views = _scan_all_namespaces()
    entries: list[Entry] = []
    covered: set[int] = set()
    pins = [p for p in _pins() if _pin_is_ours(record, p[1], p[2])]
    pinned_links = {obj_id: path for path, kind, obj_id, _ in pins if kind == "link"}

    def where(ifindex: int, holds: Callable[[_NamespaceView], bool]) -> tuple[_NamespaceView | None, str]:
        """The namespace whose interface ``ifindex`` holds the program, and its name."""
        for view in views:
            if ifindex in view.interfaces and holds(view):
                return view, view.interfaces[ifindex]
        # A link whose interface was deleted stays (held by a pin or an fd), attached to nothing.
        return None, f"ifindex {ifindex}" if ifindex else "no interface (deleted, or detached)"

    linked_xdp: set[tuple[int, int]] = set()
    for info in links():
        lid = info.id
        prog = progs.get(info.prog_id)
        if prog is None:
            continue
        covered.add(prog.id)
        view: _NamespaceView | None = None
        target = info.target
        index, pid = info.ifindex, prog.id
        if info.type == "xdp":
            view, target = where(index, partial(_holds_xdp, ifindex=index, prog_id=pid))
            linked_xdp.add((view.inode if view else 0, index))
        elif info.type == "tcx":
            key = (index, BPF_TCX_INGRESS if info.attach_type == "tcx_ingress" else BPF_TCX_EGRESS)
            view, target = where(index, partial(_holds_tcx, key=key, prog_id=pid))
            target += " " + info.attach_type.removeprefix("tcx_")
        elif info.type == "cgroup":
            target = f"{_cgroup_path(int(info.target.split()[-1]))} ({info.attach_type.removeprefix('cgroup_')})"
        restores, stacked = _unwind(prog, progs) if info.type == "xdp" else (0, ())
        entries.append(Entry(
            kind=info.type, program=prog.name, prog_id=prog.id, target=target, since=prog.since,
            holders=tuple(link_holders.get(lid, [])), link_id=lid,
            netns=netns.label(view.inode) if view else "", netns_path=view.path if view else "",
            ifindex=info.ifindex, pinned=pinned_links.get(lid, ""), restores=restores,
            stacked=tuple(p.id for p in stacked),
            map_ids=prog.map_ids + tuple(m for p in stacked for m in p.map_ids),
        ))
    for view in views:
        label = netns.label(view.inode)
        for ifindex, (prog_id, flags) in view.xdp.items():
            prog = progs.get(prog_id)
            if prog is None or (view.inode, ifindex) in linked_xdp:
                continue
            covered.add(prog_id)
            restores, stacked = _unwind(prog, progs)
            entries.append(Entry(
                kind="xdp-netlink", program=prog.name, prog_id=prog_id,
                target=view.interfaces.get(ifindex, f"ifindex {ifindex}"), since=prog.since,
                holders=tuple(prog_holders.get(prog_id, [])), netns=label, netns_path=view.path,
                ifindex=ifindex, restores=restores, stacked=tuple(p.id for p in stacked),
                tc={"xdp_flags": flags}, map_ids=prog.map_ids + tuple(m for p in stacked for m in p.map_ids),
            ))
        for f in view.cls_bpf:
            prog = progs.get(int(f["prog_id"]))
            if prog is None:
                continue
            covered.add(prog.id)
            entries.append(Entry(
                kind="cls_bpf", program=prog.name, prog_id=prog.id,
                target=f"{f['dev']} {f['parent']}", since=prog.since,
                holders=tuple(prog_holders.get(prog.id, [])), netns=label, netns_path=view.path,
                tc=f,
            ))
    for prog in progs.values():
        if prog.id not in covered:
            holders = prog_holders.get(prog.id, [])
            entries.append(Entry(
                kind="loaded", program=prog.name, prog_id=prog.id,
                target=prog.type + ("" if holders else " (held by a map or pin)"),
                since=prog.since, holders=tuple(holders),
            ))
    places = {netns.label(view.inode): set(view.interfaces.items()) for view in views}
    for path, kind, obj_id, _name in pins:
        owner = pin_owner(Path(path), places)
        whose = f" ({owner.tool} on {owner.interface}{'' if owner.present else ', gone'})" if owner else ""
        entries.append(Entry(kind="pin", program="", prog_id=obj_id if kind == "prog" else 0,
                             target=f"{kind} id {obj_id}{whose}", pinned=path,
                             netns=owner.netns if owner else ""))
    return entries + _foreign(record, foreign, views, entries)


def _foreign(record: made.Made, progs: dict[int, _Prog], views: list[_NamespaceView],
             ours: list[Entry]) -> list[Entry]:
    """What looks like netbpf's and is not on record: programs named netbpf_*,
    pins under the pin root, a pin root netbpf does not own."""
    entries = []
    for prog in progs.values():
        where = ""
        label = ""
        for view in views:
            for ifindex, (prog_id, _) in view.xdp.items():
                if prog_id == prog.id:
                    where, label = f" on {view.interfaces.get(ifindex, ifindex)} (xdp)", netns.label(view.inode)
        for entry in ours:
            if entry.restores == prog.id:  # a netbpf front program stands before it
                where, label = f" behind {entry.program} on {entry.target} (xdp)", entry.netns
        entries.append(Entry(kind="foreign", program=prog.name, prog_id=prog.id,
                             target=f"{prog.type}{where}: {FOREIGN} (netbpf did not load it)",
                             since=prog.since, netns=label))
    for path, kind, obj_id, _ in _pins():
        if not _pin_is_ours(record, kind, obj_id):
            entries.append(Entry(kind="foreign", program="", prog_id=obj_id if kind == "prog" else 0,
                                 target=f"{kind} id {obj_id}: {FOREIGN} (netbpf did not pin it)",
                                 pinned=path))
    problem = _pin_root_problem()
    if problem:
        entries.append(Entry(kind="foreign", program="", prog_id=0,
                             target=f"{FOREIGN}: {problem}", pinned=str(fs.PIN_ROOT)))
    return entries


# -- removing -------------------------------------------------------------------------------

def _restore_or_detach_xdp_netlink(entry: Entry) -> str:
    def act() -> str:
        flags = int(entry.tc.get("xdp_flags", 0))
        xdp_front.put_back(entry.prog_id, entry.restores, ifindex=entry.ifindex, flags=flags)
        if entry.restores:
            return f"restored XDP program id {entry.restores} on {entry.target}"
        return f"detached XDP {entry.program} from {entry.target}"
    return netns.run_in(entry.netns_path, act) if entry.netns_path else act()


def _detach_link(entry: Entry) -> str:
    if entry.restores:
        xdp_front.put_back(entry.prog_id, entry.restores, link_id=entry.link_id)
        return f"restored XDP program id {entry.restores} on {entry.target}"
    with Link.from_id(entry.link_id) as link:
        link.description = f"link {entry.link_id}"
        link.detach()
    return f"detached {entry.kind} {entry.program} from {entry.target}"


def _delete_cls_bpf(entry: Entry) -> str:
    f = entry.tc
    args = ["tc", "filter", "del", "dev", str(f["dev"]), str(f["parent"]), "pref", str(f["pref"]),
            "handle", str(f["handle"]), "bpf"]

    def act() -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, capture_output=True, text=True, check=False)
    result = netns.run_in(entry.netns_path, act) if entry.netns_path else act()
    if result.returncode != 0:
        raise BpfError(f"delete cls_bpf filter {entry.program} on {entry.target}", _errno.EIO,
                       result.stderr.strip())
    return f"deleted cls_bpf filter {entry.program} on {entry.target}"


def cleanup(only_netns: int | None = None) -> tuple[list[str], list[str], list[str]]:
    """Remove everything netbpf left; returns (what was done, what could not
    be, what was left alone because it is not netbpf's)."""
    done: list[str] = []
    failed: list[str] = []
    entries = collect()
    record = made.read()
    if only_netns is not None:
        label = netns.label(only_netns)
        entries = [e for e in entries if e.netns == label or e.pinned == str(fs.PIN_ROOT)]
    left = [f"left alone: {_describe_foreign(e)}" for e in entries if e.kind == "foreign"]
    entries = [e for e in entries if e.kind != "foreign"]
    # A netbpf process still running detaches what it loaded at its exit: not a leftover.
    running = {id(e): record.running_loader({e.prog_id}, set(e.map_ids)) for e in entries if e.prog_id}
    left += [f"left to pid {running[id(e)]}, the netbpf process still using it (it detaches at "
             f"exit; what stays pinned behind it, cleanup removes then): {e.kind} {e.program} ({e.target})"
             for e in entries if running.get(id(e))]
    entries = [e for e in entries if not running.get(id(e))]
    pins = [p for p in _pins() if _pin_is_ours(record, p[1], p[2]) and not _pin_in_use(record, p[1], p[2])]
    for entry in entries:
        try:
            if entry.kind in DETACHABLE_LINKS and entry.link_id:
                done.append(_detach_link(entry))
            elif entry.kind == "xdp-netlink":
                done.append(_restore_or_detach_xdp_netlink(entry))
            elif entry.kind == "cls_bpf":
                done.append(_delete_cls_bpf(entry))
            elif entry.link_id and not entry.pinned and entry.holders:
                failed.append(f"{entry.kind} {entry.program} ({entry.target}) is held by "
                              f"{', '.join(entry.holders)}: stop that process")
            if entry.kind in ("xdp", "xdp-netlink") or (entry.kind in DETACHABLE_LINKS and entry.link_id
                                                        and entry.pinned):
                # Our XDP program is off the hook (the original back, netlink or in its
                # link): its pins (the PROG_ARRAY that kept the original alive behind it,
                # a chain's maps and dispatcher) have done their job. So have a detached
                # pinned link's (a `fault --pin`: its link and counters), which would
                # otherwise stay, holding a link that is attached nowhere.
                progs = (entry.prog_id, *entry.stacked)  # and the front programs stacked behind it
                for path, kind, obj_id, _ in pins:
                    ours = (obj_id in entry.map_ids if kind == "map" else obj_id in progs if kind == "prog"
                            else kind == "link" and obj_id == entry.link_id != 0)
                    if ours and os.path.exists(path):
                        os.unlink(path)
                        done.append(f"unpinned {kind} id {obj_id} at {path}")
                        fs.remove_empty_dirs(Path(path).parent)  # the tool's own directory and up, if now empty
        except NetbpfError as e:
            failed.append(str(e))
    if only_netns is not None and only_netns == netns.current_inode():
        done += remove_left_pins(netns.label(only_netns), pins)
    if only_netns is None and not _pin_root_problem() and fs.PIN_ROOT.is_dir():
        for path, kind, obj_id, _ in _pins():
            if _pin_is_ours(record, kind, obj_id) and not _pin_in_use(record, kind, obj_id):
                os.unlink(path)
                done.append(f"unpinned {kind} id {obj_id} at {path}")
        for dirpath, _, _ in sorted(os.walk(fs.PIN_ROOT), key=lambda w: -len(w[0])):
            fs.remove_empty_dirs(Path(dirpath))
    if only_netns is None:
        made.prune()
    return done, failed, left


def _pin_in_use(record: made.Made, kind: str, obj_id: int) -> bool:
    """A pin of a netbpf process still running (dump's PROG_ARRAY): it unpins at exit."""
    if kind == "map":
        return bool(record.running_loader(set(), {obj_id}))
    if kind == "prog":
        return bool(record.running_loader({obj_id}, set()))
    return False  # a pinned link outlives its process on purpose (--pin, accel)


def _describe_foreign(entry: Entry) -> str:
    what = f"program {entry.program} id {entry.prog_id}" if entry.program else entry.pinned
    where = f" in {entry.netns}" if entry.netns else ""
    return f"{what}{where}: {entry.target}"
