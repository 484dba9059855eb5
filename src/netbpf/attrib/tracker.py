"""Keep the socket -> process map (netbpf/attrib.h) for as long as a tool runs.

``Tracker.start()`` loads attrib.bpf.o, attaches cgroup/sock_create to the
cgroup v2 root (every new AF_INET/AF_INET6 socket of the machine, made in
its process) and sched_process_exec, and only then fills in the sockets that
were already open: sock_diag in each network namespace that a process uses
(cookie, inode), /proc/*/fd (inode -> process), /proc/PID/cgroup. In that
order no socket falls between the two, and an entry the kernel made first is
never overwritten (BPF_NOEXIST). A tool's capture object is then given the
maps (:meth:`share_maps`, before its load).

:class:`Owners` turns a record's numbers into what users read: the cgroup's
path and the container it names.
"""
from __future__ import annotations

import ctypes
import os
import socket
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from .. import netns
from ..bpf import BpfObject, object_path
from ..bpf.attach.base import Attachment
from ..bpf.attach.cgroup import CgroupOptions, attach_cgroup
from ..bpf.attach.trace import attach_section
from ..bpf.fs import cgroup2_root
from ..errors import NetbpfError, UsageError, path_is
from . import procfs, sockdiag
from .container import Container, container_of, describe

BPF_OBJECT = "attrib.bpf.o"
MAPS = ("attrib_socks", "attrib_comms", "attrib_labels", "attrib_gen")
LABEL_LEN = 512  # ATTRIB_LABEL_LEN
LABEL_INTERVAL = 1.0  # seconds between walks of the cgroup tree for new cgroups' labels
BPF_NOEXIST = 1
COMM_LEN = 16

# enum attrib_origin / attrib_status (netbpf/attrib.h)
CREATED, FOUND, ACCEPTED = 1, 2, 3
OWNER, NO_SOCKET, UNKNOWN_OWNER, TIME_WAIT, NOT_LOOKED_UP = 0, 1, 2, 3, 4
STATUS_TEXT = {NO_SOCKET: "no local socket", UNKNOWN_OWNER: "local socket, owner unknown",
               TIME_WAIT: "local socket in TIME-WAIT, closed by its process",
               NOT_LOOKED_UP: "owner unknown (received, not TCP/UDP right after IP: no socket lookup)"}


class AttribSock(ctypes.Structure):
    _c_name_ = "attrib_sock"
    _fields_ = [("pid", ctypes.c_uint32), ("tid", ctypes.c_uint32), ("cgroup_id", ctypes.c_uint64),
                ("comm", ctypes.c_char * COMM_LEN), ("selected", ctypes.c_uint32), ("origin", ctypes.c_uint32)]


class AttribRecord(ctypes.Structure):
    _c_name_ = "attrib_record"
    _fields_ = [("cookie", ctypes.c_uint64), ("status", ctypes.c_uint32), ("pid", ctypes.c_uint32),
                ("tid", ctypes.c_uint32), ("origin", ctypes.c_uint32), ("cgroup_id", ctypes.c_uint64),
                ("comm", ctypes.c_char * COMM_LEN)]


SHARED_STRUCTS = (AttribSock, AttribRecord)


@dataclass(frozen=True, slots=True)
class Selection:
    """The cgroup subtree whose sockets are marked ``selected`` (--cgroup, --container)."""
    path: str  # relative to the cgroup v2 root, "/..."
    cgroup_id: int
    level: int  # depth below the root (the root is 0)


def select_cgroup(path: str) -> Selection:
    """A cgroup given as a path under the v2 root ("/system.slice/x") or a full path."""
    root = cgroup2_root()
    full = Path(path)
    if not full.is_absolute() or root not in (full, *full.parents):
        full = root / path.lstrip("/")
    if not path_is(full, stat.S_ISDIR, f"cgroup {path}"):
        raise NetbpfError(f"no such cgroup: {path} (looked for {full})")
    rel = "/" + str(full.relative_to(root)).lstrip(".")
    rel = "/" if rel in ("/", "/.") else rel
    level = 0 if rel == "/" else rel.count("/")
    return Selection(rel, os.stat(full).st_ino, level)


