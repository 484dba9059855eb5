"""The file systems BPF needs: bpffs for pins, tracefs for tracepoints, cgroup v2.

bpffs may be absent (and is absent inside ``ip netns exec``, which remounts
/sys); tracefs may be unmounted; cgroup v2 may sit beside a v1 hierarchy
(``/sys/fs/cgroup/unified`` on this machine). Each is found from
/proc/self/mounts and mounted when missing.

/sys/fs/bpf is world-writable (mode 1777, like /tmp): any user can create
/sys/fs/bpf/netbpf, or a directory under it, or a symlink there, before
root runs netbpf, and would then own (and be able to unlink) netbpf's pins.
So netbpf owns its pin root and every directory under it: it makes them
itself (root, 0700) and, walking them with O_NOFOLLOW, refuses any that is
a symlink or belongs to someone else (``owned_dir``). Directories that only
root can write cannot be swapped under the walk, so once checked, a path
stays the one checked.
"""
from __future__ import annotations

import ctypes
import os
from functools import cache
from pathlib import Path

from ..errors import NetbpfError, NotPermitted, NotSupported, from_errno
from ..libc import libc

BPFFS = Path("/sys/fs/bpf")
# A private pin root (tests, or two netbpf users on one machine): any path in
# bpffs; it is checked like the default one.
PIN_ROOT_ENV = "NETBPF_PIN_ROOT"
PIN_ROOT = Path(os.path.normpath(os.environ.get(PIN_ROOT_ENV) or BPFFS / "netbpf"))
DIR_MODE = 0o700
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
    if libc.mount(fstype.encode(), str(target).encode(), fstype.encode(), 0, None) != 0:
        err = ctypes.get_errno()
        if os.geteuid() != 0:
            raise NotPermitted(f"mount {fstype} on {target}")
        raise from_errno(f"mount {fstype} on {target}", err)


class NotOurs(NetbpfError):
    """A directory netbpf would pin into is not netbpf's (another owner, a symlink)."""


def ensure_bpffs() -> Path:
    """Mount bpffs at /sys/fs/bpf when it is not there; return the pin root,
    created or checked (root's, 0700, no symlink)."""
    if not any(fstype == "bpf" and Path(point) == BPFFS for _, point, fstype in mounts()):
        _mount("bpf", BPFFS)
    return owned_dir(PIN_ROOT)


def pin_dir(*parts: str) -> Path:
    """A directory under the pin root, created (with bpffs) on demand, every
    level of it netbpf's own."""
    ensure_bpffs()
    return owned_dir(PIN_ROOT.joinpath(*parts))


def _describe_owner(st: os.stat_result) -> str:
    import pwd

    try:
        name = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        name = "?"
    return f"uid {st.st_uid} ({name})"


def _check_ours(path: Path, st: os.stat_result, ours: bool) -> None:
    """Refuse a directory that is not root's or that others may write.

    ``ours``: inside netbpf's own tree, where only 0700 is right (a looser
    mode left by an older netbpf is tightened by the caller)."""
    import stat

    if stat.S_ISLNK(st.st_mode):
        raise NotOurs(f"{path} is a symlink (owned by {_describe_owner(st)}), not netbpf's "
                      "pin directory: refusing to pin there; remove it as root")
    if not stat.S_ISDIR(st.st_mode):
        raise NotOurs(f"{path} is not a directory: refusing to pin there")
    if st.st_uid != 0:
        raise NotOurs(f"{path} is owned by {_describe_owner(st)}, not root: refusing to pin "
                      "there (anyone who owns it can unlink the pins); remove it as root")
    writable_by_others = st.st_mode & 0o022 and not (st.st_mode & stat.S_ISVTX and not ours)
    if writable_by_others:
        raise NotOurs(f"{path} is writable by others (mode {stat.S_IMODE(st.st_mode):04o}): "
                      "refusing to pin there; remove it as root")


def owned_dir(path: Path, create: bool = True, base: Path = BPFFS) -> Path:
    """``path`` (in bpffs), each directory of it checked from /sys/fs/bpf down
    with O_NOFOLLOW: root's, not writable by others; from the pin root down
    (or, for a path elsewhere in bpffs, the levels netbpf creates) 0700.
    Missing levels are created with mode 0700 when ``create``.
    NotOurs (one line naming the path and its owner) otherwise.
    ``base``: another root-only directory (/run) whose levels below are all netbpf's."""
    path = Path(os.path.normpath(path))
    if path != base and base not in path.parents:
        raise NotOurs(f"{path}: netbpf pins only under {base}")
    if not create:
        return _walk(path, False, base)
    for _ in range(3):
        try:
            return _walk(path, True, base)
        except FileNotFoundError:
            continue  # another netbpf removed an empty level (remove_empty_dirs) under us: again
    raise NotOurs(f"{path}: its directories keep vanishing while netbpf creates them")


def _walk(path: Path, create: bool, base: Path) -> Path:
    flags = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(base, flags | os.O_DIRECTORY)
    try:
        current = base
        for part in path.relative_to(base).parts:
            current = current / part
            ours = base != BPFFS or current == PIN_ROOT or PIN_ROOT in current.parents
            made = False
            if create:
                try:
                    os.mkdir(part, DIR_MODE, dir_fd=fd)
                    made = True
                except FileExistsError:
                    pass
            child = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = child
            st = os.fstat(fd)  # O_PATH | O_NOFOLLOW: a symlink is stat'ed, not followed
            _check_ours(current, st, ours)
            if (ours or made) and st.st_mode & 0o7777 != DIR_MODE:
                # Root's, 0755 (an older netbpf): make it 0700. An O_PATH fd refuses
                # fchmod; its /proc/self/fd link reaches the very inode checked.
                os.chmod(f"/proc/self/fd/{fd}", DIR_MODE)
    finally:
        os.close(fd)
    return path


def check_pin_root() -> Path | None:
    """The pin root when it exists and is netbpf's; None when it does not exist;
    NotOurs when it is not netbpf's (for readers: status, cleanup, stop)."""
    try:
        return owned_dir(PIN_ROOT, create=False)
    except FileNotFoundError:
        return None


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
