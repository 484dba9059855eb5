"""Can this kernel attach fexit to an XDP program? (``--verdict`` needs it.)

xdp-tools' xdpdump records each packet's XDP action with an fexit program on
the XDP program itself. The probe asks the kernel exactly that: load the
smallest fexit program aimed at the loaded capture program, then attach it.
Kernels that refuse tracing programs (this project's test machine answers
EPERM) say so here, in one line, before anything depends on it.
"""
from __future__ import annotations

import ctypes
import os

from ...bpf import _libbpf as L
from ...bpf.info import BpfProgInfo
from ...bpf.program import Program

BPF_PROG_TYPE_TRACING = 26
BPF_TRACE_FEXIT = 25


def _main_func_btf_id(prog: Program) -> int:
    records = (ctypes.c_uint32 * 2)()  # struct bpf_func_info {insn_off, type_id}
    info = BpfProgInfo(nr_func_info=1, func_info_rec_size=8,
                       func_info=ctypes.addressof(records))
    size = ctypes.c_uint32(ctypes.sizeof(info))
    if L.lib.bpf_obj_get_info_by_fd(prog.require_fd(), ctypes.byref(info), ctypes.byref(size)) < 0:
        return 0
    return int(records[1]) if info.nr_func_info else 0


def probe_fexit(target: Program) -> str:
    """"" when fexit on ``target`` works, else why not (one line)."""
    type_id = _main_func_btf_id(target)
    if not type_id:
        return "the capture program has no BTF function info"
    insns = (L.BpfInsn * 2)()
    insns[0].code, insns[1].code = 0xB7, 0x95  # r0 = 0; exit
    opts = L.ProgLoadOpts(sz=ctypes.sizeof(L.ProgLoadOpts), expected_attach_type=BPF_TRACE_FEXIT,
                          attach_prog_fd=target.require_fd(), attach_btf_id=type_id)
    fd = L.lib.bpf_prog_load(BPF_PROG_TYPE_TRACING, b"netbpf_probe", b"GPL", insns, 2,
                             ctypes.byref(opts))
    if fd < 0:
        return f"loading an fexit program: {os.strerror(-fd)}"
    try:
        link_opts = L.LinkCreateOpts(sz=ctypes.sizeof(L.LinkCreateOpts))
        link = L.lib.bpf_link_create(fd, 0, BPF_TRACE_FEXIT, ctypes.byref(link_opts))
        if link < 0:
            return f"attaching an fexit program: {os.strerror(-link)}"
        os.close(link)
        return ""
    finally:
        os.close(fd)