def select_container(wanted: str) -> Selection:
    """The cgroup of a container (its id, or a unique prefix of 4+ digits)."""
    from .container import matches

    if len(wanted) < 4:
        raise UsageError(f"--container {wanted}: give at least 4 digits of the id")
    root = cgroup2_root()
    found: dict[str, str] = {}  # container id -> its outermost cgroup
    for directory, _subdirs, _files in os.walk(root):
        rel = "/" + os.path.relpath(directory, root)
        c = container_of(rel)
        if c is not None and matches(c, wanted) and c.id not in found:
            found[c.id] = rel
    if not found:
        raise NetbpfError(f"--container {wanted}: no cgroup of such a container under {root}")
    if len(found) > 1:
        raise UsageError(f"--container {wanted}: matches {len(found)} containers; give more digits")
    return select_cgroup(next(iter(found.values())))


class Tracker:
    def __init__(self, selection: Selection | None = None, connections: bool = False) -> None:
        self.selection = selection
        self.connections = connections  # keep attrib_conns (connections.py), else leave it empty
        self.obj: BpfObject | None = None
        self.links: list[Attachment] = []
        self.found = 0  # sockets filled in at start
        self._labelled: set[int] = set()
        self._stop = threading.Event()
        self._labeller: threading.Thread | None = None

    def start(self) -> Tracker:
        try:
            obj = self.obj = BpfObject.open(object_path(__file__, BPF_OBJECT))
            if self.selection is not None:
                obj.set_rodata(select_cgroup=self.selection.cgroup_id, select_level=self.selection.level)
            if self.connections:
                obj.set_rodata(keep_conns=1)
            else:
                obj.set_map_size("attrib_conns", 1)  # unused: no 64K-entry LRU
            obj.load()
            self.links.append(attach_cgroup(obj.program("netbpf_attrsock"), CgroupOptions()))
            self.links.append(attach_section(obj.program("netbpf_attrexec")))
            self.links.append(attach_cgroup(obj.program("netbpf_attrsops"), CgroupOptions()))
            for name in ("netbpf_attracc4", "netbpf_attracc"):
                self.links.append(attach_section(obj.program(name)))
            self.found = self._fill_existing()
        except BaseException:
            self.close()
            raise
        return self

    def _fill_existing(self) -> int:
        assert self.obj is not None
        socks, comms = self.obj.map("attrib_socks"), self.obj.map("attrib_comms")
        holders = procfs.socket_holders()
        namespaces = {h.netns: h.pid for hs in holders.values() for h in hs}
        root = cgroup2_root()
        cgroups: dict[int, tuple[int, bool]] = {}
        filled = 0
        for pid in namespaces.values():
            try:
                ns_cookie, listed = netns.run_in(f"/proc/{pid}/ns/net", sockdiag.namespace)
            except (OSError, NetbpfError):
                continue  # the process is gone, or its namespace cannot be entered: stays unknown
            if self.connections:
                self._fill_connections(ns_cookie, listed)
            for s in listed:
                owners = holders.get(s.inode) if s.inode else None
                if not owners:
                    continue
                # A socket open in several processes at start (inherited, passed):
                # no way to tell which one made it. The lowest pid is named, and the
                # record says how many hold it (tid: holders, for FOUND entries).
                owner = min(owners, key=lambda h: h.pid)
                if owner.pid not in cgroups:
                    path = procfs.cgroup_path(owner.pid)
                    cid = procfs.cgroup_id(root, path) if path else None
                    cgroups[owner.pid] = (cid or 0, self._selected(path))
                cid, selected = cgroups[owner.pid]
                comm = owner.comm.encode()[:COMM_LEN - 1]
                value = AttribSock(pid=owner.pid, tid=len({h.pid for h in owners}), cgroup_id=cid,
                                   comm=comm, selected=int(selected), origin=FOUND)
                try:
                    socks.update(s.cookie, bytes(value), BPF_NOEXIST)
                    filled += 1
                except NetbpfError:  # EEXIST: the kernel saw it first, and knows better
                    pass
                try:
                    comms.update(ctypes.c_uint32(owner.pid), comm.ljust(COMM_LEN, b"\0"), BPF_NOEXIST)
                except NetbpfError:  # EEXIST: exec or sock_create updated it
                    pass
        return filled

    def _fill_connections(self, ns_cookie: int, listed: list[sockdiag.DiagSocket]) -> None:
        """attrib_conns for the TCP connections open at start (the sockops program
        sees only handshakes that complete after it is attached)."""

        assert self.obj is not None
        conns = self.obj.map("attrib_conns")
        cookie = ctypes.c_uint64
        for s in listed:
            if s.protocol != socket.IPPROTO_TCP or s.state == sockdiag.TCP_LISTEN or not s.remote_port:
                continue
            try:
                conns.update(conn_key(ns_cookie, s.local, s.local_port, s.remote, s.remote_port),
                             cookie(s.cookie), BPF_NOEXIST)
            except NetbpfError:  # EEXIST: the handshake was seen, and that entry is newer
                pass
        try:
            self.obj.map("attrib_netns").update(ctypes.c_uint64(ns_cookie), ctypes.c_uint32(1))
        except NetbpfError:
            pass  # full: connections of this namespace are not found by their addresses

    def label_cgroups(self) -> int:
        """Write each cgroup's label (its path, and the container it names) into
        attrib_labels, for comments the kernel writes; return how many were new.
        A cgroup made since the last walk is said as its id until the next one."""
        assert self.obj is not None
        labels = self.obj.map("attrib_labels")
        root = cgroup2_root()
        new = 0
        for directory, _subdirs, _files in os.walk(root):
            try:
                cid = os.stat(directory).st_ino
            except OSError:
                continue
            if cid in self._labelled:
                continue
            rel = os.path.relpath(directory, root)
            text = label("/" if rel == "." else "/" + rel).encode()
            if len(text) >= LABEL_LEN:
                continue  # too long for the kernel's copy: its comments say the id
            try:
                labels.update(ctypes.c_uint64(cid), text.ljust(LABEL_LEN, b"\0"))
            except NetbpfError:
                continue
            self._labelled.add(cid)
            new += 1
        return new

    def keep_labels(self) -> None:
        """Label cgroups now, then walk again every LABEL_INTERVAL until close()."""
        self.label_cgroups()

        def walk() -> None:
            while not self._stop.wait(LABEL_INTERVAL):
                try:
                    self.label_cgroups()
                except (OSError, NetbpfError):
                    pass  # the next walk tries again; misses are counted by the kernel
        self._labeller = threading.Thread(target=walk, name="attrib labels", daemon=True)
        self._labeller.start()

    def _selected(self, path: str | None) -> bool:
        sel = self.selection
        if sel is None or path is None:
            return False
        return sel.path == "/" or path == sel.path or path.startswith(sel.path + "/")

    def share_maps(self, other: BpfObject) -> None:
        """Before ``other`` loads: its attrib maps become this tracker's."""
        assert self.obj is not None
        for name in MAPS:
            other.map(name).reuse(self.obj.map(name))

    def close(self) -> None:
        self._stop.set()
        if self._labeller is not None:
            self._labeller.join()
            self._labeller = None
        for link in reversed(self.links):
            link.close()
        self.links = []
        if self.obj is not None:
            self.obj.close()
            self.obj = None

    def __enter__(self) -> Tracker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def label(path: str) -> str:
    """How a comment names a cgroup: its path, and the container it names."""
    c = container_of(path)
    return path if c is None else f"{path} container {describe(c)}"


