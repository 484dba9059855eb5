"""What the kernel says about loaded programs, maps and links (``BPF_OBJ_GET_INFO_BY_FD``).

The ctypes structs mirror ``struct bpf_prog_info``, ``bpf_map_info`` and
``bpf_link_info`` of the uapi header; a unit test compares them with the
running kernel's BTF. Enumeration by id is how ``netbpf status`` finds
everything netbpf has loaded, whoever loaded it.
"""
from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Iterator
from ctypes import Structure, c_char, c_uint8, c_uint32, c_uint64
from dataclasses import dataclass

from ..errors import BpfError, check, from_errno
from . import _libbpf as L


class BpfProgInfo(Structure):
    _fields_ = [
        ("type", c_uint32), ("id", c_uint32), ("tag", c_uint8 * 8),
        ("jited_prog_len", c_uint32), ("xlated_prog_len", c_uint32),
        ("jited_prog_insns", c_uint64), ("xlated_prog_insns", c_uint64),
        ("load_time", c_uint64), ("created_by_uid", c_uint32), ("nr_map_ids", c_uint32),
        ("map_ids", c_uint64), ("name", c_char * 16), ("ifindex", c_uint32),
        ("gpl_compatible", c_uint32), ("netns_dev", c_uint64), ("netns_ino", c_uint64),
        ("nr_jited_ksyms", c_uint32), ("nr_jited_func_lens", c_uint32),
        ("jited_ksyms", c_uint64), ("jited_func_lens", c_uint64),
        ("btf_id", c_uint32), ("func_info_rec_size", c_uint32), ("func_info", c_uint64),
        ("nr_func_info", c_uint32), ("nr_line_info", c_uint32), ("line_info", c_uint64),
        ("jited_line_info", c_uint64), ("nr_jited_line_info", c_uint32),
        ("line_info_rec_size", c_uint32), ("jited_line_info_rec_size", c_uint32),
        ("nr_prog_tags", c_uint32), ("prog_tags", c_uint64), ("run_time_ns", c_uint64),
        ("run_cnt", c_uint64), ("recursion_misses", c_uint64), ("verified_insns", c_uint32),
        ("attach_btf_obj_id", c_uint32), ("attach_btf_id", c_uint32), ("_pad", c_uint32),
    ]


class BpfMapInfo(Structure):
    _fields_ = [
        ("type", c_uint32), ("id", c_uint32), ("key_size", c_uint32), ("value_size", c_uint32),
        ("max_entries", c_uint32), ("map_flags", c_uint32), ("name", c_char * 16),
        ("ifindex", c_uint32), ("btf_vmlinux_value_type_id", c_uint32),
        ("netns_dev", c_uint64), ("netns_ino", c_uint64), ("btf_id", c_uint32),
        ("btf_key_type_id", c_uint32), ("btf_value_type_id", c_uint32), ("_pad", c_uint32),
        ("map_extra", c_uint64),
    ]


class BpfLinkInfo(Structure):
    # The union that follows prog_id differs per link type; decoded in LinkInfo.
    _fields_ = [("type", c_uint32), ("id", c_uint32), ("prog_id", c_uint32), ("_pad", c_uint32),
                ("u", c_uint32 * 16)]


LINK_TYPES = {
    1: "raw_tracepoint", 2: "tracing", 3: "cgroup", 4: "iter", 5: "netns", 6: "xdp",
    7: "perf_event", 8: "kprobe_multi", 9: "struct_ops", 10: "netfilter", 11: "tcx",
    12: "uprobe_multi", 13: "netkit", 14: "sockmap",
}

PROG_TYPES = {
    1: "socket_filter", 2: "kprobe", 3: "sched_cls", 4: "sched_act", 5: "tracepoint", 6: "xdp",
    7: "perf_event", 8: "cgroup_skb", 9: "cgroup_sock", 13: "sock_ops", 14: "sk_skb",
    16: "sk_msg", 17: "raw_tracepoint", 26: "tracing",
}

ATTACH_TYPES = {
    0: "cgroup_inet_ingress", 1: "cgroup_inet_egress", 3: "cgroup_sock_ops",
    4: "sk_skb_stream_parser", 5: "sk_skb_stream_verdict", 7: "sk_msg_verdict",
    23: "trace_raw_tp", 37: "xdp", 46: "tcx_ingress", 47: "tcx_egress", 41: "perf_event",
}


def _get_info(fd: int, info: Structure, what: str) -> None:
    size = c_uint32(ctypes.sizeof(info))
    check(L.lib.bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)), f"get {what} info")


def prog_info(fd: int) -> BpfProgInfo:
    info = BpfProgInfo()
    _get_info(fd, info, "program")
    return info


