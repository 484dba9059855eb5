"""XDP: link-based attach, or netlink with an expected-program replace.

A link (``BPF_LINK_CREATE``/``BPF_XDP``) detaches when its fd closes, which is
what a tool that must not outlive its process wants. Netlink attachment
survives the process; netbpf uses it only to swap a program that somebody
else attached over netlink, atomically (``XDP_FLAGS_REPLACE`` with the
expected old program), so no packet ever meets an empty hook.
"""
from __future__ import annotations

import ctypes
import errno as _errno
from dataclasses import dataclass
from typing import Literal

from ... import netdev
from ...errors import BpfError, NotSupported, check, from_errno
from .. import _libbpf as L
from ..info import links
from ..program import Program
from .base import Attachment, Link, NetlinkAttachment

BPF_XDP = 37
XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
XDP_FLAGS_HW_MODE = 1 << 3
XDP_FLAGS_REPLACE = 1 << 4

Mode = Literal["auto", "skb", "drv", "hw"]
MODE_FLAGS = {"auto": 0, "skb": XDP_FLAGS_SKB_MODE, "drv": XDP_FLAGS_DRV_MODE, "hw": XDP_FLAGS_HW_MODE}
ATTACHED_MODES = {0: "none", 1: "drv", 2: "skb", 3: "hw", 4: "multi"}


@dataclass(frozen=True, slots=True)
class XdpOptions:
    interface: str | int
    mode: Mode = "auto"

    def __post_init__(self) -> None:
        if self.mode not in MODE_FLAGS:
            raise ValueError(f"XDP mode must be one of {', '.join(MODE_FLAGS)}")

    @property
    def ifindex(self) -> int:
        return netdev.ifindex(self.interface)


@dataclass(frozen=True, slots=True)
class XdpState:
    """What is attached at an interface's XDP hook now."""

    ifindex: int
    prog_id: int  # 0: nothing
    mode: str  # none, drv, skb, hw, multi
    link_id: int = 0  # non-zero when held by a BPF link rather than netlink

    @property
    def flags(self) -> int:
        return MODE_FLAGS.get(self.mode, 0) if self.mode in ("skb", "drv", "hw") else 0


def query(interface: str | int) -> XdpState:
    index = netdev.ifindex(interface)
    opts = L.XdpQueryOpts(sz=ctypes.sizeof(L.XdpQueryOpts))
    check(L.lib.bpf_xdp_query(index, 0, ctypes.byref(opts)), f"query XDP on {netdev.ifname(index)}")
    prog_id = opts.prog_id or opts.drv_prog_id or opts.skb_prog_id or opts.hw_prog_id
    link_id = 0
    if prog_id:
        for info in links():
            if info.type == "xdp" and info.ifindex == index and info.prog_id == prog_id:
                link_id = info.id
                break
    return XdpState(index, prog_id, ATTACHED_MODES.get(opts.attach_mode, str(opts.attach_mode)), link_id)


def attached_by_mode(ifindex: int) -> list[tuple[int, int]]:
    """(program id, XDP flags of its mode) of each program on the hook of ``ifindex``
    (drv, skb, hw; a NIC may hold more than one); [] when the query fails (the
    interface went away meanwhile): for status, which scans every interface."""
    opts = L.XdpQueryOpts(sz=ctypes.sizeof(L.XdpQueryOpts))
    if L.lib.bpf_xdp_query(ifindex, 0, ctypes.byref(opts)) != 0:
        return []
    return [(prog_id, flags) for prog_id, flags in ((opts.drv_prog_id, XDP_FLAGS_DRV_MODE),
                                                    (opts.skb_prog_id, XDP_FLAGS_SKB_MODE),
                                                    (opts.hw_prog_id, XDP_FLAGS_HW_MODE)) if prog_id]


class XdpLink(Link):
    kind = "xdp"


def attach_xdp(prog: Program, options: XdpOptions) -> XdpLink:
    """Attach as a BPF link: gone when the last fd closes."""
    index = options.ifindex
    opts = L.LinkCreateOpts(sz=ctypes.sizeof(L.LinkCreateOpts), flags=MODE_FLAGS[options.mode])
    fd = L.lib.bpf_link_create(prog.require_fd(), index, BPF_XDP, ctypes.byref(opts))
    if fd < 0:
        err = -fd
        where = f"attach XDP program {prog.name} to {netdev.ifname(index)}"
        if err == _errno.EBUSY:
            raise BpfError(where, err, "another XDP program is attached; netbpf can chain "
                           "beside it (netbpf dump, netbpf xdp chain)")
        if err == _errno.EOPNOTSUPP and options.mode == "drv":
            raise NotSupported(f"native XDP on {netdev.ifname(index)}", "use --xdp-mode skb")
        raise from_errno(where, err)
    return XdpLink(fd, f"xdp {prog.name} on {netdev.ifname(index)} ({options.mode})")


