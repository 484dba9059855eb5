"""The seed's program (``seed_accel.bpf.c``), loaded on a cgroup for as long as
a ``with`` block lasts: the anchor column of ``netbpf accel bench``.

Nothing is pinned: the links and the object are held by this process and
closing them detaches everything, so a bench that dies leaves nothing behind.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ...bpf.attach import cgroup as cgroup_attach
from ...bpf.attach import sockmap as sockmap_attach
from ...bpf.object import BpfObject, object_path
from ...errors import NetbpfError

SEED_OBJECT = "seed_accel.bpf.o"


class SeedAccel:
    def __init__(self, cgroup: Path) -> None:
        self.cgroup = cgroup
        self.obj: BpfObject | None = None
        self.attachments: list[Any] = []

    def __enter__(self) -> SeedAccel:
        self.obj = BpfObject.open(object_path(__file__, SEED_OBJECT))
        try:
            self.obj.load()
            # The verdict program first, as the seed's load.sh does.
            self.attachments.append(sockmap_attach.attach_sk_msg(
                self.obj.program("netbpf_seed_msg"), self.obj.map("sock_ops_map")))
            self.attachments.append(cgroup_attach.attach_cgroup(
                self.obj.program("netbpf_seed_ops"), cgroup_attach.CgroupOptions(self.cgroup)))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for attachment in reversed(self.attachments):
            try:
                attachment.close()
            except NetbpfError:
                pass
        self.attachments.clear()
        if self.obj is not None:
            self.obj.close()
            self.obj = None
