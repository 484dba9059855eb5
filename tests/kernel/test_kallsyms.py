"""``drops --stack`` names a frame inside a BPF program after that program, and an
address just past a program's JIT image after nothing: checked against the kernel's
own /proc/kallsyms and bpftool's jited size, for programs loaded here."""
from __future__ import annotations

import ctypes
import json
import os
import subprocess
from pathlib import Path

import pytest

from netbpf.bpf import _libbpf as L
from netbpf.tools.drops.kallsyms import Kallsyms

# "r0 = 2 (XDP_PASS); exit": one function, so bpftool's bytes_jited is its whole image
PASS = bytes.fromhex("b7000000020000009500000000000000")


def _load(name: bytes) -> int:
    insns = (L.BpfInsn * (len(PASS) // 8)).from_buffer_copy(PASS)
    opts = L.ProgLoadOpts(sz=ctypes.sizeof(L.ProgLoadOpts), expected_attach_type=0)
    fd = L.lib.bpf_prog_load(6, name, b"GPL", insns, len(PASS) // 8, ctypes.byref(opts))
    assert fd >= 0, fd
    return int(fd)


def _bpftool(fd: int) -> dict[str, object]:
    info = json.loads(subprocess.run(["bpftool", "-j", "prog", "show", "id",
                                      str(_prog_id(fd))], capture_output=True, text=True, check=True).stdout)
    assert isinstance(info, dict)
    return info


def _prog_id(fd: int) -> int:
    from netbpf.bpf.info import prog_info

    return int(prog_info(fd).id)


def _kallsyms_address(symbol: str) -> int:
    with open("/proc/kallsyms") as f:
        for line in f:
            parts = line.split()
            if parts[2] == symbol:
                return int(parts[0], 16)
    raise AssertionError(f"{symbol} not in /proc/kallsyms")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_bpf_frames_are_named_by_their_own_program() -> None:
    if Path("/proc/sys/net/core/bpf_jit_kallsyms").read_text().strip() != "1":
        pytest.skip("net.core.bpf_jit_kallsyms is off: the kernel lists no BPF programs")
    before = Kallsyms.load()  # read before the programs exist: they must be found later
    fds = [_load(b"nbk_first"), _load(b"nbk_second")]
    try:
        for fd in fds:
            info = _bpftool(fd)
            symbol = f"bpf_prog_{info['tag']}_{info['name']}"
            start, size = _kallsyms_address(symbol), int(info["bytes_jited"])  # type: ignore[call-overload]
            fresh = Kallsyms.load()
            for k in (fresh, before):
                assert k.symbolise(start) == f"{symbol}+0x0"
                assert k.symbolise(start + size - 1) == f"{symbol}+0x{size - 1:x}"
                # one byte past the image: free space, or the start of another program
                past = k.symbolise(start + size)
                assert not past.startswith(symbol), past
                assert past == f"0x{start + size:x}" or past.endswith("+0x0"), past
                # far past it (the rb_orig_pass+0xb19): never this program's name
                assert not k.symbolise(start + 0xB19).startswith(symbol)
    finally:
        for fd in fds:
            os.close(fd)
