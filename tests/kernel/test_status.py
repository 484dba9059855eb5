"""status finds what a killed netbpf process left, in any namespace; cleanup removes it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from netbpf.bpf.fs import PIN_ROOT

from .conftest import netbpf, ping, tc_filters, xdp_prog_on

# Loads a program that is not netbpf's ("orig_drop", drops everything), attaches it over netlink,
# then puts netbpf's front program in its place the way `netbpf dump` does, adds
# a cls_bpf filter and a pin, says "ready" and waits to be killed.
LEAVER = r"""
import ctypes, sys, time
from netbpf import netns
netns.enter(sys.argv[2])
from netbpf.bpf import selftest, features
from netbpf.bpf.attach import xdp, tc
from netbpf.bpf.program import Program
from netbpf.bpf.fs import pin_dir
orig_fd = features.load_trivial(6, 37, verdict=1, name="orig_drop")   # BPF_XDP, XDP_DROP
orig = Program("orig_drop", fd=orig_fd)
xdp.attach_xdp_netlink(orig, xdp.XdpOptions("c0"), None)
obj = selftest.open_object(); obj.load()
obj.map("xdp_original").update(0, orig_fd)
xdp.attach_xdp_netlink(obj.program("netbpf_st_tail"), xdp.XdpOptions("c0"), orig)
tc.attach_tc(obj.program("netbpf_st_tc"), tc.TcOptions("c0", "egress", "cls_bpf"))
obj.map("counters").pin(pin_dir(sys.argv[1]) / "counters")
# Pinned, the PROG_ARRAY keeps the original after the process dies (as netbpf dump does).
obj.map("xdp_original").pin(pin_dir(sys.argv[1] + "-front") / "xdp_original")
print(Program.from_id(obj.program("netbpf_st_tail").id).id, orig.id, flush=True)
time.sleep(600)
"""


def test_status_and_cleanup_after_sigkill(pair) -> None:
    pin_name = f"test-status-{os.getpid()}"
    proc = subprocess.Popen([sys.executable, "-c", LEAVER, pin_name, pair.gateway],
                            stdout=subprocess.PIPE, text=True)
    try:
        front_id, orig_id = map(int, proc.stdout.readline().split())  # type: ignore[union-attr]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # Killed: the netlink attachments stay and the original still acts through the tail call.
    assert xdp_prog_on(pair, pair.gateway, "c0") == front_id
    assert ping(pair, pair.client, pair.GATEWAY_IP, count=2) == 0
    assert (PIN_ROOT / f"{pin_name}-front" / "xdp_original").exists()

    status = netbpf("status", "--json", check=True)
    entries = [json.loads(line) for line in status.stdout.splitlines()]
    mine = [e for e in entries if e.get("netns") == pair.gateway]
    kinds = {e["kind"]: e for e in mine}
    assert kinds["xdp-netlink"]["target"] == "c0"
    assert kinds["xdp-netlink"]["restores"] == orig_id
    assert kinds["cls_bpf"]["target"] == "c0 egress"
    assert any(e["kind"] == "pin" and pin_name in e["pinned"] for e in entries)

    text = netbpf("status", check=True).stdout
    assert "netbpf_st_tail" in text and pair.gateway in text

    # Only this namespace first: the pin elsewhere stays.
    result = netbpf("cleanup", "--this-netns", netns=pair.gateway, check=True)
    assert f"restored XDP program id {orig_id} on c0" in result.stdout
    assert xdp_prog_on(pair, pair.gateway, "c0") == orig_id
    assert tc_filters(pair, pair.gateway, "c0") == []
    assert (PIN_ROOT / pin_name / "counters").exists()
    assert not (PIN_ROOT / f"{pin_name}-front" / "xdp_original").exists()
    assert ping(pair, pair.client, pair.GATEWAY_IP, count=2) == 0  # the original drops, as before

    result = netbpf("cleanup", check=True)
    assert not (PIN_ROOT / pin_name).exists()
    assert not PIN_ROOT.exists()  # with the last pin, netbpf's directory in bpffs goes too
    again = netbpf("cleanup", check=True)  # idempotent
    assert again.returncode == 0
    left = [json.loads(line) for line in netbpf("status", "--json", check=True).stdout.splitlines()]
    assert not [e for e in left if e.get("netns") == pair.gateway or pin_name in e.get("pinned", "")]
