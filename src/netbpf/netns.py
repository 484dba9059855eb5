"""Network namespaces: enter one in-process, list them.

``netbpf --netns NAME`` enters the namespace with setns(2) instead of running
under ``ip netns exec``: the latter also makes a new mount namespace with its
own /sys, where pins in bpffs would vanish with the process.
"""
from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .errors import NetbpfError, NotPermitted, from_errno
from .libc import libc

T = TypeVar("T")

NETNS_RUN_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000


def named() -> list[str]:
    """Names of the namespaces made with ``ip netns add``."""
    try:
        return sorted(p.name for p in NETNS_RUN_DIR.iterdir())
    except FileNotFoundError:
        return []


def current_inode() -> int:
    """The namespace of the calling thread (threads may sit in different ones)."""
    return os.stat("/proc/thread-self/ns/net").st_ino


def inode_of(name: str) -> int:
    return os.stat(NETNS_RUN_DIR / name).st_ino


def enter(name: str) -> None:
    """Move this thread (call before starting others) into the named namespace."""
    path = NETNS_RUN_DIR / name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NetbpfError(f"no such network namespace: {name} (ip netns list)") from None
    except OSError as e:  # a name too long for a file
        raise NetbpfError(f"network namespace {name}: {e.strerror} (ip netns list)") from None
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            if os.geteuid() != 0:
                raise NotPermitted(f"enter network namespace {name}")
            raise from_errno(f"enter network namespace {name}", err)
    finally:
        os.close(fd)


def name_of_inode(inode: int) -> str:
    """The ``ip netns`` name of a namespace inode; "" for the one we started in."""
    for name in named():
        try:
            if inode_of(name) == inode:
                return name
        except OSError:
            continue
    return ""


def all_namespaces() -> dict[int, str]:
    """Every network namespace in use: inode -> a path that opens it.

    The initial one, the named ones, and any other that a process sits in
    (containers), so that nothing netbpf attached is missed.
    """
    found: dict[int, str] = {}
    for candidate in ["/proc/1/ns/net", "/proc/self/ns/net",
                      *(str(NETNS_RUN_DIR / n) for n in named())]:
        try:
            found.setdefault(os.stat(candidate).st_ino, candidate)
        except OSError:
            continue
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        path = f"/proc/{pid}/ns/net"
        try:
            found.setdefault(os.stat(path).st_ino, path)
        except OSError:
            continue
    return found


def _host_inode() -> int:
    """The initial namespace: PID 1's where readable, else the one this process started in."""
    try:
        return os.stat("/proc/1/ns/net").st_ino
    except OSError:
        return _STARTED_IN


_STARTED_IN = os.stat("/proc/self/ns/net").st_ino


def label(inode: int) -> str:
    """How a namespace is shown: its ip-netns name, "host", or its inode."""
    if inode == _host_inode():
        return "host"
    return name_of_inode(inode) or f"netns:[{inode}]"


def run_in(path: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a thread that has entered the namespace at ``path``.

    setns(CLONE_NEWNET) moves only the calling thread, and subprocesses it
    starts inherit that namespace; the rest of the process stays put.
    """
    result: list[T] = []
    error: list[BaseException] = []

    def worker() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise from_errno(f"enter network namespace {path}", ctypes.get_errno())
            finally:
                os.close(fd)
            result.append(fn())
        except BaseException as e:  # handed to the caller
            error.append(e)

    thread = threading.Thread(target=worker, name=f"netns {path}")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]
