"""disable: stop redirecting, detach, unpin (idempotent). Sockets are never deleted
from the sockhash (see accel.py): they drain."""
from __future__ import annotations

import errno as _errno
from dataclasses import dataclass, field
from pathlib import Path

from ...bpf import _libbpf as L
from ...bpf.errors import check, from_errno
from ...bpf.info import close_quietly
from .cgroups import _cgroup_of_link
from .layout import BPF_SK_MSG_VERDICT, Control
from .pins import _obj_get, _pinned_map, _present, _rmdir, count_keys, default_pin_dir


@dataclass
class DisableResult:
    was_enabled: bool
    cgroup: str = ""
    removed: list[str] = field(default_factory=list)
    draining_sockets: int = 0


def disable(pin_dir: Path | None = None) -> DisableResult:
    """Stop accelerating new data, detach, unpin. Idempotent; partial pins are fine."""
    pin_dir = pin_dir or default_pin_dir()
    present = _present(pin_dir)
    if not present:
        _rmdir(pin_dir)
        return DisableResult(False)
    result = DisableResult(True, cgroup=_cgroup_of_link(present.get("cgroup_link")))
    # 1. From now on every message of every stored socket takes TCP.
    if "control" in present:
        with _pinned_map(present["control"]) as control:
            control.update(0, Control(draining=1))
    if "sockhash" in present:
        with _pinned_map(present["sockhash"]) as sockhash:
            result.draining_sockets = count_keys(sockhash)
    # 2. No new socket is stored: detach the sock_ops link, then the sk_msg one
    #    (sockets already stored keep their own reference to the program).
    for role in ("cgroup_link", "sk_msg_link"):
        if role in present:
            fd = _obj_get(present[role])
            if fd >= 0:
                try:
                    check(L.lib.bpf_link_detach(fd), f"detach {present[role]}")
                finally:
                    close_quietly(fd)
                result.removed.append(f"detached {role.replace('_', ' ')}")
    if "sk_msg_link" not in present and "sk_msg" in present and "sockhash" in present:
        _prog_detach_sk_msg(present["sk_msg"], present["sockhash"])  # kernels without sockmap links
    # 3. Unpin; nothing of ours is left in bpffs.
    for path in present.values():
        path.unlink(missing_ok=True)
        result.removed.append(f"unpinned {path}")
    _rmdir(pin_dir)
    return result


def _prog_detach_sk_msg(prog_pin: Path, map_pin: Path) -> None:
    prog_fd, map_fd = _obj_get(prog_pin), _obj_get(map_pin)
    try:
        if prog_fd >= 0 and map_fd >= 0:
            ret = L.lib.bpf_prog_detach2(prog_fd, map_fd, BPF_SK_MSG_VERDICT)
            if ret < 0 and -ret != _errno.ENOENT:
                raise from_errno("detach sk_msg program from the sockhash", -ret)
    finally:
        for fd in (prog_fd, map_fd):
            if fd >= 0:
                close_quietly(fd)
