"""The loader: a thin ctypes binding to libbpf and a small object model on top.

    object.BpfObject   open an ELF (no root), set const volatile globals, map sizes
                       and value sizes, which programs to load; load
    program.Program    a program of an object, one taken by id/pin, or one made
                       from instructions netbpf assembled (insn.Assembler, Program.load)
    maps.Map           lookup/update/delete/iterate/batch, per-CPU values, pins
    attach.*           one module per hook kind, each returning an Attachment;
                       attach.base.Link: a BPF link, also taken from a pin or an id,
                       updated (BPF_F_REPLACE), detached, unpinned; attach.xdp_front:
                       standing in front of another XDP program
    sections           libbpf's program-section handlers, claimed in one place
    ringbuf.RingBuffer / perfbuf.PerfBuffer    event transport, loss counted
    info               what the kernel says about programs, maps and links
    btf.Btf            layouts, enums and variables from BTF
    fs                 bpffs / tracefs / cgroup v2 mounts

Programs, maps and links taken by id or pin close with a ``with`` block. No
module outside bpf/ calls libbpf itself.
"""
from .maps import Map
from .object import BpfObject, object_path
from .program import Program

__all__ = ["BpfObject", "Map", "Program", "object_path"]
