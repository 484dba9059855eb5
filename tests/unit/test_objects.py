"""Every BPF object netbpf ships follows the conventions status/cleanup rely on."""
from __future__ import annotations

from pathlib import Path

import pytest

from netbpf.bpf import BpfObject

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "netbpf"
OBJECTS = sorted(PACKAGE.rglob("*.bpf.o"))


def test_objects_are_built() -> None:
    sources = sorted(PACKAGE.rglob("*.bpf.c"))
    assert [s.with_suffix(".o") for s in sources] == OBJECTS, "run `make build`"


@pytest.mark.parametrize("path", OBJECTS, ids=[p.name for p in OBJECTS])
def test_program_names_are_recognisable_in_the_kernel(path: Path) -> None:
    with BpfObject.open(path) as obj:
        for name in obj.programs:
            # The kernel keeps 15 characters of a name; status finds netbpf by its prefix.
            assert name.startswith("netbpf_"), name
            assert len(name) <= 15, f"{name} would be truncated to {name[:15]}"
