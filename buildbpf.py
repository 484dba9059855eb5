#!/usr/bin/env python3
"""Compile every ``*.bpf.c`` under ``src/netbpf`` into a ``*.bpf.o`` beside it.

Used by ``make build`` and by the wheel build hook (``setup.py``). An object is
rebuilt when it is older than its source or than any header it may include.
BPF C is configured through ``const volatile`` globals set before load, so the
objects do not depend on any run-time option.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
PACKAGE = ROOT / "src" / "netbpf"
INCLUDE = PACKAGE / "bpf" / "include"

# Kernel uapi headers (linux/bpf.h, ...) come from linux-libc-dev; asm/ lives in
# the multiarch directory.  CO-RE relocations make the object independent of
# the running kernel's struct layouts.
ARCH = {"x86_64": "x86", "aarch64": "arm64", "ppc64le": "powerpc", "s390x": "s390"}


def clang() -> str:
    for name in ("clang", "clang-16", "clang-15", "clang-14"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("buildbpf: clang not found (apt-get install clang)")


def cflags() -> list[str]:
    machine = os.uname().machine
    multiarch = subprocess.run(
        ["gcc", "-print-multiarch"], capture_output=True, text=True, check=False
    ).stdout.strip() or f"{machine}-linux-gnu"
    return [
        "-g", "-O2", "-target", "bpf", "-mcpu=v3",
        f"-D__TARGET_ARCH_{ARCH.get(machine, machine)}",
        "-Wall", "-Wno-unused-function", "-Werror",
        f"-I{INCLUDE}", f"-I/usr/include/{multiarch}",
    ]


def headers(source: Path) -> list[Path]:
    local = list(source.parent.glob("*.h"))
    return local + list(INCLUDE.rglob("*.h"))


def stale(source: Path, target: Path) -> bool:
    if not target.exists():
        return True
    built = target.stat().st_mtime
    return any(p.stat().st_mtime > built for p in [source, *headers(source)])


def build_all(verbose: bool = False, force: bool = False) -> list[Path]:
    compiler = clang()
    flags = cflags()
    built = []
    for source in sorted(PACKAGE.rglob("*.bpf.c")):
        target = source.with_suffix(".o")
        if not force and not stale(source, target):
            continue
        cmd = [compiler, *flags, f"-I{source.parent}", "-c", str(source), "-o", str(target)]
        if verbose:
            print("  BPF", source.relative_to(ROOT), flush=True)
        result = subprocess.run(cmd, check=False)
        if result.returncode != 0:
            sys.exit(f"buildbpf: failed to compile {source.relative_to(ROOT)}")
        built.append(target)
    return built


if __name__ == "__main__":
    build_all(verbose=True, force="--force" in sys.argv)
