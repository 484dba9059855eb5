"""Tracepoints: classic (``tracepoint/skb/kfree_skb``) and BTF-typed (``tp_btf/kfree_skb``)."""
from __future__ import annotations

from ...errors import NotSupported, check_ptr
from .. import _libbpf as L
from ..fs import ensure_tracefs
from ..program import Program
from .base import LibbpfLink


class TracepointLink(LibbpfLink):
    kind = "tracepoint"


def attach_tracepoint(prog: Program, category: str, name: str) -> TracepointLink:
    tracefs = ensure_tracefs()
    if not (tracefs / "events" / category / name).is_dir():
        raise NotSupported(f"tracepoint {category}:{name}", "not in this kernel's tracefs")
    handle = check_ptr(L.lib.bpf_program__attach_tracepoint(prog.handle, category.encode(), name.encode()),
                       f"attach {prog.name} to tracepoint {category}:{name}")
    return TracepointLink(handle, f"tracepoint {category}:{name} {prog.name}")


def attach_tp_btf(prog: Program) -> TracepointLink:
    """Attach a ``tp_btf/NAME`` program (its target was resolved from BTF at load)."""
    handle = check_ptr(L.lib.bpf_program__attach_trace(prog.handle),
                       f"attach {prog.name} ({prog.section})")
    return TracepointLink(handle, f"tp_btf {prog.section.split('/', 1)[-1]} {prog.name}")


def attach_raw_tracepoint(prog: Program, name: str) -> TracepointLink:
    handle = check_ptr(L.lib.bpf_program__attach_raw_tracepoint(prog.handle, name.encode()),
                       f"attach {prog.name} to raw tracepoint {name}")
    return TracepointLink(handle, f"raw_tp {name} {prog.name}")


def attach_section(prog: Program) -> TracepointLink:
    """Attach as the program's SEC() says (``tracepoint/cat/name`` or ``tp_btf/name``)."""
    section = prog.section
    if section.startswith(("tracepoint/", "tp/")):
        _, category, name = section.split("/", 2)
        return attach_tracepoint(prog, category, name)
    if section.startswith("tp_btf/"):
        return attach_tp_btf(prog)
    if section.startswith(("raw_tp/", "raw_tracepoint/")):
        return attach_raw_tracepoint(prog, section.split("/", 1)[1])
    raise ValueError(f"{prog.name}: section {section!r} is not a tracepoint")
