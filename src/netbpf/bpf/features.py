"""Feature probes, each run once per process and cached.

A probe loads the smallest program that can tell (``r0 = verdict; exit``)
and asks the kernel for the feature without touching any real hook: an
attach to ifindex 0 says ENODEV where the attach type exists and EINVAL
where it does not.
"""
from __future__ import annotations

import ctypes
import errno as _errno
import os
from functools import cache

from ..errors import BpfError, NotSupported
from . import _libbpf as L
from .insn import ALU64, EXIT, JMP, MOV, R0, K, encode
from .program import Program

BPF_PROG_TYPE_SOCKET_FILTER = 1
BPF_PROG_TYPE_SCHED_CLS = 3
BPF_PROG_TYPE_XDP = 6
BPF_PROG_TYPE_SK_MSG = 16
BPF_MAP_TYPE_SOCKHASH = 18
BPF_MAP_TYPE_RINGBUF = 27
BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1
XDP_DROP = 1

XDP_LIVE_FRAMES = "XDP live frames"


def _return_insns(value: int) -> bytes:
    return encode(ALU64 | MOV | K, R0, imm=value) + encode(JMP | EXIT)  # r0 = value; exit


def load_trivial(prog_type: int, expected_attach_type: int = 0, verdict: int = 0,
                 name: str = "netbpf_probe") -> int:
    """Load a two-instruction program returning ``verdict``; the caller closes the fd."""
    prog = Program.load(prog_type, name, _return_insns(verdict), expected_attach_type)
    return prog.fd  # owned by the caller from here (the Program is not closed)


JCOND = 0xE0  # BPF_JCOND: the class of may_goto (src_reg 0)


@cache
def has_may_goto() -> bool:
    """Whether the verifier knows may_goto (Linux 6.9): a loop it bounds runs without a
    call per step. Probed with ``may_goto +0; r0 = 0; exit``: EINVAL where the opcode
    is unknown."""
    try:
        Program.load(BPF_PROG_TYPE_SOCKET_FILTER, "netbpf_probe", encode(JMP | JCOND) + _return_insns(0)).close()
    except BpfError as e:
        if e.errno != _errno.EINVAL:
            raise
        return False
    return True


def _link_create_errno(prog_type: int, target_fd: int, attach_type: int) -> int:
    fd = load_trivial(prog_type, attach_type)
    try:
        opts = L.LinkCreateOpts(sz=ctypes.sizeof(L.LinkCreateOpts))
        ret = L.lib.bpf_link_create(fd, target_fd, attach_type, ctypes.byref(opts))
        if ret >= 0:
            os.close(ret)
            return 0
        return int(-ret)
    finally:
        os.close(fd)


@cache
def has_tcx() -> bool:
    """tcx links for tc programs (Linux 6.6)."""
    return _link_create_errno(BPF_PROG_TYPE_SCHED_CLS, 0, 46) == _errno.ENODEV


@cache
def has_xdp_link() -> bool:
    """XDP as a BPF link (Linux 5.9)."""
    return _link_create_errno(BPF_PROG_TYPE_XDP, 0, 37) == _errno.ENODEV


@cache
def has_sockmap_link() -> bool:
    """sk_msg/sk_skb programs on a sockmap as BPF links (Linux 6.10)."""
    # A bad map fd: EBADF once the attach type is understood, EINVAL before.
    return _link_create_errno(BPF_PROG_TYPE_SK_MSG, 0x7FFFFFFF, 7) == _errno.EBADF


@cache
def xdp_live_frames_errno() -> int:
    """0 where BPF_PROG_TEST_RUN may run XDP frames live, else the errno that refused it.

    Some kernels refuse it with EPERM even to root (lockdown, sandboxed VMs, a
    missing capability); those before 5.18 do not know the flag (EINVAL). The
    probe's program returns XDP_DROP: the frame is recycled, nothing is sent.
    """
    fd = load_trivial(BPF_PROG_TYPE_XDP, verdict=XDP_DROP, name="netbpf_probe")
    try:
        frame = ctypes.create_string_buffer(64)
        opts = L.TestRunOpts(sz=ctypes.sizeof(L.TestRunOpts), repeat=1, flags=BPF_F_TEST_XDP_LIVE_FRAMES)
        opts.data_in = ctypes.cast(frame, ctypes.c_void_p)
        opts.data_size_in = 64
        return int(-min(0, L.lib.bpf_prog_test_run_opts(fd, ctypes.byref(opts))))
    finally:
        os.close(fd)


def has_xdp_live_frames() -> bool:
    """BPF_PROG_TEST_RUN may send XDP frames for real (Linux 5.18, and allowed)."""
    return xdp_live_frames_errno() == 0


def require_xdp_live_frames() -> None:
    err = xdp_live_frames_errno()
    if err:
        name = _errno.errorcode.get(err, str(err))
        raise NotSupported(XDP_LIVE_FRAMES, f"BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES: "
                                            f"{name}, {os.strerror(err)}")


def require(feature: str, available: bool, detail: str = "") -> None:
    if not available:
        raise NotSupported(feature, detail)