@dataclass(frozen=True, slots=True)
class Owner:
    """What a packet record says about its socket, in users' words."""
    status: int
    cookie: int = 0
    pid: int = 0
    comm: str = ""
    cgroup: str | None = None
    cgroup_id: int = 0
    container: Container | None = None
    origin: int = 0
    holders: int = 1  # FOUND: processes that had the socket open at start

    @property
    def known(self) -> bool:
        return self.status == OWNER

    def comment(self) -> str:
        """One line: the pcapng packet comment."""
        if not self.known:
            return STATUS_TEXT.get(self.status, "unknown")
        text = f"pid {self.pid} comm {self.comm} cgroup "
        text += label(self.cgroup) if self.cgroup else f"id {self.cgroup_id} (removed)"
        if self.origin == FOUND and self.holders > 1:
            text += f" (socket open in {self.holders} processes at start: lowest pid shown)"
        return text

    def fields(self) -> dict[str, object]:
        """JSON fields."""
        if not self.known:
            return {"pid": None, "comm": None, "cgroup": None, "container": None,
                    "owner": STATUS_TEXT.get(self.status, "unknown")}
        c = self.container
        out: dict[str, object] = {
            "pid": self.pid, "comm": self.comm, "cgroup": self.cgroup, "cgroup_id": self.cgroup_id,
            "container": c.id if c else None, "container_runtime": c.runtime if c else None,
            "pod": c.pod if c else None, "owner": "known"}
        if self.origin == FOUND and self.holders > 1:
            out["holders"] = self.holders
        return out


