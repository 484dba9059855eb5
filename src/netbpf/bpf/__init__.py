"""The loader: a thin ctypes binding to libbpf and a small object model on top.

    object.BpfObject   open an ELF (no root), set const volatile globals, load
    program.Program    a program of an object, or one taken by id/pin
    maps.Map           lookup/update/delete/iterate/batch, per-CPU values, pins
    attach.*           one module per hook kind, each returning an Attachment
    ringbuf.RingBuffer / perfbuf.PerfBuffer    event transport, loss counted
    info               what the kernel says about programs, maps and links
    btf.Btf            layouts, enums and variables from BTF
    fs                 bpffs / tracefs / cgroup v2 mounts
"""
from .maps import Map
from .object import BpfObject, object_path
from .program import Program

__all__ = ["BpfObject", "Map", "Program", "object_path"]
