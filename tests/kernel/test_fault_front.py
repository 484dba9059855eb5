"""`fault stop` while a netbpf dump or xdp chain stands in front of a pinned XDP fault.

The program in front sits inside the fault's own XDP link (bpf_link_update) and tail-calls
the fault. Detaching that link used to take the dump's program off the hook with it: the
dump went on running, captured nothing more and said "0 lost". Now the stop refuses in one
line and touches nothing; once the dump has exited (putting the fault back), it works."""
from __future__ import annotations

import json
from pathlib import Path

from netbpf.lab import Lab

from .conftest import netbpf, ping, xdp_prog_on
from .test_dump import start, stop, summary


def prog_name(lab: Lab, ns: str, dev: str) -> str:
    prog_id = xdp_prog_on(lab, ns, dev)
    if not prog_id:
        return ""
    return str(json.loads(lab.run(ns, "bpftool", "-j", "prog", "show", "id", str(prog_id)).stdout)["name"])


def test_stop_refuses_while_a_dump_stands_in_front(pair: Lab) -> None:
    netbpf("fault", "drop", "--pin", "--hook", "xdp", "-i", "c0", "icmp", netns=pair.gateway, check=True)
    try:
        dump = start(pair, "-i", "c0", "icmp")
        try:
            assert prog_name(pair, pair.gateway, "c0") == "netbpf_dump_xdp"
            refused = netbpf("fault", "stop", "-i", "c0", netns=pair.gateway)
            assert refused.returncode == 1 and refused.stdout == ""
            assert refused.stderr.count("\n") == 1 and "standing in front of it" in refused.stderr, refused.stderr
            # Nothing was touched: the dump still captures what the fault then drops.
            assert prog_name(pair, pair.gateway, "c0") == "netbpf_dump_xdp"
            assert ping(pair, pair.client, pair.GATEWAY_IP, count=3) == 0
        finally:
            _, err = stop(dump)
        assert summary(err)[0] == 3, err
        assert prog_name(pair, pair.gateway, "c0") == "netbpf_faultxdp"
    finally:
        stopped = netbpf("fault", "stop", "-i", "c0", netns=pair.gateway)
    assert stopped.returncode == 0 and stopped.stdout.startswith("stopped the fault on c0 ingress"), stopped
    assert xdp_prog_on(pair, pair.gateway, "c0") == 0
    assert ping(pair, pair.client, pair.GATEWAY_IP, count=2) == 2
    assert not Path(f"/sys/fs/bpf/netbpf/fault/{pair.gateway}").exists()
