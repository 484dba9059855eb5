"""Processes, their sockets and cgroups, from /proc and the cgroup v2 tree."""
from __future__ import annotations

import os
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Holder:
    pid: int
    comm: str
    netns: int  # inode of /proc/PID/ns/net


def socket_holders(proc: Path = Path("/proc")) -> dict[int, list[Holder]]:
    """Socket inode -> the processes that have it open (processes, not threads:
    threads share their process's file table). Processes that exit meanwhile
    are skipped."""
    out: dict[int, list[Holder]] = defaultdict(list)
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            inodes = set()
            for fd in os.scandir(f"{entry.path}/fd"):
                target = os.readlink(fd.path)
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
            if not inodes:
                continue
            comm = Path(f"{entry.path}/comm").read_text().rstrip("\n")
            netns = os.stat(f"{entry.path}/ns/net").st_ino
        except OSError:
            continue
        holder = Holder(pid, comm, netns)
        for inode in inodes:
            out[inode].append(holder)
    return out


def cgroup_path(pid: int) -> str | None:
    """The process's cgroup v2 path ("0::" line), or None (gone, or no v2 line)."""
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:].split(" (deleted)")[0] or "/"
    return None


def cgroup_id(root: Path, path: str) -> int | None:
    """The kernel's cgroup id of a cgroup v2 path: its directory's inode number."""
    try:
        return os.stat(root / path.lstrip("/")).st_ino
    except OSError:
        return None


class CgroupNames:
    """cgroup id -> path, from a walk of the cgroup v2 tree; walked again on a
    miss (at most once a second: a removed cgroup is not found by walking)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._paths: dict[int, str] = {}
        self._walked = 0.0

    def _walk(self) -> None:
        paths = {}
        for directory, _subdirs, _files in os.walk(self.root):
            try:
                rel = os.path.relpath(directory, self.root)
                paths[os.stat(directory).st_ino] = "/" if rel == "." else "/" + rel
            except OSError:
                continue
        self._paths = paths
        self._walked = time.monotonic()

    def path(self, cgroup_id: int) -> str | None:
        found = self._paths.get(cgroup_id)
        if found is None and time.monotonic() - self._walked > 1.0:
            self._walk()
            found = self._paths.get(cgroup_id)
        return found

    def remember(self, cgroup_id: int, path: str) -> None:
        self._paths[cgroup_id] = path
