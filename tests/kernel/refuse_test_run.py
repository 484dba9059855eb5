#!/usr/bin/env python3
"""Run a command as on a machine that refuses BPF_PROG_TEST_RUN (EPERM, even to root).

Some kernels of this project's kind refuse live XDP frames to root; this reproduces
the refusal here with a seccomp filter: every bpf(BPF_PROG_TEST_RUN, ...) of the
command and of its children fails with EPERM before the kernel sees it, the way
lockdown or a sandbox answers. Nothing else changes.

    tests/kernel/refuse_test_run.py COMMAND [ARG...]
"""
from __future__ import annotations

import ctypes
import os
import platform
import struct
import sys

PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO = 0x7FFF0000, 0x00050000
EPERM = 1
BPF_PROG_TEST_RUN = 10
# (audit arch, __NR_bpf) of the architectures this project runs on.
ARCHES = {"x86_64": (0xC000003E, 321), "aarch64": (0xC00000B7, 280)}

# Classic BPF over struct seccomp_data {int nr; u32 arch; u64 ip; u64 args[6]}.
LD_W_ABS, JEQ_K, RET_K = 0x20, 0x15, 0x06


def insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def refuse_test_run() -> None:
    arch, nr_bpf = ARCHES[platform.machine()]
    program = b"".join([
        insn(LD_W_ABS, 0, 0, 4), insn(JEQ_K, 1, 0, arch), insn(RET_K, 0, 0, SECCOMP_RET_ALLOW),
        insn(LD_W_ABS, 0, 0, 0), insn(JEQ_K, 0, 3, nr_bpf),
        insn(LD_W_ABS, 0, 0, 16), insn(JEQ_K, 0, 1, BPF_PROG_TEST_RUN),  # args[0], low half
        insn(RET_K, 0, 0, SECCOMP_RET_ERRNO | EPERM),
        insn(RET_K, 0, 0, SECCOMP_RET_ALLOW),
    ])
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("=HxxxxxxQ", len(program) // 8, ctypes.addressof(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    # As root (CAP_SYS_ADMIN) no PR_SET_NO_NEW_PRIVS is needed: setuid programs keep working.
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.c_char_p(fprog), 0, 0) != 0:
        raise SystemExit(f"seccomp filter refused: {os.strerror(ctypes.get_errno())}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    refuse_test_run()
    os.execvp(sys.argv[1], sys.argv[1:])
