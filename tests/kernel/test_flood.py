"""The frame flood (netbpf.tools.dump.flood): its probe, its two generators, its refusals.

Some machines refuse BPF_PROG_TEST_RUN with live XDP frames, even to root. Here it is
allowed, so the refusal is made real with refuse_test_run.py (a seccomp filter: every
BPF_PROG_TEST_RUN of the command and its children fails with EPERM). To run any
flood test with the fallback generator, as such a machine would:

    NETBPF_FLOOD=socket .venv/bin/python -m pytest -m flood tests/kernel

(`make test` does this second pass itself.)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from netbpf import netns
from netbpf.bpf import features
from netbpf.errors import NotSupported
from netbpf.lab import Lab
from netbpf.tools.dump import flood as floods

from .conftest import settled

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
REFUSE = [sys.executable, str(HERE / "refuse_test_run.py")]


def refused(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a command as a machine that refuses BPF_PROG_TEST_RUN would."""
    return subprocess.run([*REFUSE, *argv], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, **env})


def nft_counter(lab: Lab, port: int) -> None:
    """An nftables counter of UDP to `port` on c0's ingress hook (after XDP, before IP)."""
    lab.run(lab.gateway, "nft", "add table netdev netbpf_t; "
            "add chain netdev netbpf_t in { type filter hook ingress device c0 priority 0; }; "
            f"add rule netdev netbpf_t in udp dport {port} counter")


def nft_count(lab: Lab) -> int:
    out = lab.run(lab.gateway, "nft", "-j", "list", "table", "netdev", "netbpf_t").stdout
    rules = [item["rule"] for item in json.loads(out)["nftables"] if "rule" in item]
    return sum(e["counter"]["packets"] for r in rules for e in r["expr"] if "counter" in e)


def c0_mac(lab: Lab) -> bytes:
    out = lab.run(lab.gateway, "ip", "-j", "link", "show", "c0").stdout
    return bytes.fromhex(json.loads(out)[0]["address"].replace(":", ""))


def test_refused_live_frames_probe_false_and_auto_takes_the_socket() -> None:
    script = ("from netbpf.bpf import features\n"
              "from netbpf.tools.dump import flood\n"
              "print(features.xdp_live_frames_errno(), flood.choose())\n")
    result = refused(sys.executable, "-c", script, NETBPF_FLOOD="auto")
    assert (result.returncode, result.stdout.split()) == (0, ["1", floods.SOCKET]), result.stderr  # EPERM


def test_forced_live_frames_when_refused_is_one_line_naming_the_feature() -> None:
    script = ("from netbpf.errors import NotSupported\n"
              "from netbpf.tools.dump import flood\n"
              "try:\n    flood.open_flood('lo')\n"
              "except NotSupported as e:\n    print(e.feature)\n")
    result = refused(sys.executable, "-c", script, NETBPF_FLOOD="live")
    assert (result.returncode, result.stdout.strip()) == (0, features.XDP_LIVE_FRAMES), result.stderr


@pytest.mark.parametrize("bench", ["dump_capture.py", "drops_flood.py"])
def test_bench_with_live_frames_refused_stops_with_one_line(bench: str) -> None:
    """Forced live frames where they are refused: one line and exit 1, before any lab,
    never a spin or a traceback (drops_flood.py used to retry forever)."""
    result = refused(sys.executable, str(ROOT / "bench" / bench), "--flood", "live")
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "XDP live frames" in lines[0] and "EPERM" in lines[0], result.stderr
    assert result.stdout == ""


def test_drops_flood_sender_refused_mid_run_is_one_line() -> None:
    """The sender itself refused (the parent's probe said yes): one line, exit 1."""
    result = refused(sys.executable, str(ROOT / "bench" / "drops_flood.py"), "--inject", floods.LIVE,
                     "020000000001", "0", "1")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"{floods.LIVE}: not supported by this kernel: {features.XDP_LIVE_FRAMES} "
        "(BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES: EPERM, Operation not permitted)"]


def test_socket_generator_every_frame_it_counts_arrived(pair: Lab) -> None:
    """What the AF_PACKET generator counts as sent is what nftables on the peer saw: the
    veth refuses a frame it cannot queue (ENOBUFS), and the generator sends it again."""
    nft_counter(pair, 9997)
    frame = floods.udp_frame(bytes(6), c0_mac(pair), pair.CLIENT_IP, pair.GATEWAY_IP, 1234, 9997)

    def send() -> floods.FloodResult:
        with floods.PacketSocket("eth0") as f:
            return f.run([(frame, 1000)], 100_000, batch=10_000)

    result = netns.run_in(f"/run/netns/{pair.client}", send)
    assert result.sent == 100_000
    assert settled(lambda: nft_count(pair)) == 100_000


def test_probe_agrees_with_a_real_send(pair: Lab) -> None:
    """Where the probe says yes, live frames really go out (the peer's nft counter sees
    each one); where it says no, the generator refuses with the feature's name."""
    from netbpf.bpf.attach import xdp
    from netbpf.bpf.program import Program

    nft_counter(pair, 9996)
    gateway, client = f"/run/netns/{pair.gateway}", f"/run/netns/{pair.client}"
    frame = floods.udp_frame(bytes(6), c0_mac(pair), pair.CLIENT_IP, pair.GATEWAY_IP, 1234, 9996)

    def send() -> int:
        with floods.LiveFrames("eth0") as f:
            return f.send(frame, 100)

    if not features.has_xdp_live_frames():
        with pytest.raises(NotSupported, match="XDP live frames"):
            netns.run_in(client, send)
        return
    # A veth sends XDP frames only to a peer with an XDP program (or GRO) to run them.
    prog = Program("netbpf_t_pass", fd=features.load_trivial(6, 37, verdict=2, name="netbpf_t_pass"),
                   owns_fd=True)
    attachment = netns.run_in(gateway, lambda: xdp.attach_xdp_netlink(prog, xdp.XdpOptions("c0", "drv"), None))
    try:
        assert netns.run_in(client, send) == 100
        assert settled(lambda: nft_count(pair)) == 100
    finally:
        netns.run_in(gateway, attachment.close)
        prog.close()
