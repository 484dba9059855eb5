"""disable: stop redirecting, detach, unpin (idempotent). Sockets are never deleted
from the sockhash (see accel.py): they drain."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ...bpf.attach import sockmap as sockmap_attach
from ...bpf.attach.base import Link
from ...bpf.maps import Map
from ...bpf.program import Program
from .cgroups import _cgroup_of_link
from .layout import MSG_PROG, Control
from .pins import _obj_get, _present, _rmdir, count_keys, default_pin_dir


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
        with Map.from_pin(present["control"]) as control:
            control.update(0, Control(draining=1))
    if "sockhash" in present:
        with Map.from_pin(present["sockhash"]) as sockhash:
            result.draining_sockets = count_keys(sockhash)
    # 2. No new socket is stored: detach the sock_ops link, then the sk_msg one
    #    (sockets already stored keep their own reference to the program).
    for role in ("cgroup_link", "sk_msg_link"):
        if role in present:
            fd = _obj_get(present[role])
            if fd >= 0:
                with Link(fd, str(present[role])) as link:
                    link.detach()
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
    with Program(MSG_PROG, fd=prog_fd, owns_fd=True) as prog, Map("sockhash", fd=map_fd, owns_fd=True) as m:
        if prog_fd >= 0 and map_fd >= 0:
            sockmap_attach.detach_sk_msg(prog, m)