class XdpNetlinkAttachment(NetlinkAttachment):
    """A program attached over netlink in place of another; put back on close.

    ``restore`` is the program that was there before (None: nothing was), and
    it goes back with XDP_FLAGS_REPLACE against ours, so a third party that
    replaced us meanwhile is never overwritten.
    """

    kind = "xdp-netlink"

    def __init__(self, ifindex: int, prog: Program, flags: int, restore: Program | None) -> None:
        super().__init__(f"xdp {prog.name} on {netdev.ifname(ifindex)} (netlink)")
        self.ifindex, self.prog, self.flags, self.restore = ifindex, prog, flags, restore

    def _detach_netlink(self) -> None:
        swap(self.ifindex, self.restore, expected=self.prog, flags=self.flags)


def swap(ifindex: int, new: Program | None, expected: Program | None, flags: int) -> None:
    """Atomically replace the netlink-attached XDP program ``expected`` by ``new``.

    ``new=None`` detaches; ``expected=None`` requires the hook to be empty.
    """
    opts = L.XdpAttachOpts(sz=ctypes.sizeof(L.XdpAttachOpts))
    if expected is not None:
        opts.old_prog_fd = expected.require_fd()
        flags |= XDP_FLAGS_REPLACE
    else:
        flags |= XDP_FLAGS_UPDATE_IF_NOEXIST
    name = netdev.ifname(ifindex)
    if new is None:
        ret = L.lib.bpf_xdp_detach(ifindex, flags, ctypes.byref(opts))
        what = f"detach XDP from {name}"
    else:
        ret = L.lib.bpf_xdp_attach(ifindex, new.require_fd(), flags, ctypes.byref(opts))
        what = f"attach XDP program {new.name} to {name} (netlink)"
    if ret == -_errno.EEXIST or ret == -_errno.EBUSY:
        raise BpfError(what, -ret, "the XDP hook changed under us: another tool attached a program")
    check(ret, what)


def attach_xdp_netlink(prog: Program, options: XdpOptions, replace: Program | None,
                       restore_on_close: bool = True) -> XdpNetlinkAttachment:
    """Attach over netlink, replacing ``replace`` (or an empty hook) atomically."""
    index = options.ifindex
    flags = MODE_FLAGS[options.mode]
    swap(index, prog, expected=replace, flags=flags)
    return XdpNetlinkAttachment(index, prog, flags, replace if restore_on_close else None)


class XdpLinkUpdate(Attachment):
    """Our program inside somebody else's XDP link, in place of ``restore``.

    The link stays theirs (same id, same mode); ``close()`` puts ``restore``
    back with BPF_F_REPLACE against ours, so a third party that updated the
    link meanwhile is never overwritten.
    """

    kind = "xdp-link-update"

    def __init__(self, link: Link, prog: Program, restore: Program | None, description: str) -> None:
        super().__init__(description)
        self.link, self.prog, self.restore = link, prog, restore

    @property
    def link_fd(self) -> int:
        return self.link.fd

    def _detach(self) -> None:
        try:
            if self.restore is not None:
                self.link.update(self.restore, old=self.prog)
        finally:
            self.link.release()

    def _release(self) -> None:
        self.link.release()


def replace_in_link(link_id: int, prog: Program, expected: Program,
                    restore_on_close: bool = True) -> XdpLinkUpdate:
    """Atomically put ``prog`` into the XDP link ``link_id`` in place of ``expected``
    (bpf_link_update); ``close()`` puts ``expected`` back (unless told not to)."""
    link = Link.from_id(link_id)
    try:
        info = link.info()
        link.description = f"XDP link {link_id} on {netdev.ifname(info.ifindex)}"
        link.update(prog, old=expected)
    except BaseException:
        link.release()
        raise
    return XdpLinkUpdate(link, prog, expected if restore_on_close else None, f"xdp {prog.name} in link {link_id} "
                         f"on {netdev.ifname(info.ifindex)}")
