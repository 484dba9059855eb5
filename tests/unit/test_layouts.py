"""Python mirrors of kernel and BPF structs have the sizes and offsets of the C ones."""
from __future__ import annotations

import ctypes
import importlib
import pkgutil
from pathlib import Path

import pytest

import netbpf.tools
from netbpf.bpf import BpfObject
from netbpf.bpf.btf import Btf
from netbpf.bpf.info import BpfMapInfo, BpfProgInfo


def _shared_struct_modules() -> list[tuple[str, type[ctypes.Structure], Path]]:
    """Every (module, struct, object) pair a tool declares in SHARED_STRUCTS."""
    names = ["netbpf.bpf.selftest", "netbpf.attrib.tracker", "netbpf.attrib.connections"]
    names += [m.name for m in pkgutil.walk_packages(netbpf.tools.__path__, "netbpf.tools.")]
    found = []
    for name in names:
        module = importlib.import_module(name)
        if hasattr(module, "BPF_OBJECT"):
            path = Path(module.__file__).parent / module.BPF_OBJECT
        elif hasattr(module, "path"):
            path = module.path()
        else:
            continue
        found += [(name, struct, path) for struct in getattr(module, "SHARED_STRUCTS", ())]
    return found


def assert_same_layout(btf: Btf, c_name: str, struct: type[ctypes.Structure]) -> None:
    size, members = btf.struct_members(c_name)
    assert ctypes.sizeof(struct) == size, f"sizeof(struct {c_name})"
    py = {name: (getattr(struct, name).offset, getattr(struct, name).size)
          for name, *_ in struct._fields_ if not name.startswith("_")}
    for m in members:
        if not m.name or m.name.startswith("_") or m.bit_size:
            continue
        assert m.name in py, f"{struct.__name__} lacks {c_name}.{m.name}"
        assert py[m.name] == (m.offset, m.size), f"{c_name}.{m.name}"


STRUCTS = _shared_struct_modules()


@pytest.mark.parametrize("module,struct,path", STRUCTS, ids=[f"{m}:{s.__name__}" for m, s, _ in STRUCTS])
def test_shared_struct_matches_c(module: str, struct: type[ctypes.Structure], path: Path) -> None:
    with BpfObject.open(path) as obj:
        assert_same_layout(obj.btf(), struct._c_name_, struct)  # type: ignore[attr-defined]


def test_every_tool_mirrors_something() -> None:
    assert STRUCTS, "no shared struct found: the discovery itself is broken"


@pytest.mark.parametrize("c_name,struct", [("bpf_prog_info", BpfProgInfo), ("bpf_map_info", BpfMapInfo)])
def test_kernel_info_structs_match_running_kernel(c_name: str, struct: type[ctypes.Structure]) -> None:
    vmlinux = Path("/sys/kernel/btf/vmlinux")
    if not vmlinux.exists():
        pytest.skip("no kernel BTF on this machine")
    with Btf.from_file(str(vmlinux)) as btf:
        size, members = btf.struct_members(c_name)
        # The kernel may have grown the struct: ours must be a prefix of it.
        assert ctypes.sizeof(struct) <= size
        by_name = {m.name: m for m in members}
        for name, *_ in struct._fields_:
            if name.startswith("_") or name == "gpl_compatible":
                continue
            m = by_name[name]
            assert (getattr(struct, name).offset, getattr(struct, name).size) == (m.offset, m.size), name
