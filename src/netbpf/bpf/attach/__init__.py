"""Attach programs to hooks; one module per attach kind.

Every attach function takes a program and an options object (validated
before any syscall) and returns an :class:`Attachment`, which detaches on
``close()`` or at the end of a ``with`` block. Link-based attachments die
with their last fd, so a killed process leaves nothing behind unless the
link was pinned on purpose.

    xdp.attach_xdp          XDP link, or netlink with an expected-program replace
    tc.attach_tc            tcx link where the kernel has it, else clsact + cls_bpf
    socket.attach_socket_filter   SO_ATTACH_BPF on a socket (AF_PACKET for capture)
    cgroup.attach_cgroup    cgroup v2 (sock_ops, ...) link
    sockmap.attach_sk_msg   sk_msg verdict on a sockhash/sockmap
    trace.attach_tracepoint / attach_tp_btf
    base.create_link        BPF_LINK_CREATE for a hook without a module (an fexit probe)
    xdp_front               stand in front of another XDP program, leave, put it back

``Link`` is also how a link made elsewhere is reached: ``Link.from_pin``,
``Link.from_id``; then ``update(new, old)``, ``detach()``, ``unpin()``.
"""
from .base import Attachment, LibbpfLink, Link

__all__ = ["Attachment", "LibbpfLink", "Link"]
