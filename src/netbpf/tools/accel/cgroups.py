"""The cgroup v2 directory accel attaches to: resolved from a path, found back from an id."""
from __future__ import annotations

import os
from pathlib import Path

from ...bpf import fs
from ...bpf.attach import cgroup as cgroup_attach
from ...bpf.info import close_quietly, link_info
from .pins import _obj_get


def resolve_cgroup(path: str | Path | None) -> Path:
    """A cgroup v2 directory: absolute, or relative to the cgroup v2 mount."""
    root = fs.cgroup2_root()
    if path is None:
        return root
    p = Path(path)
    if not p.is_absolute():
        p = root / p
    return cgroup_attach.CgroupOptions(p.resolve()).resolved_path()


def _cgroup_of_link(pin: Path | None) -> str:
    if pin is None:
        return ""
    fd = _obj_get(pin)
    if fd < 0:
        return ""
    try:
        info = link_info(fd)
    finally:
        close_quietly(fd)
    return cgroup_path(int(info.target.split()[-1]))


def cgroup_path(cgroup_id: int) -> str:
    """A cgroup v2 directory from its id (the directory's inode number)."""
    root = fs.cgroup2_root()
    stack = [str(root)]
    while stack:
        path = stack.pop()
        try:
            if os.stat(path).st_ino == cgroup_id:
                return path
            with os.scandir(path) as entries:
                stack.extend(e.path for e in entries if e.is_dir(follow_symlinks=False))
        except OSError:
            continue
    return f"cgroup id {cgroup_id}"
