"""What netbpf made: the record that lets cleanup remove only netbpf's own objects.

A name proves nothing (anyone can load a program called ``netbpf_mine``), and
a pin under netbpf's directory proves only that root put it there. So every
BPF object netbpf loads (``BpfObject.load``) writes the ids and tags of its
programs and the ids of its maps here before anything is attached: whatever a
SIGKILL can leave behind is on record. ``status`` and ``cleanup`` treat a
program, map, link or pin as netbpf's only when the record says so (a program
by id and tag, so that a reused id does not pass); the rest is listed as
"not netbpf's, left alone".

Where: RUN_DIR/made/<pid>-<start time>, one file per process (appended only by
that process, so no locks), root's, 0600, in directories that are root's and
0700. /run is a tmpfs, like bpffs: the record lasts as long as the objects it
describes; the boot id in each file guards against a /run that is not. A file
whose process is gone and whose objects are all gone is removed by the next
process that writes one, or by cleanup.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import NetbpfError
from . import fs
from .info import close_quietly, fd_by_id, map_ids, map_info, prog_ids, prog_info

RUN_BASE = Path("/run")
RUN_DIR = RUN_BASE / "netbpf" / "made"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks (field 22 of /proc/PID/stat): with
    the pid, it names one process, not whoever gets the pid next."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rpartition(")")[2].split()[19]


def _own_file() -> Path:
    return RUN_DIR / f"{os.getpid()}-{_start_time(os.getpid())}"


def record(prog_fds: list[int], map_fds: list[int]) -> None:
    """Put these loaded programs and maps on the record (before they are attached)."""
    infos = [prog_info(fd) for fd in prog_fds]
    lines = [f"prog {info.id} {bytes(info.tag).hex()}" for info in infos]
    lines += [f"map {map_info(fd).id}" for fd in map_fds]
    try:
        directory = fs.owned_dir(RUN_DIR, base=RUN_BASE)
        path = directory / _own_file().name
        new = not path.exists()
        if new:
            prune()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            st = os.fstat(fd)
            if st.st_uid != os.geteuid() or st.st_mode & 0o077:
                raise fs.NotOurs(f"{path} is not netbpf's record (owner uid {st.st_uid}, "
                                 f"mode {st.st_mode & 0o777:04o})")
            text = (f"boot {_boot_id()}\n" if st.st_size == 0 else "") + "\n".join(lines) + "\n"
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise NetbpfError(f"cannot record what netbpf loaded in {RUN_DIR} "
                          f"(cleanup needs it): {e.strerror or e}") from e


@dataclass
class Made:
    """Everything on record for this boot."""

    progs: dict[int, str] = field(default_factory=dict)  # id -> tag (hex)
    maps: set[int] = field(default_factory=set)
    files: dict[Path, tuple[set[int], set[int]]] = field(default_factory=dict)

    def has_prog(self, prog_id: int, tag: str) -> bool:
        return self.progs.get(prog_id) == tag

    def has_map(self, map_id: int) -> bool:
        return map_id in self.maps

    def running_loader(self, prog_ids: set[int], map_ids: set[int]) -> int:
        """The pid of a netbpf process, still running, that loaded any of these
        (0: none). What it holds is not left over: it detaches at its exit."""
        for path, (progs, maps) in self.files.items():
            if progs & prog_ids or maps & map_ids:
                pid = _running(path)
                if pid:
                    return pid
        return 0


def read() -> Made:
    """The record (empty when there is none); NotOurs when its directory is not netbpf's."""
    made = Made()
    try:
        fs.owned_dir(RUN_DIR, create=False, base=RUN_BASE)
    except FileNotFoundError:
        return made
    boot = _boot_id()
    for path in sorted(RUN_DIR.iterdir()):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if st.st_uid != 0 or st.st_mode & 0o077:
                continue  # not written by netbpf as root: proves nothing
            with os.fdopen(os.dup(fd)) as f:
                text = f.read()
        finally:
            os.close(fd)
        progs, maps = parse(text, boot, made)
        made.files[path] = (progs, maps)
    return made


def parse(text: str, boot: str, into: Made) -> tuple[set[int], set[int]]:
    """Add one file's lines to ``into``; its (prog ids, map ids). A file of
    another boot adds nothing."""
    progs: set[int] = set()
    maps: set[int] = set()
    lines = text.splitlines()
    if not lines or lines[0] != f"boot {boot}":
        return progs, maps
    for line in lines[1:]:
        fields = line.split()
        try:
            if fields[0] == "prog" and len(fields) == 3:
                into.progs[int(fields[1])] = fields[2]
                progs.add(int(fields[1]))
            elif fields[0] == "map" and len(fields) == 2:
                into.maps.add(int(fields[1]))
                maps.add(int(fields[1]))
        except (IndexError, ValueError):
            continue  # a line cut short by a SIGKILL mid-write
    return progs, maps


def _running(path: Path) -> int:
    """The pid that wrote this record file if that very process still runs, else 0."""
    pid, _, start = path.name.partition("-")
    if pid.isdigit() and start and _start_time(int(pid)) == start:
        return int(pid)
    return 0


def prog_tag(prog_id: int) -> str:
    """The tag of a loaded program, hex ('' when it is gone)."""
    try:
        fd = fd_by_id("prog", prog_id)
    except NetbpfError:
        return ""
    try:
        return bytes(prog_info(fd).tag).hex()
    finally:
        close_quietly(fd)


def prune() -> list[Path]:
    """Remove the files of processes that are gone and whose objects are all gone."""
    try:
        made = read()
    except (NetbpfError, OSError):
        return []
    live_progs, live_maps = set(prog_ids()), set(map_ids())
    removed = []
    for path, (progs, maps) in made.files.items():
        if _running(path):
            continue  # its process still runs (and may load more)
        if progs & live_progs or maps & live_maps:
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed
