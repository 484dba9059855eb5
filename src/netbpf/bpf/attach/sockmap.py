"""sk_msg (and sk_skb) verdict programs on a sockmap or sockhash.

Since Linux 6.10 this is a BPF link; before, ``BPF_PROG_ATTACH`` binds the
program to the map for as long as the map lives (a pinned map keeps it).
"""
from __future__ import annotations

import ctypes
import errno as _errno

from ...errors import check, from_errno
from .. import _libbpf as L
from .. import features
from ..maps import Map
from ..program import Program
from .base import Attachment, Link

BPF_SK_MSG_VERDICT = 7


class SockmapLink(Link):
    kind = "sockmap"


class SockmapProgAttachment(Attachment):
    kind = "sockmap-prog-attach"

    def __init__(self, prog: Program, sockmap: Map, attach_type: int) -> None:
        super().__init__(f"{prog.name} on map {sockmap.name} (prog_attach)")
        self.prog, self.map, self.attach_type = prog, sockmap, attach_type

    def _detach(self) -> None:
        check(L.lib.bpf_prog_detach2(self.prog.require_fd(), self.map.require_fd(), self.attach_type),
              f"detach {self.description}")


def detach_sk_msg(prog: Program, sockmap: Map) -> bool:
    """Take an sk_msg verdict program attached with BPF_PROG_ATTACH (kernels
    without sockmap links) off ``sockmap``; False when it was not on it."""
    ret = L.lib.bpf_prog_detach2(prog.require_fd(), sockmap.require_fd(), BPF_SK_MSG_VERDICT)
    if ret == -_errno.ENOENT:
        return False
    check(ret, f"detach sk_msg program {prog.name} from map {sockmap.name}")
    return True


def attach_sk_msg(prog: Program, sockmap: Map, use_link: bool | None = None) -> Attachment:
    """Attach an sk_msg verdict program to ``sockmap`` (link when the kernel can)."""
    if use_link is None:
        use_link = features.has_sockmap_link()
    what = f"attach sk_msg {prog.name} to map {sockmap.name}"
    if use_link:
        opts = L.LinkCreateOpts(sz=ctypes.sizeof(L.LinkCreateOpts))
        fd = L.lib.bpf_link_create(prog.require_fd(), sockmap.require_fd(), BPF_SK_MSG_VERDICT,
                                   ctypes.byref(opts))
        if fd < 0:
            raise from_errno(what, -fd)
        return SockmapLink(fd, f"sk_msg {prog.name} on map {sockmap.name}")
    check(L.lib.bpf_prog_attach(prog.require_fd(), sockmap.require_fd(), BPF_SK_MSG_VERDICT, 0), what)
    return SockmapProgAttachment(prog, sockmap, BPF_SK_MSG_VERDICT)
