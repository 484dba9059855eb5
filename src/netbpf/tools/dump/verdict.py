"""Can this kernel attach fexit to an XDP program? (``--verdict`` needs it.)

xdp-tools' xdpdump records each packet's XDP action with an fexit program on
the XDP program itself. The probe asks the kernel exactly that: load the
smallest fexit program aimed at the loaded capture program, then attach it.
Kernels that refuse tracing programs (this project's test machine answers
EPERM) say so here, in one line, before anything depends on it.
"""
from __future__ import annotations

import os

from ...bpf.attach.base import create_link
from ...bpf.insn import EXIT, JMP, encode
from ...bpf.program import Program
from ...errors import NetbpfError

BPF_PROG_TYPE_TRACING = 26
BPF_TRACE_FEXIT = 25
RETURN_0 = encode(0xB7) + encode(JMP | EXIT)  # r0 = 0; exit


def probe_fexit(target: Program) -> str:
    """"" when fexit on ``target`` works, else why not (one line)."""
    type_id = target.func_btf_id()
    if not type_id:
        return "the capture program has no BTF function info"
    try:
        probe = Program.load(BPF_PROG_TYPE_TRACING, "netbpf_probe", RETURN_0,
                             expected_attach_type=BPF_TRACE_FEXIT, attach_prog=target, attach_btf_id=type_id)
    except NetbpfError as e:
        return f"loading an fexit program: {_reason(e)}"
    with probe:
        try:
            create_link(probe, 0, BPF_TRACE_FEXIT).close()
        except NetbpfError as e:
            return f"attaching an fexit program: {_reason(e)}"
        return ""


def _reason(e: NetbpfError) -> str:
    cause = e.__cause__
    return os.strerror(cause.errno) if isinstance(cause, OSError) and cause.errno else str(e)
