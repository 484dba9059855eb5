"""netbpf never touches what is not its own, and never pins where another user could reach.

Each test uses a private pin root (NETBPF_PIN_ROOT) so that the shared
/sys/fs/bpf/netbpf of other netbpf runs is neither read nor changed.
"""
from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from netbpf.bpf import made
from netbpf.lab import Lab
from netbpf.tools.accel.sandbox import Sandbox

from .conftest import (
    loaded_prog_ids,
    netbpf,
    settled,
    tc_filters,
    unique_prefix,
    xdp_prog_on,
)
from .drops_helpers import Tool

NOBODY = 65534
_roots = itertools.count()

# An XDP program netbpf did not build, named like one of netbpf's.
FOREIGN_C = r"""
#define SEC(n) __attribute__((section(n), used))
SEC("xdp") int netbpf_mine(void *ctx) { return 2; /* XDP_PASS */ }
char _license[] SEC("license") = "GPL";
"""


@pytest.fixture
def pin_root(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A pin root of this test's own, passed to every netbpf it runs."""
    root = Path(f"/sys/fs/bpf/nbsec-{os.getpid()}-{next(_roots)}")
    monkeypatch.setenv("NETBPF_PIN_ROOT", str(root))
    yield root
    if root.is_symlink() or root.is_file():
        root.unlink()
    elif root.exists():
        shutil.rmtree(root)


@pytest.fixture
def foreign_object(tmp_path: Path) -> Path:
    src = tmp_path / "mine.bpf.c"
    src.write_text(FOREIGN_C)
    obj = tmp_path / "mine.bpf.o"
    subprocess.run(["clang", "-O2", "-g", "-target", "bpf", "-c", str(src), "-o", str(obj)], check=True)
    return obj


def attach_foreign(pair: Lab, obj: Path) -> int:
    pair.run(pair.gateway, "ip", "link", "set", "dev", "c0", "xdp", "obj", str(obj), "sec", "xdp")
    prog_id = xdp_prog_on(pair, pair.gateway, "c0")
    assert prog_id
    return prog_id


def one_line_refusal(result: subprocess.CompletedProcess[str], path: Path, owner: str) -> None:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0] and owner in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def no_cgroup_programs(cgroup: Path) -> bool:
    out = subprocess.run(["bpftool", "-j", "cgroup", "show", str(cgroup)], capture_output=True,
                         text=True, check=False).stdout
    return not json.loads(out.strip() or "[]")


@pytest.mark.parametrize("hostile", ["root", "subdir", "symlink"])
def test_refuses_a_pin_directory_it_does_not_own(pair: Lab, pin_root: Path, foreign_object: Path,
                                                  hostile: str) -> None:
    """A user who made the pin root (or netbpf's subdirectory) first, or planted a
    symlink there: accel enable, fault --pin and dump refuse, and attach nothing."""
    original = attach_foreign(pair, foreign_object)
    decoy = Path(f"{pin_root}-decoy")  # what a symlink would lead root to pin into
    if hostile == "root":
        pin_root.mkdir()
        os.chown(pin_root, NOBODY, NOBODY)
    elif hostile == "symlink":
        decoy.mkdir(mode=0o700)
        pin_root.symlink_to(decoy)
    else:
        pin_root.mkdir(mode=0o700)
    try:
        def hostile_dir(sub: str) -> tuple[Path, str]:
            if hostile == "subdir":
                (pin_root / sub).mkdir()
                os.chown(pin_root / sub, NOBODY, NOBODY)
                return pin_root / sub, "nobody"
            return pin_root, "nobody" if hostile == "root" else "symlink"

        with Sandbox(unique_prefix(), cgroups=("accel",)) as sandbox:
            where, owner = hostile_dir("accel")
            result = netbpf("accel", "enable", "--cgroup", str(sandbox.cgroups["accel"]))
            one_line_refusal(result, where, owner)
            assert no_cgroup_programs(sandbox.cgroups["accel"])

        where, owner = hostile_dir("fault")
        result = netbpf("fault", "drop", "--pin", "-i", "c0", "icmp", netns=pair.gateway)
        one_line_refusal(result, where, owner)
        assert xdp_prog_on(pair, pair.gateway, "c0") == original
        assert tc_filters(pair, pair.gateway, "c0") == []

        # dump pins the PROG_ARRAY that keeps the original behind it: it must refuse too.
        where, owner = hostile_dir("dump")
        result = netbpf("dump", "-i", "c0", "-c", "1", "--duration", "5", "-w", "/dev/null", netns=pair.gateway)
        one_line_refusal(result, where, owner)
        assert xdp_prog_on(pair, pair.gateway, "c0") == original

        # Nothing was pinned into the hostile directory, nor through the symlink.
        target = decoy if hostile == "symlink" else pin_root
        assert not [p for p in target.rglob("*") if not p.is_dir()]
        assert not [e for e in netbpf("status", "--json", check=True).stdout.splitlines()
                    if pair.gateway in e and '"kind": "foreign"' not in e]
    finally:
        if decoy.exists():
            shutil.rmtree(decoy)


