"""The common shape of every attachment: describe it, detach it once."""
from __future__ import annotations

import os
from pathlib import Path

from ...errors import check
from .. import _libbpf as L
from ..info import LinkInfo, link_info


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
    """A BPF link held by an fd: closing the last fd detaches, unless pinned."""

    kind = "link"

    def __init__(self, fd: int, description: str) -> None:
        super().__init__(description)
        self.fd = fd
        self.pinned_at: Path | None = None

    def info(self) -> LinkInfo:
        return link_info(self.fd)

    @property
    def id(self) -> int:
        return self.info().id

    def pin(self, path: str | Path) -> None:
        """Keep the link after this process exits (until unpinned)."""
        check(L.lib.bpf_obj_pin(self.fd, str(path).encode()), f"pin link at {path}")
        self.pinned_at = Path(path)

    def detach_now(self) -> None:
        """Detach even if pinned or held elsewhere (BPF_LINK_DETACH)."""
        check(L.lib.bpf_link_detach(self.fd), f"detach {self.description}")

    def _detach(self) -> None:
        os.close(self.fd)

    def _release(self) -> None:
        os.close(self.fd)  # the link lives on while another fd or a pin holds it


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
