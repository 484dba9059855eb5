"""The file systems BPF needs: bpffs for pins, tracefs for tracepoints, cgroup v2.

bpffs may be absent (and is absent inside ``ip netns exec``, which remounts
/sys); tracefs may be unmounted; cgroup v2 may sit beside a v1 hierarchy
(``/sys/fs/cgroup/unified`` on this machine). Each is found from
/proc/self/mounts and mounted when missing.
"""
from __future__ import annotations

import ctypes
import os
from functools import cache
from pathlib import Path

from . import _libbpf as L
from .errors import NotPermitted, NotSupported, from_errno

BPFFS = Path("/sys/fs/bpf")
PIN_ROOT = BPFFS / "netbpf"
TRACEFS_CANDIDATES = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))


def mounts() -> list[tuple[str, str, str]]:
    """(source, mount point, fs type) of the current mount namespace."""
    out = []
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 3:
                out.append((fields[0], fields[1].replace("\\040", " "), fields[2]))
    return out


def _mount(fstype: str, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    if L.libc.mount(fstype.encode(), str(target).encode(), fstype.encode(), 0, None) != 0:
        err = ctypes.get_errno()
        if os.geteuid() != 0:
            raise NotPermitted(f"mount {fstype} on {target}")
        raise from_errno(f"mount {fstype} on {target}", err)


def ensure_bpffs() -> Path:
    """Mount bpffs at /sys/fs/bpf when it is not there; return the pin root."""
    if not any(fstype == "bpf" and Path(point) == BPFFS for _, point, fstype in mounts()):
        _mount("bpf", BPFFS)
    PIN_ROOT.mkdir(exist_ok=True)
    return PIN_ROOT


def pin_dir(*parts: str) -> Path:
    """A directory under /sys/fs/bpf/netbpf/, created (with bpffs) on demand."""
    path = ensure_bpffs().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def remove_empty_dirs(path: Path) -> None:
    """Remove ``path`` and then each parent that is left empty, up to and with
    /sys/fs/bpf/netbpf itself: nothing of netbpf stays in bpffs once its last
    pin is gone. A directory that still holds something ends the climb."""
    if not path.is_relative_to(PIN_ROOT):
        raise ValueError(f"{path} is not under {PIN_ROOT}")
    while True:
        try:
            path.rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            return  # not empty: another tool's pins live there
        if path == PIN_ROOT:
            return
        path = path.parent


def ensure_tracefs() -> Path:
    """The tracefs mount point, mounting it at /sys/kernel/tracing when absent."""
    for _, point, fstype in mounts():
        if fstype == "tracefs":
            return Path(point)
    _mount("tracefs", TRACEFS_CANDIDATES[0])
    return TRACEFS_CANDIDATES[0]


@cache
def cgroup2_root() -> Path:
    """Where the cgroup v2 hierarchy is mounted (first cgroup2 entry of /proc/mounts)."""
    for _, point, fstype in mounts():
        if fstype == "cgroup2":
            return Path(point)
    raise NotSupported("cgroup v2", "no cgroup2 file system is mounted (mount -t cgroup2 none /sys/fs/cgroup/unified)")
