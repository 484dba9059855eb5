"""enable: load accel.bpf.o, attach sk_msg to the sockhash, then sock_ops to the
cgroup, pin everything under the pin dir."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ...bpf import fs
from ...bpf.attach import cgroup as cgroup_attach
from ...bpf.attach import sockmap as sockmap_attach
from ...bpf.object import object_path
from ...errors import UsageError
from ...run import Run
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
    undo = Run()  # what a failure takes back, last first: links, pins, the directory
    with Run() as held, undo.starting():  # held: closed either way (pinned links stay attached)
        undo.callback(_rmdir, pin_dir)
        obj = held.open(object_path(__file__, BPF_OBJECT))
        obj.set_rodata(**options.rodata())
        obj.load()
        for port in options.ports:
            obj.map("accel_ports").update(port, b"\x01")
        fs.owned_dir(pin_dir)  # root's, 0700, every level: else refused

        def pin(role: str, thing: Any) -> None:
            path = pin_dir / PINS[role]
            thing.pin(str(path))
            undo.callback(path.unlink, True)

        for role, map_name in MAP_OF_ROLE.items():
            pin(role, obj.map(map_name))
        pin("sockops", obj.program(SOCKOPS_PROG))
        pin("sk_msg", obj.program(MSG_PROG))
        # The verdict program first: a socket stored before it is attached
        # would never redirect.
        msg = undo.attach(sockmap_attach.attach_sk_msg(obj.program(MSG_PROG), obj.map("accel_sockhash")),
                          quiet=True)
        if isinstance(msg, sockmap_attach.SockmapLink):
            held.attach(msg)  # a prog_attach'ed sk_msg program stays as long as the pinned map lives
            pin("sk_msg_link", msg)
        ops = undo.attach(cgroup_attach.attach_cgroup(obj.program(SOCKOPS_PROG), cgroup_attach.CgroupOptions(group)),
                          quiet=True)
        held.attach(ops)
        pin("cgroup_link", ops)
    return read_status(pin_dir), False
