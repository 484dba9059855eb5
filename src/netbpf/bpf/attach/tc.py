"""tc ingress/egress: tcx links where the kernel has them, else clsact + cls_bpf.

tcx (Linux 6.6) attaches as a BPF link, detached when the fd closes. Older
kernels get a cls_bpf filter in direct-action mode on a clsact qdisc, over
netlink; the qdisc is removed again only if netbpf created it and no other
filter uses it. ``act_bpf`` and ``cls_matchall`` are never needed.
"""
from __future__ import annotations

import ctypes
import errno as _errno
import json
import subprocess
from dataclasses import dataclass
from typing import Literal

from ... import netdev
from ...errors import NotSupported, check, from_errno
from .. import _libbpf as L
from .. import features
from ..program import Program
from .base import Attachment, Link, NetlinkAttachment

BPF_TCX_INGRESS, BPF_TCX_EGRESS = 46, 47
BPF_TC_INGRESS, BPF_TC_EGRESS = 1 << 0, 1 << 1

Direction = Literal["ingress", "egress"]
MAX_TCX_QUERY = 64


def tcx_prog_ids(ifindex: int, attach_type: int) -> list[int]:
    """The programs on the tcx hook ``attach_type`` of ``ifindex``, in order (BPF_PROG_QUERY;
    up to 64); [] where the kernel has no tcx or the interface went away."""
    ids = (ctypes.c_uint32 * MAX_TCX_QUERY)()
    count = ctypes.c_uint32(MAX_TCX_QUERY)
    attach_flags = ctypes.c_uint32(0)
    if L.lib.bpf_prog_query(ifindex, attach_type, 0, ctypes.byref(attach_flags), ids, ctypes.byref(count)) != 0:
        return []
    return list(ids[:count.value])
TcMode = Literal["auto", "tcx", "cls_bpf"]


@dataclass(frozen=True, slots=True)
class TcOptions:
    interface: str | int
    direction: Direction = "ingress"
    mode: TcMode = "auto"
    priority: int = 1  # cls_bpf only; tcx orders by attach time
    handle: int = 1

    def __post_init__(self) -> None:
        if self.direction not in ("ingress", "egress"):
            raise ValueError("tc direction must be ingress or egress")
        if self.mode not in ("auto", "tcx", "cls_bpf"):
            raise ValueError("tc mode must be auto, tcx or cls_bpf")
        if not 0 < self.priority < 0x10000:
            raise ValueError("tc priority must be 1..65535")


class TcxLink(Link):
    kind = "tcx"


class ClsBpfAttachment(NetlinkAttachment):
    kind = "cls_bpf"

    def __init__(self, hook: L.TcHook, opts: L.TcOpts, created_qdisc: bool, description: str) -> None:
        super().__init__(description)
        self._hook, self._opts, self.created_qdisc = hook, opts, created_qdisc

    def _detach_netlink(self) -> None:
        opts = L.TcOpts(sz=ctypes.sizeof(L.TcOpts), handle=self._opts.handle,
                        priority=self._opts.priority)
        ret = L.lib.bpf_tc_detach(ctypes.byref(self._hook), ctypes.byref(opts))
        if ret < 0 and -ret != _errno.ENOENT:
            check(ret, f"detach {self.description}")
        if self.created_qdisc and not _has_filters(self._hook.ifindex):
            both = L.TcHook(sz=ctypes.sizeof(L.TcHook), ifindex=self._hook.ifindex,
                            attach_point=BPF_TC_INGRESS | BPF_TC_EGRESS)
            L.lib.bpf_tc_hook_destroy(ctypes.byref(both))


def _has_filters(ifindex: int) -> bool:
    name = netdev.ifname(ifindex)
    for parent in ("ingress", "egress"):
        out = subprocess.run(["tc", "-j", "filter", "show", "dev", name, parent],
                             capture_output=True, text=True, check=False).stdout
        try:
            if json.loads(out or "[]"):
                return True
        except json.JSONDecodeError:
            return True  # cannot tell: keep the qdisc
    return False


def attach_tc(prog: Program, options: TcOptions) -> Attachment:
    mode = options.mode
    if mode == "auto":
        mode = "tcx" if features.has_tcx() else "cls_bpf"
    if mode == "tcx":
        return _attach_tcx(prog, options)
    return _attach_cls_bpf(prog, options)


def _attach_tcx(prog: Program, options: TcOptions) -> TcxLink:
    index = netdev.ifindex(options.interface)
    attach_type = BPF_TCX_INGRESS if options.direction == "ingress" else BPF_TCX_EGRESS
    opts = L.LinkCreateOpts(sz=ctypes.sizeof(L.LinkCreateOpts))
    fd = L.lib.bpf_link_create(prog.require_fd(), index, attach_type, ctypes.byref(opts))
    if fd < 0:
        if -fd == _errno.EINVAL and not features.has_tcx():
            raise NotSupported("tcx links (Linux 6.6+)", "use --tc-mode cls_bpf")
        raise from_errno(f"attach tcx {options.direction} {prog.name} to {netdev.ifname(index)}", -fd)
    return TcxLink(fd, f"tcx {options.direction} {prog.name} on {netdev.ifname(index)}")


def _attach_cls_bpf(prog: Program, options: TcOptions) -> ClsBpfAttachment:
    index = netdev.ifindex(options.interface)
    point = BPF_TC_INGRESS if options.direction == "ingress" else BPF_TC_EGRESS
    hook = L.TcHook(sz=ctypes.sizeof(L.TcHook), ifindex=index, attach_point=point)
    ret = L.lib.bpf_tc_hook_create(ctypes.byref(hook))
    if ret < 0 and -ret != _errno.EEXIST:
        raise from_errno(f"create clsact qdisc on {netdev.ifname(index)}", -ret,
                         "is sch_clsact built?")
    created = ret == 0
    opts = L.TcOpts(sz=ctypes.sizeof(L.TcOpts), prog_fd=prog.require_fd(),
                    priority=options.priority, handle=options.handle)
    ret = L.lib.bpf_tc_attach(ctypes.byref(hook), ctypes.byref(opts))
    if ret < 0:
        if created:
            L.lib.bpf_tc_hook_destroy(ctypes.byref(hook))
        detail = "a filter with this handle/priority exists" if -ret == _errno.EEXIST else "is cls_bpf built?"
        raise from_errno(f"attach cls_bpf {options.direction} {prog.name} to {netdev.ifname(index)}",
                         -ret, detail)
    return ClsBpfAttachment(hook, opts, created,
                            f"cls_bpf {options.direction} {prog.name} on {netdev.ifname(index)} "
                            f"(prio {opts.priority} handle {opts.handle})")
