"""What netbpf leaves behind when things go wrong: failed commands, stacked tools
leaving in any order, interfaces deleted under a running tool, SIGKILLs at random.

The interface's own XDP program (drop_icmp, built with clang, attached with
iproute2) is the reference: after everything exits it must be back on the
hook, the same program id in the same mode (iproute2 says), still acting on
traffic (ping over IPv4 fails, over IPv6 passes), and nothing of this test's
namespace may stay pinned (not even an empty directory). Every check is
scoped to the test's own namespaces: other tests share the pin root.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netbpf.bpf.fs import PIN_ROOT
from netbpf.lab import Lab

from .conftest import build_progs, netbpf
from .test_dump import ARGV, LINK_LOADER, ping, start, stop, summary, tshark, xdp_state

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def progs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("unwind-progs")
    built = build_progs(out, ["xdp_drop_icmp", "xdp_count_icmp", "tc_pass", "xdp_unverifiable"])
    garbage = out / "garbage.o"
    garbage.write_bytes(b"\x7fELF but not really an object file" * 10)
    built["garbage"] = garbage
    return built


def pin_tree(lab: Lab) -> list[str]:
    """Everything (files and directories) under the pin root that belongs to the
    lab's gateway namespace: dump/GW_*, xdp/GW/, fault/GW/."""
    roots = [PIN_ROOT / "xdp" / lab.gateway, PIN_ROOT / "fault" / lab.gateway]
    dump = PIN_ROOT / "dump"
    if dump.is_dir():
        roots += [d for d in dump.iterdir() if d.name.startswith(lab.gateway + "_")]
    found = []
    for root in roots:
        if root.exists():
            found.append(str(root))
            found += [str(p) for p in root.rglob("*")]
    return sorted(found)


def remove_pins(lab: Lab) -> None:
    """The test's own pins, whatever a failure left (never another namespace's)."""
    for path in pin_tree(lab):
        p = Path(path)
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists():
            p.unlink()


@pytest.fixture(params=["iproute2-generic"])
def gw(request: pytest.FixtureRequest, pair: Lab, progs: dict[str, Path]) -> Iterator[tuple[Lab, tuple[int, int]]]:
    """The pair, with drop_icmp on the gateway's c0: (lab, (its id, its mode)). Attached by
    iproute2 over netlink, or held in a BPF link (pinned outside netbpf's directory, as
    another tool would) in native mode: front programs then step in and out of that link."""
    link_pin = Path(f"/sys/fs/bpf/netbpf-test-unwind-link-{os.getpid()}")
    if request.param == "iproute2-generic":
        pair.run(pair.gateway, "ip", "link", "set", "dev", "c0", "xdpgeneric", "obj", str(progs["xdp_drop_icmp"]),
                 "sec", "xdp")
    else:
        env = {**os.environ, "PYTHONPATH": str(HERE.parents[1] / "src")}
        subprocess.run([sys.executable, "-c", LINK_LOADER, pair.gateway, str(progs["xdp_drop_icmp"]),
                        str(link_pin), "drv"], check=True, env=env)
    original = xdp_state(pair)
    assert original[0] and ping(pair, 2) == 0
    try:
        yield pair, original
    finally:
        netbpf("cleanup", "--this-netns", netns=pair.gateway)
        remove_pins(pair)
        if link_pin.exists():
            link_pin.unlink()


def bpftool_xdp(lab: Lab, dev: str = "c0") -> list[tuple[int, str]]:
    """(program id, mode) of each XDP program on ``dev`` as bpftool reports them."""
    out = lab.run(lab.gateway, "bpftool", "-j", "net", "show", "dev", dev).stdout
    return [(int(x["id"]), str(x["mode"])) for entry in json.loads(out or "[]") for x in entry.get("xdp", [])]


def assert_as_before(lab: Lab, original: tuple[int, int]) -> None:
    """The original program on the hook, acting, and nothing of ours pinned."""
    assert xdp_state(lab) == original  # same id, same mode (iproute2)
    assert bpftool_xdp(lab) == [(original[0], {1: "driver", 2: "generic"}[original[1]])]  # and bpftool
    assert ping(lab, 2) == 0  # it still drops ICMP over IPv4
    assert ping(lab, 2, lab.GATEWAY_IP6) == 2  # and passes the rest
    assert pin_tree(lab) == []