def prog_map_ids(fd: int) -> list[int]:
    info = prog_info(fd)
    count = info.nr_map_ids
    ids = (c_uint32 * max(count, 1))()
    info2 = BpfProgInfo(nr_map_ids=count, map_ids=ctypes.addressof(ids))
    _get_info(fd, info2, "program")
    return list(ids[:count])


def map_info(fd: int) -> BpfMapInfo:
    info = BpfMapInfo()
    _get_info(fd, info, "map")
    return info


@dataclass(frozen=True, slots=True)
class LinkInfo:
    id: int
    type: str
    prog_id: int
    target: str  # human-readable: "ifindex 3", "cgroup 1", "skb:kfree_skb"
    ifindex: int = 0
    attach_type: str = ""


def link_info(fd: int) -> LinkInfo:
    info = BpfLinkInfo()
    _get_info(fd, info, "link")
    kind = LINK_TYPES.get(info.type, f"type {info.type}")
    u = info.u
    ifindex, attach = 0, ""
    if kind in ("xdp", "tcx", "netkit"):
        ifindex = u[0]
        attach = ATTACH_TYPES.get(u[1], str(u[1])) if kind != "xdp" else "xdp"
        target = f"ifindex {ifindex}"
    elif kind == "cgroup":
        attach = ATTACH_TYPES.get(u[2], str(u[2]))
        target = f"cgroup id {u[0] | (u[1] << 32)}"
    elif kind == "sockmap":
        attach = ATTACH_TYPES.get(u[1], str(u[1]))
        target = f"map id {u[0]}"
    elif kind == "netns":
        target = f"netns ino {u[0]}"
    elif kind in ("raw_tracepoint", "perf_event"):
        target = _tracepoint_name(fd, kind) or kind
    else:
        target = kind
    return LinkInfo(info.id, kind, info.prog_id, target, ifindex, attach)


def _tracepoint_name(fd: int, kind: str) -> str:
    """Ask again with a buffer for the name (the kernel fills it in place)."""
    name = ctypes.create_string_buffer(256)
    info = BpfLinkInfo()
    # raw_tracepoint: {u64 tp_name; u32 tp_name_len}
    # perf_event:     {u32 type; u32 pad; {u64 tp_name; u32 name_len; ...} tracepoint}
    at = 0 if kind == "raw_tracepoint" else 2
    address = ctypes.addressof(name)
    info.u[at], info.u[at + 1], info.u[at + 2] = address & 0xFFFFFFFF, address >> 32, len(name)
    try:
        _get_info(fd, info, "link")
    except Exception:
        return ""
    return name.value.decode(errors="replace")


def _ids(getter: str) -> Iterator[int]:
    current = c_uint32(0)
    fn = getattr(L.lib, getter)
    while fn(current.value, ctypes.byref(current)) == 0:
        yield current.value


def prog_ids() -> Iterator[int]:
    return _ids("bpf_prog_get_next_id")


def map_ids() -> Iterator[int]:
    return _ids("bpf_map_get_next_id")


def link_ids() -> Iterator[int]:
    return _ids("bpf_link_get_next_id")


def links() -> Iterator[LinkInfo]:
    """Every BPF link of the machine, with its info (one gone meanwhile is passed over)."""
    for lid in link_ids():
        try:
            fd = fd_by_id("link", lid)
        except BpfError:
            continue
        try:
            info = link_info(fd)
        finally:
            close_quietly(fd)
        yield info


def fd_by_id(kind: str, obj_id: int) -> int:
    """A new fd for the program/map/link with this id (the caller closes it)."""
    fn = {"prog": L.lib.bpf_prog_get_fd_by_id, "map": L.lib.bpf_map_get_fd_by_id,
          "link": L.lib.bpf_link_get_fd_by_id}[kind]
    fd = fn(obj_id)
    if fd < 0:
        raise from_errno(f"get {kind} id {obj_id}", -fd)
    return int(fd)


def fd_by_pin(path: str | os.PathLike[str], kind: str = "object") -> int:
    """A new fd for the object pinned at ``path`` (BPF_OBJ_GET; the caller closes it)."""
    fd = L.lib.bpf_obj_get(os.fspath(path).encode())
    if fd < 0:
        raise from_errno(f"open pinned {kind} {os.fspath(path)}", -fd)
    return int(fd)


def boottime_to_epoch(ns_since_boot: int) -> float:
    """Wall-clock time of a ``load_time`` (nanoseconds of CLOCK_BOOTTIME)."""
    now_boot = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    return time.time() - (now_boot - ns_since_boot) / 1e9


def close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
