"""Kernel tests: root, real BPF, each test in network namespaces of its own."""
from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from netbpf.bpf import fs
from netbpf.lab import Lab

_counter = itertools.count()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/kernel" in str(item.fspath):
            item.add_marker(pytest.mark.kernel)
            if os.geteuid() != 0:
                item.add_marker(pytest.mark.skip(reason="kernel tests need root"))


def unique_prefix() -> str:
    return f"t{os.getpid() % 100000}x{next(_counter)}"


_PREFIX = re.compile(r"^t(\d+)x\d+-")


def _dead_run(name: str) -> bool:
    """A name unique_prefix() gave in a test run whose pytest is gone (killed mid-run)."""
    match = _PREFIX.match(name)
    if not match or int(match[1]) == os.getpid() % 100000:
        return False
    for pid in range(int(match[1]), 1 << 22, 100000):
        try:
            if b"pytest" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return False
        except OSError:
            continue
    return True


@pytest.fixture(scope="session", autouse=True)
def _no_leftovers_of_killed_runs() -> None:
    """A run killed mid-test leaves its namespaces and the pins of what it had pinned in
    them (a pinned fault keeps its program loaded). The tests judge what netbpf leaves
    behind, so they start without a dead run's leftovers: only names of the form
    unique_prefix() gives, and only when no pytest of that id still runs."""
    if os.geteuid() != 0:
        return
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    removed = [name for name in netns if _dead_run(name)]
    for name in removed:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)
    root = fs.PIN_ROOT
    if root.is_dir():
        for path in sorted(root.rglob("*"), key=lambda p: -len(p.parts)):
            if any(_dead_run(part) for part in path.relative_to(root).parts):
                removed.append(str(path))
                (path.rmdir if path.is_dir() and not path.is_symlink() else path.unlink)()
    if removed:
        print(f"\nremoved what a killed test run left: {' '.join(removed)}", file=sys.stderr)


def _lab_up(backends: int) -> Iterator[Lab]:
    """A lab of its own for one test, reachable before the test and removed after it."""
    lab = Lab(unique_prefix(), backends=backends).up()
    lab.wait_reachable()
    try:
        yield lab
    finally:
        lab.down()


@pytest.fixture
def lab() -> Iterator[Lab]:
    """Client, gateway and two plain backends, removed after the test."""
    yield from _lab_up(2)


@pytest.fixture
def pair() -> Iterator[Lab]:
    """Two namespaces, client and gateway, joined by one veth pair (eth0 <-> c0)."""
    yield from _lab_up(0)


def netbpf(*args: str, netns: str | None = None, check: bool = False, timeout: float = 120,
           **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run the netbpf CLI as a user would (a separate process)."""
    argv = [sys.executable, "-m", "netbpf"]
    if netns:
        argv += ["--netns", netns]
    return subprocess.run([*argv, *args], capture_output=True, text=True, check=check,
                          timeout=timeout, **kwargs)  # type: ignore[call-overload]


def bpftool_json(*args: str) -> list[dict[str, object]]:
    out = subprocess.run(["bpftool", "-j", *args], capture_output=True, text=True, check=True).stdout
    return json.loads(out or "[]")


def loaded_prog_ids() -> set[int]:
    return {int(p["id"]) for p in bpftool_json("prog", "show")}  # type: ignore[arg-type]


def link_prog_ids() -> set[int]:
    return {int(link["prog_id"]) for link in bpftool_json("link", "show")}  # type: ignore[arg-type]


def tc_filters(lab: Lab, netns: str, dev: str) -> list[object]:
    found: list[object] = []
    for parent in ("ingress", "egress"):
        out = lab.run(netns, "tc", "-j", "filter", "show", "dev", dev, parent, check=False).stdout
        found += json.loads(out or "[]")
    return found


def qdisc_kinds(lab: Lab, netns: str, dev: str) -> set[str]:
    out = lab.run(netns, "tc", "-j", "qdisc", "show", "dev", dev).stdout
    return {str(q["kind"]) for q in json.loads(out or "[]")}


def xdp_prog_on(lab: Lab, netns: str, dev: str) -> int:
    out = lab.run(netns, "ip", "-j", "-d", "link", "show", "dev", dev).stdout
    link = json.loads(out)[0]
    return int(link.get("xdp", {}).get("prog", {}).get("id", 0))


def ping(lab: Lab, src: str, dst: str, count: int = 3, interval: float = 0.05) -> int:
    """Replies received."""
    out = lab.run(src, "ping", "-c", str(count), "-i", str(interval), "-W", "1", dst, check=False).stdout
    for line in out.splitlines():
        if "received" in line:
            return int(line.split(",")[1].split()[0])
    return 0


def settled(read: Callable[[], int], quiet: float = 0.3, timeout: float = 60) -> int:
    """``read()`` once it has not changed for ``quiet`` seconds (or at ``timeout``):
    a kernel counter or a file that traffic still on its way would move."""
    value, since = read(), time.monotonic()
    deadline = since + timeout
    while time.monotonic() < deadline and time.monotonic() - since < quiet:
        time.sleep(0.1)
        now = read()
        if now != value:
            value, since = now, time.monotonic()
    return value


def wait_until_settled(path: Path) -> None:
    """Until a capture file (tcpdump -U writes each packet as it takes it) has not
    grown for half a second: on SIGINT tcpdump leaves what its ring still holds
    unwritten, and the last packets of a test may still be on their way."""
    settled(lambda: path.stat().st_size if path.exists() else 0, quiet=0.5)


def free_port() -> int:
    """A TCP port nothing listens on in this namespace just now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_progs(out: Path, names: Iterable[str]) -> dict[str, Path]:
    """The tests' own BPF programs (tests/kernel/progs/NAME.c) built by clang into ``out``,
    by name; the test is skipped where there is no clang."""
    if shutil.which("clang") is None:
        pytest.skip("clang is needed to build the test's own BPF programs")
    multiarch = subprocess.run(["gcc", "-print-multiarch"], capture_output=True, text=True).stdout.strip()
    built = {}
    for name in names:
        built[name] = out / f"{name}.o"
        subprocess.run(["clang", "-O2", "-g", "-target", "bpf", f"-I/usr/include/{multiarch or 'x86_64-linux-gnu'}",
                        "-c", str(Path(__file__).resolve().parent / "progs" / f"{name}.c"), "-o", str(built[name])],
                       check=True)
    return built
