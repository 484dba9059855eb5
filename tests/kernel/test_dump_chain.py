"""netbpf xdp chain: programs nobody here wrote, one after another on one veth.

count_icmp counts ICMP and passes; drop_icmp drops it. Their order is seen
from outside: ping (does ICMP get through?) and count_icmp's own map (did the
packet reach it?). The chain must keep working after the command exits, keep
the interface's previous program last, and come down cleanly.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from netbpf.bpf.fs import PIN_ROOT
from netbpf.lab import Lab

from .conftest import build_progs, netbpf
from .test_dump import LINK_LOADER, RAW_LOADER, ping, start, stop, summary, xdp_state

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def progs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_progs(tmp_path_factory.mktemp("chain-progs"), ["xdp_drop_icmp", "xdp_count_icmp"])


def chain(lab: Lab, *args: str, code: int = 0) -> str:
    result = netbpf("xdp", "chain", "-i", "c0", *args, netns=lab.gateway)
    assert result.returncode == code, result.stderr
    return result.stdout + result.stderr


def listed(lab: Lab) -> list[dict[str, object]]:
    out = netbpf("xdp", "chain", "-i", "c0", "--json", "list", netns=lab.gateway, check=True).stdout
    return [json.loads(line) for line in out.splitlines()]


def icmp_seen(lab: Lab) -> int:
    """count_icmp's counter, read from its map through the kernel (bpftool)."""
    out = subprocess.run(["bpftool", "-j", "map", "dump", "name", "icmp_seen"], capture_output=True, text=True)
    if out.returncode != 0:
        return -1  # no such map (any more)
    values = [entry["formatted"]["value"] for entry in json.loads(out.stdout or "[]")]
    assert len(values) <= 1, "another count_icmp is loaded"
    return int(values[0]) if values else -1


def chain_pins(lab: Lab) -> list[Path]:
    root = PIN_ROOT / "xdp" / lab.gateway
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def clean(pair: Lab) -> Iterator[Lab]:
    yield pair
    netbpf("cleanup", "--this-netns", netns=pair.gateway)
    shutil.rmtree(PIN_ROOT / "xdp" / pair.gateway, ignore_errors=True)
    try:
        (PIN_ROOT / "xdp").rmdir()  # unless another chain lives there
    except OSError:
        pass


def test_pass_goes_on_other_verdicts_end_the_chain(clean: Lab, progs: dict[str, Path]) -> None:
    lab = clean
    out = chain(lab, "add", str(progs["xdp_count_icmp"]))
    assert "chain created on c0" in out and "added count_icmp" in out
    chain(lab, "add", str(progs["xdp_drop_icmp"]))
    assert [e["name"] for e in listed(lab)] == ["count_icmp", "drop_icmp"]
    # The commands have exited: the chain runs on, from its pins.
    assert ping(lab, 3) == 0 and icmp_seen(lab) == 3  # count passed, drop dropped
    assert ping(lab, 2, lab.GATEWAY_IP6) == 2

    chain(lab, "remove", "1")
    chain(lab, "add", f"{progs['xdp_drop_icmp']}:drop_icmp", "--pos", "0")
    assert [e["name"] for e in listed(lab)] == ["drop_icmp", "count_icmp"]
    assert ping(lab, 3) == 0 and icmp_seen(lab) == 3  # dropped before it could be counted

    chain(lab, "remove", "0")
    assert ping(lab, 2) == 2 and icmp_seen(lab) == 5
    out = chain(lab, "remove", "0")
    assert "chain empty: the XDP hook is empty again on c0" in out
    assert xdp_state(lab) == (0, 0) and chain_pins(lab) == []
    assert "no chain on c0" in chain(lab, "list")