class Owners:
    """Records -> :class:`Owner`, with the cgroup names cached."""

    def __init__(self, names: procfs.CgroupNames | None = None) -> None:
        self.names = names if names is not None else procfs.CgroupNames(cgroup2_root())

    def owner(self, raw: bytes | memoryview) -> Owner:
        r = AttribRecord.from_buffer_copy(raw)
        if r.status != OWNER:
            return Owner(r.status, r.cookie)
        path = self.names.path(r.cgroup_id)
        return Owner(OWNER, r.cookie, r.pid, r.comm.decode(errors="replace"), path, r.cgroup_id,
                     container_of(path) if path else None, r.origin, r.tid if r.origin == FOUND else 1)


class SocketOwners:
    """A socket cookie -> its :class:`Owner`, read from a running tracker's map (for tools
    that see a socket's cookie in their own events, such as drops)."""

    def __init__(self, tracker: Tracker, owners: Owners | None = None) -> None:
        assert tracker.obj is not None
        self.socks = tracker.obj.map("attrib_socks")
        self.comms = tracker.obj.map("attrib_comms")
        self.owners = owners or Owners()

    def owner(self, cookie: int) -> Owner:
        if not cookie:
            return Owner(UNKNOWN_OWNER)  # a socket never given a cookie: netbpf never saw it
        raw = self.socks.lookup(cookie)
        if raw is None:
            return Owner(UNKNOWN_OWNER, cookie)
        s = AttribSock.from_buffer_copy(raw)
        comm = self.comms.lookup(ctypes.c_uint32(s.pid))
        rec = AttribRecord(cookie=cookie, status=OWNER, pid=s.pid, tid=s.tid, origin=s.origin,
                           cgroup_id=s.cgroup_id, comm=(comm or bytes(s.comm)).split(b"\0", 1)[0])
        return self.owners.owner(bytes(rec))


class AttribConn(ctypes.Structure):
    _c_name_ = "attrib_conn"
    _fields_ = [("netns", ctypes.c_uint64), ("family", ctypes.c_uint32), ("local_port", ctypes.c_uint16),
                ("remote_port", ctypes.c_uint16), ("local", ctypes.c_uint8 * 16), ("remote", ctypes.c_uint8 * 16)]


def conn_key(netns: int, local: bytes, local_port: int, remote: bytes, remote_port: int) -> bytes:
    """The key of attrib_conns for one local end (addresses as :func:`packed` gives them)."""
    key = AttribConn(netns=netns, family=socket.AF_INET if len(local) == 4 else socket.AF_INET6,
                     local_port=local_port, remote_port=remote_port)
    ctypes.memmove(key.local, local, len(local))
    ctypes.memmove(key.remote, remote, len(remote))
    return bytes(key)
