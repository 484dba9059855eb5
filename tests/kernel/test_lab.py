"""`netbpf lab`: up starts the servers a newcomer talks to, show and down find the lab as built.

Judged by ip(8), curl and iperf3, not by the lab's own code."""
from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from netbpf.lab import Lab

from .conftest import netbpf, unique_prefix


def namespaces(prefix: str) -> set[str]:
    out = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {ns["name"] for ns in json.loads(out or "[]") if ns["name"].startswith(f"{prefix}-")}


@pytest.fixture
def prefix() -> Iterator[str]:
    p = unique_prefix()
    try:
        yield p
    finally:
        netbpf("lab", "down", "--prefix", p)
        assert not namespaces(p)


def test_show_and_down_find_the_lab_as_built(prefix: str) -> None:
    up = netbpf("lab", "up", "--vxlan", "--backends", "2", "--no-servers", "--prefix", prefix, check=True)
    show = netbpf("lab", "show", "--prefix", prefix, check=True)
    assert "not up" not in show.stdout
    assert show.stdout.splitlines()[:3] == up.stdout.splitlines()[:3]
    assert "backend 2:" in show.stdout and "backend 3:" not in show.stdout
    assert show.stdout.count("via VXLAN") == 2
    # a lab with more backends, then fewer: down must remove what is there, not what was asked
    netbpf("lab", "up", "--backends", "4", "--no-servers", "--prefix", prefix, check=True)
    assert namespaces(prefix) == {f"{prefix}-{n}" for n in ("client", "gw", "be1", "be2", "be3", "be4")}
    netbpf("lab", "up", "--backends", "1", "--no-servers", "--prefix", prefix, check=True)
    assert namespaces(prefix) == {f"{prefix}-{n}" for n in ("client", "gw", "be1")}
    assert "not up" in netbpf("lab", "show", "--prefix", f"{prefix}x").stdout
    netbpf("lab", "down", "--prefix", prefix, check=True)
    assert not namespaces(prefix)


def test_up_starts_the_servers_the_readme_talks_to(prefix: str) -> None:
    out = netbpf("lab", "up", "--backends", "2", "--weights", "3,1", "--prefix", prefix, check=True).stdout
    assert "nginx on 10.0.1.1:80 balancing over them with weights 3:1" in out
    lab = Lab.find(prefix)
    assert lab is not None
    body = lab.run(lab.client, "curl", "-sS", "--max-time", "5", "http://10.0.1.1/x?size=7").stdout
    assert body == "0123456"  # nginx on the gateway, to a backend's server
    direct = lab.run(lab.client, "curl", "-sS", "--max-time", "5", "http://10.0.12.2:8080/x?size=3")
    assert direct.stdout == "012"
    iperf = json.loads(lab.run(lab.client, "iperf3", "-c", "10.0.11.2", "-n", "1M", "-J").stdout)
    # (iperf3 may end its receiver count before the last bytes: the sender's is whole)
    assert iperf["end"]["sum_sent"]["bytes"] >= 1 << 20 and iperf["end"]["sum_received"]["bytes"] > 0
    # up again: nothing started twice (one listener per port), the weights reloaded
    again = netbpf("lab", "up", "--backends", "2", "--weights", "1,1", "--prefix", prefix, check=True).stdout
    assert "with weights 1:1" in again
    for ns, port in ((lab.gateway, 80), (lab.backends[0].netns, 8080), (lab.backends[0].netns, 5201)):
        listeners = lab.run(ns, "ss", "-Hltn", f"sport = :{port}").stdout.splitlines()
        assert 1 <= len(listeners) <= 2, listeners  # IPv4 and IPv6 sockets of one server
    assert "HTTP on port 8080" not in netbpf("lab", "up", "--backends", "1", "--no-servers",
                                             "--prefix", f"{prefix}n").stdout
    netbpf("lab", "down", "--prefix", f"{prefix}n", check=True)
