"""The seed's program (``seed_accel.bpf.c``), loaded on a cgroup for as long as
a ``with`` block lasts: the anchor column of ``netbpf accel bench``.

Nothing is pinned: the links and the object are held by this process and
closing them detaches everything, so a bench that dies leaves nothing behind.
"""
from __future__ import annotations

from pathlib import Path

from ...bpf.attach import cgroup as cgroup_attach
from ...bpf.attach import sockmap as sockmap_attach
from ...bpf.object import BpfObject, object_path
from ...run import Run

SEED_OBJECT = "seed_accel.bpf.o"


class SeedAccel:
    def __init__(self, cgroup: Path) -> None:
        self.cgroup = cgroup
        self.obj: BpfObject | None = None
        self._run = Run()

    def __enter__(self) -> SeedAccel:
        with self._run.starting():
            obj = self.obj = self._run.open(object_path(__file__, SEED_OBJECT))
            obj.load()
            # The verdict program first, as the seed's load.sh does.
            self._run.attach(sockmap_attach.attach_sk_msg(
                obj.program("netbpf_seed_msg"), obj.map("sock_ops_map")), quiet=True)
            self._run.attach(cgroup_attach.attach_cgroup(
                obj.program("netbpf_seed_ops"), cgroup_attach.CgroupOptions(self.cgroup)), quiet=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self._run.close()  # the links in reverse, then the object
        self.obj = None