def test_status_names_a_pin_root_it_does_not_own(pin_root: Path) -> None:
    pin_root.mkdir()
    os.chown(pin_root, NOBODY, NOBODY)
    entries = [json.loads(line) for line in netbpf("status", "--json", check=True).stdout.splitlines()]
    mine = [e for e in entries if e.get("pinned") == str(pin_root)]
    assert mine and mine[0]["kind"] == "foreign" and "nobody" in mine[0]["target"]
    result = netbpf("cleanup", "--this-netns", check=True)
    assert f"left alone: {pin_root}" in result.stdout
    assert pin_root.stat().st_uid == NOBODY


def _start_and_kill(argv: list[str], ready: str) -> None:
    """Run netbpf until it prints ``ready`` on stderr, then SIGKILL it."""
    proc = subprocess.Popen([sys.executable, "-m", "netbpf", *argv], stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if ready in line:
                break
        else:
            raise AssertionError(f"netbpf {' '.join(argv)} ended before {ready!r}")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_cleanup_removes_only_what_netbpf_made(pair: Lab, pin_root: Path, foreign_object: Path) -> None:
    """A program named netbpf_mine that netbpf did not load, on c0's XDP hook, and
    a pin planted under the pin root: cleanup leaves both and says so. netbpf's own
    leftovers (a SIGKILLed dump in front of netbpf_mine, a pinned fault, accel
    enable) all go in the same single pass."""
    mine = attach_foreign(pair, foreign_object)
    before = loaded_prog_ids()
    pin_root.mkdir(mode=0o700)
    planted = pin_root / "planted"
    subprocess.run(["bpftool", "prog", "pin", "id", str(mine), str(planted)], check=True)
    with Sandbox(unique_prefix(), cgroups=("accel",)) as sandbox:
        _start_and_kill(["--netns", pair.gateway, "dump", "-i", "c0", "-w", "/dev/null"], "capturing on c0")
        front = xdp_prog_on(pair, pair.gateway, "c0")
        assert front != mine  # the killed dump's program still stands in front of netbpf_mine
        netbpf("fault", "drop", "--pin", "-i", "eth0", "--direction", "egress", "icmp",
               netns=pair.client, check=True)
        netbpf("accel", "enable", "--cgroup", str(sandbox.cgroups["accel"]), check=True)
        assert not no_cgroup_programs(sandbox.cgroups["accel"])
        # Programs loaded since, that netbpf put on its record: this test's leftovers
        # (another engineer's programs may load meanwhile; they are not on record).
        left_by_netbpf = (loaded_prog_ids() - before) & set(made.read().progs)
        assert len(left_by_netbpf) >= 3

        entries = [json.loads(line) for line in netbpf("status", "--json", check=True).stdout.splitlines()]
        foreign = [e for e in entries if e["kind"] == "foreign"]
        assert any(e.get("prog_id") == mine and e.get("program") == "netbpf_mine" and e.get("netns") == pair.gateway
                   and "not netbpf's, left alone" in e["target"] for e in foreign)
        assert any(e.get("pinned") == str(planted) for e in foreign)
        text = netbpf("status", check=True).stdout
        assert "netbpf_mine" in text and "not netbpf's, left alone" in text

        # A dump still running is not a leftover: cleanup leaves it to that process.
        running = Tool("dump", "-i", "eth0", "-w", "/dev/null", netns=pair.client, ready="capturing on eth0")
        try:
            result = netbpf("cleanup", check=True)
            assert f"left to pid {running.proc.pid}, the netbpf process still using it" in result.stdout
            assert xdp_prog_on(pair, pair.client, "eth0") != 0
        finally:
            _, err = running.stop()
        assert "packets captured" in err and xdp_prog_on(pair, pair.client, "eth0") == 0
        assert f"left alone: program netbpf_mine id {mine} in {pair.gateway}" in result.stdout
        assert f"left alone: {planted}" in result.stdout
        assert f"restored XDP program id {mine} on c0" in result.stdout
        # The foreign program is back on the hook, untouched; its pin is still there.
        assert xdp_prog_on(pair, pair.gateway, "c0") == mine
        pinned = json.loads(subprocess.run(["bpftool", "-j", "prog", "show", "pinned", str(planted)],
                                           capture_output=True, text=True, check=True).stdout)
        assert pinned["id"] == mine
        # Everything of netbpf's is gone after that one pass.
        assert no_cgroup_programs(sandbox.cgroups["accel"])
        assert tc_filters(pair, pair.client, "eth0") == []
        settled(lambda: len(left_by_netbpf & loaded_prog_ids()), quiet=0.5, timeout=10)  # freed after RCU
        assert not left_by_netbpf & loaded_prog_ids()
        assert [p for p in pin_root.rglob("*") if p != planted] == []
        again = netbpf("cleanup", check=True).stdout
        assert "nothing else to clean up" in again and f"left alone: {planted}" in again
    pair.run(pair.gateway, "ip", "link", "set", "dev", "c0", "xdp", "off")