@pytest.mark.parametrize("holder", ["netlink", "link", "netlink-attach-type-0"])
def test_the_programs_before_the_chain_runs_last_and_comes_back(clean: Lab, progs: dict[str, Path],
                                                               holder: str) -> None:
    lab = clean
    link_pin = Path(f"/sys/fs/bpf/netbpf-test-chain-link-{os.getpid()}")
    env = {**os.environ, "PYTHONPATH": str(HERE.parents[1] / "src")}
    if holder == "netlink":
        lab.run(lab.gateway, "ip", "link", "set", "dev", "c0", "xdpdrv", "obj", str(progs["xdp_drop_icmp"]), "sec", "xdp")
    elif holder == "netlink-attach-type-0":  # the chain's programs must then be loaded alike
        subprocess.run([sys.executable, "-c", RAW_LOADER, lab.gateway, "drv"], check=True, env=env)
    else:
        subprocess.run([sys.executable, "-c", LINK_LOADER, lab.gateway, str(progs["xdp_drop_icmp"]),
                        str(link_pin), "drv"], check=True, env=env)
    try:
        original = xdp_state(lab)
        chain(lab, "add", str(progs["xdp_count_icmp"]))
        assert xdp_state(lab)[0] != original[0]
        assert ping(lab, 3) == 0 and icmp_seen(lab) == 3  # the chain first, the original last
        assert f"then: XDP program id {original[0]}" in chain(lab, "list")
        out = chain(lab, "remove", "0")
        assert f"XDP program id {original[0]} is back" in out
        assert xdp_state(lab) == original and chain_pins(lab) == []
    finally:
        if link_pin.exists():
            link_pin.unlink()


def test_cleanup_takes_the_chain_down_and_restores(clean: Lab, progs: dict[str, Path]) -> None:
    lab = clean
    lab.run(lab.gateway, "ip", "link", "set", "dev", "c0", "xdpgeneric", "obj", str(progs["xdp_drop_icmp"]), "sec", "xdp")
    original = xdp_state(lab)
    chain(lab, "add", str(progs["xdp_count_icmp"]))
    assert chain_pins(lab)
    result = netbpf("cleanup", "--this-netns", netns=lab.gateway, check=True)
    assert f"restored XDP program id {original[0]} on c0" in result.stdout
    assert xdp_state(lab) == original and chain_pins(lab) == []
    assert ping(lab, 2) == 0 and icmp_seen(lab) in (-1, 0)  # the counter went with the chain


def test_dump_captures_in_front_of_a_chain(clean: Lab, progs: dict[str, Path], tmp_path: Path) -> None:
    lab = clean
    chain(lab, "add", str(progs["xdp_count_icmp"]))
    chain(lab, "add", str(progs["xdp_drop_icmp"]))
    dispatcher = xdp_state(lab)
    proc = start(lab, "-i", "c0", "-w", str(tmp_path / "x.pcap"), "icmp")
    assert "note: another program stands in front" in chain(lab, "list")
    assert ping(lab, 4) == 0 and icmp_seen(lab) == 4
    _, err = stop(proc, signal.SIGTERM)
    assert summary(err) == (4, 4, 0)
    assert xdp_state(lab) == dispatcher
    chain(lab, "remove", "1")
    assert ping(lab, 2) == 2


def test_bad_requests_are_one_line(clean: Lab, progs: dict[str, Path], tmp_path: Path) -> None:
    lab = clean
    assert "no such object file" in chain(lab, "add", "/nonexistent.o", code=1)
    assert "no chain on c0" in chain(lab, "remove", "0", code=1)
    not_xdp = tmp_path / "tc.o"
    not_xdp.write_bytes(progs["xdp_drop_icmp"].read_bytes())
    assert "no program or section 'nosuch'" in chain(lab, "add", f"{progs['xdp_drop_icmp']}:nosuch", code=1)
    chain(lab, "add", str(progs["xdp_count_icmp"]))
    assert "--pos must be 0..1" in chain(lab, "add", str(progs["xdp_drop_icmp"]), "--pos", "5", code=2)
    assert "no program at position 3" in chain(lab, "remove", "3", code=2)
    out = netbpf("xdp", "chain", "-i", "nosuch0", "list", netns=lab.gateway)
    assert (out.returncode, out.stderr.strip()) == (1, "netbpf: no such interface: nosuch0")