def chain(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    return netbpf("xdp", "chain", "-i", "c0", *args, netns=lab.gateway)


# -- a failed `xdp chain add` --------------------------------------------------------------

@pytest.mark.parametrize("case", ["missing", "garbage", "no-such-program", "not-xdp", "bad-pos", "negative-pos",
                                  "verifier"])
@pytest.mark.parametrize("hook", ["original", "empty"])
def test_a_failed_chain_add_leaves_the_hook_and_the_pins_as_they_were(
        pair: Lab, progs: dict[str, Path], case: str, hook: str) -> None:
    lab = pair
    if hook == "original":
        lab.run(lab.gateway, "ip", "link", "set", "dev", "c0", "xdpgeneric", "obj", str(progs["xdp_drop_icmp"]),
                "sec", "xdp")
    before = xdp_state(lab)
    args = {
        "missing": ["/nonexistent/x.o"],
        "garbage": [str(progs["garbage"])],
        "no-such-program": [f"{progs['xdp_count_icmp']}:nosuch"],
        "not-xdp": [str(progs["tc_pass"])],
        "bad-pos": [str(progs["xdp_count_icmp"]), "--pos", "1"],
        "negative-pos": [str(progs["xdp_count_icmp"]), "--pos", "-1"],
        "verifier": [str(progs["xdp_unverifiable"])],
    }[case]
    try:
        result = chain(lab, "add", *args)
        lines = result.stderr.strip().splitlines()
        # A file or program that is not there or not chainable is bad input (1); a position
        # out of range is a usage error (2).
        assert result.returncode == (2 if case.endswith("pos") else 1), result.stderr
        assert len(lines) == 1 and lines[0].startswith("netbpf") and "Traceback" not in result.stderr
        assert result.stdout == ""
        assert xdp_state(lab) == before
        assert pin_tree(lab) == []
        assert ping(lab, 2) == (0 if hook == "original" else 2)
    finally:
        remove_pins(lab)


# -- stacked front programs leave in any order ----------------------------------------------

def _stop_or_kill(proc: subprocess.Popen[bytes], how: str) -> str:
    if how == "kill":
        proc.kill()
        proc.wait()
        return ""
    _, err = stop(proc, signal.SIGINT)
    assert "Traceback" not in err and "File exists" not in err
    return err


ORDERS = {  # who leaves first, how; then the other
    "first-exits-first": (("first", "stop"), ("second", "stop")),
    "last-exits-first": (("second", "stop"), ("first", "stop")),
    "kill-first": (("first", "kill"), ("second", "stop")),
    "kill-second": (("second", "kill"), ("first", "stop")),
    "stop-first-kill-second": (("first", "stop"), ("second", "kill")),
    "kill-both": (("first", "kill"), ("second", "kill")),
}


@pytest.mark.parametrize("gw", ["iproute2-generic", "bpf-link-drv"], indirect=True)
@pytest.mark.parametrize("order", [*ORDERS, "both-at-once"])
def test_two_dumps_on_one_hook_unwind_in_any_order(gw: tuple[Lab, tuple[int, int]], tmp_path: Path,
                                                   order: str) -> None:
    lab, original = gw
    procs = {"first": start(lab, "-i", "c0", "-w", str(tmp_path / "first.pcap"), "icmp")}
    front1 = xdp_state(lab)[0]
    procs["second"] = start(lab, "-i", "c0", "-w", str(tmp_path / "second.pcap"), "icmp")
    front2 = xdp_state(lab)[0]
    assert len({original[0], front1, front2}) == 3
    assert ping(lab, 3) == 0  # both capture, the original still drops

    counts: dict[str, int] = {}
    if order == "both-at-once":
        for proc in procs.values():
            proc.send_signal(signal.SIGINT)
        for name, proc in procs.items():
            _, err = proc.communicate(timeout=30)
            assert proc.returncode == 0 and "Traceback" not in err.decode(), err
            counts[name] = summary(err.decode())[0]
        assert counts == {"first": 3, "second": 3}
    else:
        for step, (name, how) in enumerate(ORDERS[order]):
            err = _stop_or_kill(procs[name], how)
            if err:
                counts[name] = summary(err)[0]
                assert counts[name] == 3 + 2 * step  # it saw every request while it stood in the path
            if step == 0:
                assert ping(lab, 2) == 0  # the one left (or what it left behind) still runs the original
    if "kill" in order:
        result = netbpf("cleanup", "--this-netns", netns=lab.gateway)  # one pass
        assert result.returncode == 0, result.stderr
        assert f"restored XDP program id {original[0]} on c0" in result.stdout
    for name, n in counts.items():
        # tshark reads what each capture wrote: what its exit line says, every echo request
        assert len(tshark(tmp_path / f"{name}.pcap", "icmp.type == 8")) == n
    assert_as_before(lab, original)


ROUNDS = 25


@pytest.mark.parametrize("gw", ["iproute2-generic", "bpf-link-drv"], indirect=True)
def test_two_capture_programs_leaving_at_the_same_moment(gw: tuple[Lab, tuple[int, int]]) -> None:
    """The race of "both-at-once", many times and closer: two threads of one process
    each stop a capture program of a stack at the same instant (a barrier)."""
    import threading

    from netbpf import netns
    from netbpf.bpf.attach import xdp_front
    from netbpf.tools.dump.kernel import Capture, CaptureOptions

    lab, original = gw

    def leave(capture: Capture, barrier: threading.Barrier, errors: list[BaseException]) -> None:
        barrier.wait()
        try:
            capture.stop()
        except BaseException as e:  # reported below
            errors.append(e)
        finally:
            capture.close()

    def rounds() -> list[tuple[int, str]]:
        wrong = []
        for n in range(ROUNDS):
            first = Capture(CaptureOptions("c0", expression="icmp")).start()
            second = Capture(CaptureOptions("c0", expression="icmp")).start()
            barrier = threading.Barrier(2)
            errors: list[BaseException] = []
            threads = [threading.Thread(target=leave, args=(c, barrier, errors)) for c in (first, second)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if errors:
                wrong.append((n, repr(errors)))
            if xdp_front.path("c0") != [original[0]]:
                wrong.append((n, f"path {xdp_front.path('c0')}"))
                break
        return wrong

    assert netns.run_in(f"/run/netns/{lab.gateway}", rounds) == []
    assert_as_before(lab, original)


@pytest.mark.parametrize("gw", ["iproute2-generic", "bpf-link-drv"], indirect=True)
@pytest.mark.parametrize("order", ["dump-exits-first", "chain-removed-first", "dump-killed", "chain-first"])
def test_dump_and_chain_on_one_hook_unwind_in_any_order(gw: tuple[Lab, tuple[int, int]],
                                                        progs: dict[str, Path], tmp_path: Path,
                                                        order: str) -> None:
    lab, original = gw
    if order == "chain-first":
        assert chain(lab, "add", str(progs["xdp_count_icmp"])).returncode == 0
    dump = start(lab, "-i", "c0", "-w", str(tmp_path / "d.pcap"), "icmp")
    if order != "chain-first":
        result = chain(lab, "add", str(progs["xdp_count_icmp"]))
        assert result.returncode == 0, result.stderr
    assert ping(lab, 3) == 0
    if order in ("dump-exits-first", "chain-first"):
        _, err = stop(dump)
        assert summary(err)[0] == 3 and "File exists" not in err
        assert ping(lab, 2) == 0
        result = chain(lab, "remove", "0")
        assert result.returncode == 0 and "chain empty" in result.stdout, result.stderr
    elif order == "chain-removed-first":
        result = chain(lab, "remove", "0")
        assert result.returncode == 0 and "chain empty" in result.stdout, result.stderr
        assert ping(lab, 2) == 0
        _, err = stop(dump)
        assert summary(err)[0] == 5
    else:
        dump.kill()
        dump.wait()
        assert ping(lab, 2) == 0
        result = netbpf("cleanup", "--this-netns", netns=lab.gateway)  # one pass through both
        assert result.returncode == 0, result.stderr
        assert f"restored XDP program id {original[0]} on c0" in result.stdout
    assert_as_before(lab, original)


def test_a_chain_added_into_the_link_of_a_dump_outlives_it(pair: Lab, progs: dict[str, Path],
                                                          tmp_path: Path) -> None:
    """On an empty hook dump holds its program in a BPF link of its own; a chain put
    into that link must stay on the hook when the dump, the link's owner, exits."""
    lab = pair
    try:
        dump = start(lab, "-i", "c0", "-w", str(tmp_path / "d.pcap"), "icmp")
        result = chain(lab, "add", str(progs["xdp_drop_icmp"]))
        assert result.returncode == 0, result.stderr
        dispatcher = xdp_state(lab)
        _, err = stop(dump)
        assert "stepped out from behind" in err
        assert xdp_state(lab) == dispatcher and ping(lab, 2) == 0  # the chain still drops ICMP
        result = chain(lab, "remove", "0")
        assert "the XDP hook is empty again on c0" in result.stdout, result.stderr
        assert xdp_state(lab) == (0, 0) and bpftool_xdp(lab) == [] and ping(lab, 2) == 2
        assert pin_tree(lab) == []
    finally:
        netbpf("cleanup", "--this-netns", netns=lab.gateway)
        remove_pins(lab)


# -- an interface deleted under a running tool -------------------------------------------------

@pytest.fixture
def spare(gw: tuple[Lab, tuple[int, int]], progs: dict[str, Path]) -> Iterator[tuple[Lab, int]]:
    """A veth pair u0/u1 of the test's own in the gateway, u0 with drop_icmp (its id)."""
    lab, _ = gw
    lab.run(lab.gateway, "ip", "link", "add", "u0", "type", "veth", "peer", "name", "u1")
    lab.run(lab.gateway, "ip", "link", "set", "u0", "up")
    lab.run(lab.gateway, "ip", "link", "set", "u1", "up")
    lab.run(lab.gateway, "ip", "link", "set", "dev", "u0", "xdpgeneric", "obj", str(progs["xdp_drop_icmp"]),
            "sec", "xdp")
    try:
        yield lab, xdp_state(lab, "u0")[0]
    finally:
        lab.run(lab.gateway, "ip", "link", "del", "u0", check=False)


def test_dump_notices_its_interface_deleted_and_leaves_nothing(spare: tuple[Lab, int], tmp_path: Path) -> None:
    lab, _ = spare
    proc = start(lab, "-i", "u0", "-w", str(tmp_path / "u.pcap"))
    assert any(p.name.startswith(f"{lab.gateway}_u0_") for p in (PIN_ROOT / "dump").iterdir())
    lab.run(lab.gateway, "ip", "link", "del", "u0")
    _, err = proc.communicate(timeout=30)  # noticed by itself: no signal
    lines = [line for line in err.decode().splitlines() if line.startswith("netbpf: ")]
    assert proc.returncode == 1 and "Traceback" not in err.decode()
    assert lines == ["netbpf: u0 was deleted while capturing: stopped, nothing of netbpf left on it"]
    assert pin_tree(lab) == []


def until_u0_deleted(lab: Lab, *args: str) -> str:
    """Start ``netbpf ARGS`` on u0 and delete u0 under it: it must notice by itself (no
    signal) and exit 1 without a traceback. Its stderr."""
    proc = subprocess.Popen([*ARGV, "--netns", lab.gateway, *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    assert proc.stderr is not None
    while b"Ctrl-C to stop" not in (line := proc.stderr.readline()):
        assert line, f"netbpf {args[0]} did not start"
    lab.run(lab.gateway, "ip", "link", "del", "u0")
    err = proc.communicate(timeout=30)[1].decode()
    assert proc.returncode == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize("direction", ["ingress", "egress"])
def test_fault_notices_its_interface_deleted(spare: tuple[Lab, int], direction: str) -> None:
    lab, _ = spare
    err = until_u0_deleted(lab, "fault", "drop", "-i", "u0", "--hook", "tc", "--direction", direction,
                           "--json", "icmp")
    assert err.splitlines()[-1] == ("netbpf: u0 was deleted while the fault ran: stopped, "
                                    "nothing of netbpf left on it")
    assert pin_tree(lab) == []


def test_http_notices_its_interface_deleted(spare: tuple[Lab, int]) -> None:
    lab, _ = spare
    err = until_u0_deleted(lab, "http", "-i", "u0", "--port", "80")
    assert err.splitlines()[-1] == "netbpf: u0 was deleted while tracing: stopped"


def test_pins_for_a_deleted_interface_are_shown_and_cleaned_up(spare: tuple[Lab, int],
                                                              progs: dict[str, Path]) -> None:
    lab, _ = spare
    dump = subprocess.Popen([*ARGV, "--netns", lab.gateway, "dump", "-i", "u0"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    assert dump.stderr is not None and b"capturing on" in dump.stderr.readline()
    dump.kill()  # leaves its pinned xdp_original
    dump.wait()
    result = netbpf("xdp", "chain", "-i", "u0", "add", str(progs["xdp_count_icmp"]), netns=lab.gateway)
    assert result.returncode == 0, result.stderr
    result = netbpf("fault", "drop", "-i", "u0", "--pin", "icmp", netns=lab.gateway)
    assert result.returncode == 0, result.stderr
    before = pin_tree(lab)
    assert any("/dump/" in p for p in before) and any("/xdp/" in p for p in before)
    assert any("/fault/" in p for p in before)
    lab.run(lab.gateway, "ip", "link", "del", "u0")

    status = netbpf("status", check=True).stdout
    for path in (p for p in before if Path(p).is_file()):
        line = next(line for line in status.splitlines() if path in line and line.startswith("pin "))
        assert "u0, gone" in line and lab.gateway in line
    result = netbpf("cleanup", "--this-netns", netns=lab.gateway)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert "nothing to clean up" not in result.stdout
    assert pin_tree(lab) == []


# -- SIGKILL at random points of start-up --------------------------------------------------------

KILLS = 20


def _kill_at_random(lab: Lab, argv: list[str], delays: list[float], original: tuple[int, int]) -> int:
    """Kill at each delay, then one cleanup; returns how many kills left something to clean."""
    left = 0
    for delay in delays:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.kill()
        proc.wait()
        left += xdp_state(lab) != original or pin_tree(lab) != []
        result = netbpf("cleanup", "--this-netns", netns=lab.gateway)
        assert result.returncode == 0, (delay, result.stderr)
        assert xdp_state(lab) == original, (delay, result.stdout)
        assert pin_tree(lab) == [], (delay, result.stdout)
    assert ping(lab, 2) == 0 and ping(lab, 2, lab.GATEWAY_IP6) == 2
    return left


def _startup_time(argv: list[str], ready: bytes | None) -> float:
    """How long the command takes to do its work (``ready``: until it prints that)."""
    began = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    if ready is None:
        proc.wait(timeout=60)
    else:
        while ready not in proc.stderr.readline():
            pass
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    return time.monotonic() - began


@pytest.mark.parametrize("tool", ["xdp-chain-add", "dump"])
def test_sigkill_at_random_points_then_one_cleanup(gw: tuple[Lab, tuple[int, int]], progs: dict[str, Path],
                                                   tool: str) -> None:
    lab, original = gw
    if tool == "dump":
        argv = [*ARGV, "--netns", lab.gateway, "dump", "-i", "c0", "icmp"]
        span = _startup_time(argv, b"capturing on")
    else:
        argv = [*ARGV, "--netns", lab.gateway, "xdp", "chain", "-i", "c0", "add", str(progs["xdp_count_icmp"])]
        span = _startup_time(argv, None)
        assert netbpf("cleanup", "--this-netns", netns=lab.gateway).returncode == 0
    assert xdp_state(lab) == original and pin_tree(lab) == []
    seed = int(os.environ.get("NETBPF_KILL_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    # Over the command's own run time, half of them in its last part, where the
    # interpreter has started and the kernel is being touched.
    delays = sorted([rng.uniform(0, span * 1.1) for _ in range(KILLS // 2)]
                    + [rng.uniform(span * 0.5, span * 1.1) for _ in range(KILLS - KILLS // 2)])
    left = _kill_at_random(lab, argv, delays, original)
    print(f"seed {seed}, start-up {span:.2f} s, kills at {[round(d, 3) for d in delays]}, "
          f"{left} left something for cleanup", file=sys.stderr)
    assert left  # else the kills all came too early or too late to test anything
