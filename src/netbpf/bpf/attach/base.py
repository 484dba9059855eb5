"""The common shape of every attachment: describe it, detach it once."""
from __future__ import annotations

import ctypes
import errno as _errno
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import BpfError, check, from_errno
from .. import _libbpf as L
from ..info import LinkInfo, close_quietly, fd_by_id, fd_by_pin, link_info

if TYPE_CHECKING:
    from ..program import Program

BPF_F_REPLACE = 1 << 2  # bpf_link_update(): only if the link still holds old_prog_fd


class Attachment:
    """Something attached to a hook; ``close()`` detaches it (idempotent)."""

    kind = "attachment"

    def __init__(self, description: str) -> None:
        self.description = description
        self.closed = False

    def _detach(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._detach()

    def release(self) -> None:
        """Let go of it without detaching: someone else took it off, or will
        (netbpf.bpf.attach.xdp_front.leave does, for a program in a stack)."""
        if not self.closed:
            self.closed = True
            self._release()

    def _release(self) -> None:
        pass

    def __enter__(self) -> Attachment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "detached" if self.closed else "attached"
        return f"<{type(self).__name__} {self.description} {state}>"


class NetlinkAttachment(Attachment):
    """An attachment made over netlink, addressed by ifindex in a namespace.

    It remembers that namespace, so that detaching from another thread (or
    after entering another namespace) still reaches the right interface.
    """

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self._netns_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)

    def _detach_netlink(self) -> None:
        raise NotImplementedError

    def _detach(self) -> None:
        from ...netns import run_in

        try:
            if os.stat("/proc/thread-self/ns/net").st_ino == os.fstat(self._netns_fd).st_ino:
                self._detach_netlink()
            else:
                run_in(f"/proc/self/fd/{self._netns_fd}", self._detach_netlink)
        finally:
            os.close(self._netns_fd)

    def _release(self) -> None:
        os.close(self._netns_fd)


class Link(Attachment):
    """A BPF link held by an fd: closing the last fd detaches, unless pinned.

    The one link type of netbpf, made after cilium/ebpf's ``link.Link``: one
    made by an attach function, or taken from a pin (``from_pin``) or an id
    (``from_id``) to be updated (``update``, with BPF_F_REPLACE against the
    old program), detached (``detach``) or unpinned (``unpin``). Closing a
    taken link lets go of this fd only: the link lives on while its pin or
    its owner holds it.
    """

    kind = "link"

    def __init__(self, fd: int, description: str) -> None:
        super().__init__(description)
        self.fd = fd
        self.pinned_at: Path | None = None

    @classmethod
    def from_pin(cls, path: str | Path) -> Link:
        """The link pinned at ``path`` (``pinned_at`` set, for ``unpin``)."""
        link = cls(fd_by_pin(path, "link"), f"link pinned at {path}")
        link.pinned_at = Path(path)
        return link

    @classmethod
    def from_id(cls, link_id: int) -> Link:
        return cls(fd_by_id("link", link_id), f"link id {link_id}")

    def info(self) -> LinkInfo:
        return link_info(self.fd)

    @property
    def id(self) -> int:
        return self.info().id

    def pin(self, path: str | Path) -> None:
        """Keep the link after this process exits (until unpinned)."""
        check(L.lib.bpf_obj_pin(self.fd, str(path).encode()), f"pin link at {path}")
        self.pinned_at = Path(path)

    def unpin(self) -> None:
        """Remove the pin (the link then lives as long as its fds)."""
        if self.pinned_at is not None:
            self.pinned_at.unlink(missing_ok=True)
            self.pinned_at = None

    def update(self, new: Program, old: Program | None = None) -> None:
        """Put ``new`` in the link (BPF_LINK_UPDATE); with ``old``, only if the link
        still holds ``old`` (BPF_F_REPLACE), so a third party's update is never
        overwritten: EPERM then, said so."""
        opts = L.LinkUpdateOpts(sz=ctypes.sizeof(L.LinkUpdateOpts))
        if old is not None:
            opts.flags, opts.old_prog_fd = BPF_F_REPLACE, old.require_fd()
        ret = L.lib.bpf_link_update(self.fd, new.require_fd(), ctypes.byref(opts))
        if ret == -_errno.EPERM and old is not None:
            raise BpfError(f"update {self.description}", -ret, "the link's program changed under us: "
                           "another tool updated it")
        check(ret, f"update {self.description}")

    def detach(self, gone_ok: bool = False) -> bool:
        """Detach even if pinned or held elsewhere (BPF_LINK_DETACH). ``gone_ok``:
        a link already detached (its hook gone: ENOLINK) is not an error; False then."""
        ret = L.lib.bpf_link_detach(self.fd)
        if gone_ok and -ret in (_errno.ENOLINK, _errno.ENOENT):
            return False
        check(ret, f"detach {self.description}")
        return True

    def __enter__(self) -> Link:
        return self

    def _detach(self) -> None:
        close_quietly(self.fd)

    def _release(self) -> None:
        close_quietly(self.fd)  # the link lives on while another fd or a pin holds it


def create_link(prog: Program, target_fd: int, attach_type: int, flags: int = 0,
                description: str = "") -> Link:
    """BPF_LINK_CREATE for hooks without a module of their own (an fexit probe
    aimed at a program: ``target_fd`` 0, the target given at load)."""
    opts = L.LinkCreateOpts(sz=ctypes.sizeof(L.LinkCreateOpts), flags=flags)
    fd = L.lib.bpf_link_create(prog.require_fd(), target_fd, attach_type, ctypes.byref(opts))
    if fd < 0:
        raise from_errno(f"attach {prog.name} (attach type {attach_type})", -fd) from OSError(-fd, os.strerror(-fd))
    return Link(int(fd), description or f"{prog.name} (attach type {attach_type})")


class LibbpfLink(Link):
    """A link created by a libbpf ``bpf_program__attach_*`` call (owns extra state,
    such as the perf event of a tracepoint, released by ``bpf_link__destroy``)."""

    def __init__(self, handle: int, description: str) -> None:
        super().__init__(L.lib.bpf_link__fd(handle), description)
        self._handle = handle

    def pin(self, path: str | Path) -> None:
        check(L.lib.bpf_link__pin(self._handle, str(path).encode()), f"pin link at {path}")
        self.pinned_at = Path(path)

    def _detach(self) -> None:
        if self.pinned_at is not None:
            L.lib.bpf_link__disconnect(self._handle)
        L.lib.bpf_link__destroy(self._handle)
