"""cgroup v2 programs (sock_ops, ...) as BPF links on a cgroup directory."""
from __future__ import annotations

import ctypes
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ...errors import NetbpfError, NotSupported, from_errno, path_is
from .. import _libbpf as L
from ..fs import cgroup2_root
from ..program import Program
from .base import Link

BPF_CGROUP_SOCK_OPS = 3


@dataclass(frozen=True, slots=True)
class CgroupOptions:
    path: Path | None = None  # None: the cgroup v2 root
    attach_type: int | None = None  # None: the program's expected attach type

    def resolved_path(self) -> Path:
        root = cgroup2_root()
        path = Path(self.path) if self.path is not None else root
        if not path_is(path, stat.S_ISDIR, f"cgroup {path}"):
            raise NetbpfError(f"no such cgroup: {path}")
        if root not in (path, *path.parents):
            raise NotSupported("cgroup v1 attachment", f"{path} is not under the cgroup v2 mount {root}")
        return path


class CgroupLink(Link):
    kind = "cgroup"


def attach_cgroup(prog: Program, options: CgroupOptions) -> CgroupLink:
    path = options.resolved_path()
    attach_type = options.attach_type if options.attach_type is not None else prog.expected_attach_type
    cgroup_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        opts = L.LinkCreateOpts(sz=ctypes.sizeof(L.LinkCreateOpts))
        fd = L.lib.bpf_link_create(prog.require_fd(), cgroup_fd, attach_type, ctypes.byref(opts))
    finally:
        os.close(cgroup_fd)
    if fd < 0:
        raise from_errno(f"attach {prog.name} to cgroup {path}", -fd)
    return CgroupLink(fd, f"cgroup {prog.name} on {path}")
