"""status: what the pins say (where, how many sockets, counters), and disabled
instances the kernel keeps while their last sockets drain."""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...bpf import fs
from ...bpf.info import close_quietly, fd_by_id, link_info, map_info, prog_ids, prog_info, prog_map_ids
from ...bpf.maps import Map
from ...bpf.object import BpfObject, object_path
from ...bpf.program import Program
from ...errors import BpfError, NetbpfError
from .cgroups import _cgroup_of_link
from .layout import BPF_MAP_TYPE_SOCKHASH, BPF_OBJECT, COUNTER_KEYS, MSG_PROG, Counter
from .pins import _obj_get, _present, count_keys, default_pin_dir, map_keys


@dataclass
class Draining:
    """A disabled instance the kernel keeps until its last accelerated socket closes."""
    prog_id: int
    sockets: int


@dataclass
class Status:
    enabled: bool
    pin_dir: str
    cgroup: str = ""
    ports: list[int] = field(default_factory=list)
    small_bytes: int = 0
    demote_after: int = 0
    queue_limit: int = 0
    sockets: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    programs: dict[str, int] = field(default_factory=dict)
    links: dict[str, int] = field(default_factory=dict)
    sk_msg_attach: str = ""  # link, or prog_attach on kernels before 6.10
    draining: list[Draining] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "enabled": self.enabled, "cgroup": self.cgroup or None, "ports": self.ports or "all",
            "sockets": self.sockets, **self.counters,
            "small_bytes": self.small_bytes, "demote_after": self.demote_after,
            "queue_limit": self.queue_limit, "pin_dir": self.pin_dir, "programs": self.programs, "links": self.links,
            "draining": [{"prog_id": d.prog_id, "sockets": d.sockets} for d in self.draining],
        }
        if not self.enabled:
            for k in ("cgroup", "ports", "small_bytes", "demote_after", "queue_limit",
                      *COUNTER_KEYS.values()):
                d.pop(k, None)
        return d


def read_status(pin_dir: Path | None = None) -> Status:
    pin_dir = pin_dir or default_pin_dir()
    present = _present(pin_dir)
    status = Status(enabled=bool(present), pin_dir=str(pin_dir))
    if present:
        if "cgroup_link" in present:
            status.cgroup = _cgroup_of_link(present["cgroup_link"])
        if "ports" in present:
            with Map.from_pin(present["ports"]) as ports:
                status.ports = sorted(int.from_bytes(k, "little") for k in map_keys(ports))
        if "sockhash" in present:
            with Map.from_pin(present["sockhash"]) as sockhash:
                status.sockets = count_keys(sockhash)
        if "counters" in present:
            with Map.from_pin(present["counters"]) as counters:
                status.counters = {COUNTER_KEYS[c]: counters.sum_u64(int(c)) for c in Counter
                                   if c != Counter.MAX_UNREAD}
                status.counters["max_unread_bytes"] = max(
                    (int.from_bytes(v[:8], "little") for v in counters.lookup_percpu(int(Counter.MAX_UNREAD))),
                    default=0)
        for role in ("sockops", "sk_msg"):
            if role in present:
                prog = Program.from_pin(str(present[role]))
                try:
                    status.programs[prog.name] = prog.id
                    if role == "sk_msg":
                        config = _rodata(prog.fd)
                        status.small_bytes = config.get("small_bytes", 0)
                        status.demote_after = config.get("demote_after", 0)
                        status.queue_limit = config.get("queue_limit", 0)
                finally:
                    prog.close()
        for role in ("cgroup_link", "sk_msg_link"):
            if role in present:
                fd = _obj_get(present[role])
                if fd >= 0:
                    try:
                        status.links[role.removesuffix("_link")] = link_info(fd).id
                    finally:
                        close_quietly(fd)
        status.sk_msg_attach = "link" if "sk_msg_link" in present else "prog_attach"
        # Complete only with both attachments: anything less is a leftover to disable.
        status.enabled = "cgroup_link" in present and "sockhash" in present
    status.draining = find_draining()
    return status


def _rodata(prog_fd: int) -> dict[str, int]:
    """The const volatile globals the program was loaded with, read back from the kernel."""
    with BpfObject.open(object_path(__file__, BPF_OBJECT), log_buffer=False) as obj:
        variables = obj.btf().datasec_variables(".rodata")
    for map_id in prog_map_ids(prog_fd):
        fd = fd_by_id("map", map_id)
        try:
            if not map_info(fd).name.decode().endswith(".rodata"):
                continue
            m = Map.from_fd(fd, owns_fd=False)
            raw = m.lookup(0) or b""
            return {name: int.from_bytes(raw[v.offset:v.offset + v.size], "little")
                    for name, v in variables.items() if v.offset + v.size <= len(raw)}
        finally:
            close_quietly(fd)
    return {}


def pinned_prog_ids() -> set[int]:
    """Ids of every program pinned anywhere under /sys/fs/bpf/netbpf."""
    ids: set[int] = set()
    if not fs.PIN_ROOT.is_dir():
        return ids
    for dirpath, _, files in os.walk(fs.PIN_ROOT):
        for name in files:
            if not name.startswith("prog_"):
                continue
            try:
                fd = _obj_get(Path(dirpath) / name)
            except NetbpfError:
                continue
            if fd >= 0:
                try:
                    ids.add(prog_info(fd).id)
                except NetbpfError:
                    pass
                finally:
                    close_quietly(fd)
    return ids


def find_draining() -> list[Draining]:
    """sk_msg programs of disabled instances, kept alive by sockets still in their map."""
    pinned = pinned_prog_ids()
    found = []
    for pid in prog_ids():
        if pid in pinned:
            continue
        try:
            fd = fd_by_id("prog", pid)
        except BpfError:
            continue
        try:
            if prog_info(fd).name.decode(errors="replace") != MSG_PROG:
                continue
            found.append(Draining(pid, _sockets_in_maps(prog_map_ids(fd))))
        finally:
            close_quietly(fd)
    return found


def _sockets_in_maps(map_ids: Iterable[int]) -> int:
    for map_id in map_ids:
        try:
            m = Map.from_id(map_id)
        except BpfError:
            continue
        try:
            if m.type == BPF_MAP_TYPE_SOCKHASH:
                return count_keys(m)
        finally:
            m.close()
    return 0
