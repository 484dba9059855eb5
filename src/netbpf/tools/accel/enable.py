"""enable: load accel.bpf.o, attach sk_msg to the sockhash, then sock_ops to the
cgroup, pin everything under the pin dir."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ...bpf import fs
from ...bpf.attach import cgroup as cgroup_attach
from ...bpf.attach import sockmap as sockmap_attach
from ...bpf.object import BpfObject, object_path
from ...errors import NetbpfError, UsageError
from .cgroups import resolve_cgroup
from .layout import BPF_OBJECT, MSG_PROG, SOCKOPS_PROG
from .options import Options, describe_scope
from .pins import MAP_OF_ROLE, PINS, _present, _rmdir, check_pins_visible, default_pin_dir
from .status import Status, read_status


def enable(options: Options, pin_dir: Path | None = None) -> tuple[Status, bool]:
    """Attach and pin; returns (status, True if it was already enabled the same way)."""
    pin_dir = pin_dir or default_pin_dir()
    group = resolve_cgroup(options.cgroup)
    # A bpffs mounted now in a private mount namespace would vanish, pins and
    # all, when this command exits: "enabled" would be a lie.
    check_pins_visible(pin_dir)
    fs.ensure_bpffs()
    if _present(pin_dir):
        current = read_status(pin_dir)
        same = (current.enabled and current.cgroup == str(group) and tuple(current.ports) == options.ports
                and current.small_bytes == options.small_bytes
                and current.demote_after == options.demote_after
                and current.queue_limit == options.rodata()["queue_limit"])
        if same:
            return current, True
        if not current.enabled:
            raise UsageError(f"an incomplete accel instance is pinned at {pin_dir}: "
                             "run `netbpf accel disable` first")
        where = current.cgroup or "an unknown cgroup"
        raise UsageError(f"accel is already enabled at {pin_dir} (on {where}, "
                         f"{describe_scope(current.ports)}): run `netbpf accel disable` first")
    obj = BpfObject.open(object_path(__file__, BPF_OBJECT))
    pinned: list[Path] = []
    attachments: list[Any] = []
    try:
        obj.set_rodata(**options.rodata())
        obj.load()
        for port in options.ports:
            obj.map("accel_ports").update(port, b"\x01")
        fs.owned_dir(pin_dir)  # root's, 0700, every level: else refused

        def pin(role: str, thing: Any) -> None:
            path = pin_dir / PINS[role]
            thing.pin(str(path))
            pinned.append(path)

        for role, map_name in MAP_OF_ROLE.items():
            pin(role, obj.map(map_name))
        pin("sockops", obj.program(SOCKOPS_PROG))
        pin("sk_msg", obj.program(MSG_PROG))
        # The verdict program first: a socket stored before it is attached
        # would never redirect.
        msg = sockmap_attach.attach_sk_msg(obj.program(MSG_PROG), obj.map("accel_sockhash"))
        attachments.append(msg)
        if isinstance(msg, sockmap_attach.SockmapLink):
            pin("sk_msg_link", msg)
        ops = cgroup_attach.attach_cgroup(obj.program(SOCKOPS_PROG), cgroup_attach.CgroupOptions(group))
        attachments.append(ops)
        pin("cgroup_link", ops)
    except BaseException:
        for attachment in reversed(attachments):
            try:
                attachment.close()
            except NetbpfError:
                pass
        for path in pinned:
            path.unlink(missing_ok=True)
        _rmdir(pin_dir)
        obj.close()
        raise
    for attachment in attachments:
        # Pinned links stay attached; a prog_attach'ed sk_msg program stays as
        # long as the pinned map lives (disable detaches it).
        if isinstance(attachment, cgroup_attach.CgroupLink | sockmap_attach.SockmapLink):
            attachment.close()
    obj.close()
    return read_status(pin_dir), False
