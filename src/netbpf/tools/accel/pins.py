"""The pin directory: what enable pins, by role, and reading it back from any process."""
from __future__ import annotations

import errno as _errno
import os
from collections.abc import Iterator
from pathlib import Path

from ...bpf import fs
from ...bpf.info import fd_by_pin
from ...bpf.maps import Map
from ...errors import BpfError, NetbpfError, UsageError

# What enable pins, by role; status and disable find everything from these names.
PINS = {
    "sockops": "prog_sockops",
    "sk_msg": "prog_sk_msg",
    "cgroup_link": "link_cgroup",
    "sk_msg_link": "link_sk_msg",
    "sockhash": "map_sockhash",
    "state": "map_state",
    "ports": "map_ports",
    "control": "map_control",
    "counters": "map_counters",
}
MAP_OF_ROLE = {"sockhash": "accel_sockhash", "state": "accel_state", "ports": "accel_ports",
               "control": "accel_control", "counters": "accel_counters"}


def default_pin_dir() -> Path:
    return fs.PIN_ROOT / "accel"


def _obj_get(path: Path) -> int:
    """An fd for the object pinned at ``path``, or -1 when nothing is pinned there."""
    try:
        return fd_by_pin(path, "pin")
    except BpfError as e:
        if e.errno == _errno.ENOENT:
            return -1
        raise


def check_pin_dir(pin_dir: str | Path) -> Path:
    p = Path(pin_dir).resolve()
    if fs.BPFFS not in p.parents:
        raise UsageError(f"--pin-dir {pin_dir}: must be a directory under {fs.BPFFS}")
    return p


class PinsHidden(NetbpfError):
    """The pins cannot be seen from this mount namespace: neither "on" nor "off" is known."""


def _bpffs_visible(pin_dir: Path) -> bool:
    return any(fstype == "bpf" and (Path(point) == pin_dir or Path(point) in pin_dir.parents)
               for _, point, fstype in fs.mounts())


def _private_mount_ns() -> bool:
    """True in a mount namespace other than an ancestor's, e.g. under `ip netns
    exec`, which mounts a /sys of its own without bpffs. Ancestors, because
    pid 1's namespace links may not be readable (a container)."""
    try:
        mine = os.readlink("/proc/self/ns/mnt")
    except OSError:
        return False
    pid = os.getppid()
    for _ in range(64):
        try:
            if os.readlink(f"/proc/{pid}/ns/mnt") != mine:
                return True
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state: ppid
        if pid <= 0:
            return False
    return False


def check_pins_visible(pin_dir: Path) -> None:
    """Refuse to answer from a mount namespace where bpffs is not mounted: the
    pins may well exist in init's, and "not enabled" would be a guess."""
    if not _bpffs_visible(pin_dir) and _private_mount_ns():
        raise PinsHidden(f"no bpffs above {pin_dir} in this mount namespace (`ip netns exec` mounts "
                         "a /sys of its own): whether accel is enabled cannot be seen from here; "
                         "run `netbpf --netns NAME accel ...` instead")


def _present(pin_dir: Path) -> dict[str, Path]:
    """The pins there, by role; NotOurs when the directory is not netbpf's
    (another user's directory could hold anything, and they could unlink it)."""
    try:
        fs.owned_dir(pin_dir, create=False)
    except FileNotFoundError:
        check_pins_visible(pin_dir)
        return {}
    return {role: pin_dir / name for role, name in PINS.items() if (pin_dir / name).exists()}


def _rmdir(path: Path) -> None:
    if path.is_relative_to(fs.PIN_ROOT):
        fs.remove_empty_dirs(path)
    else:  # --pin-dir elsewhere in bpffs: only its own directory
        try:
            path.rmdir()
        except OSError:
            pass


def map_keys(m: Map) -> Iterator[bytes]:
    """The keys of a BPF map (one BPF_MAP_GET_NEXT_KEY each; a map, not a dict)."""
    return m.keys()


def count_keys(m: Map) -> int:
    return sum(1 for _ in map_keys(m))
