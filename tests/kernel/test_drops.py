"""netbpf drops sees exactly the drops the test causes, with the right reason and flow.

Each drop is made by something nobody here wrote: the kernel's own UDP/TCP
stacks (a closed port), curl, an nftables rule, a tc or XDP program returning
its drop verdict, a socket whose receive buffer is full. Counts are checked
against the kernel's own counters where it keeps one (nstat, nft counters,
the clsact qdisc's drop count, the socket's drop count).
"""
from __future__ import annotations

import signal
import sys
import time

import pytest

from netbpf import netns
from netbpf.bpf import features
from netbpf.bpf.attach import tc, xdp
from netbpf.bpf.program import Program
from netbpf.lab import Lab
from tests.conftest import skip_unless_nobody_can_run_netbpf

from .conftest import free_port, settled
from .drops_helpers import Tool, inode, json_lines, nstat, python, send_udp, wait_gone

GW, CLIENT = Lab.GATEWAY_IP, Lab.CLIENT_IP
GW6, CLIENT6 = Lab.GATEWAY_IP6, Lab.CLIENT_IP6


def ip_drops(events: list[dict], proto: str = "") -> list[dict]:
    """Drops of TCP/UDP packets: the IPv6 multicast listener reports a fresh
    interface sends (ip6_mc_input, NOT_SPECIFIED) are real drops, but not ours."""
    return [e for e in events if e["protocol"] in ((proto,) if proto else ("tcp", "udp"))]


@pytest.fixture(autouse=True)
def nothing_left_behind():
    yield
    assert wait_gone("netbpf_drop") == [], "a netbpf_drop program outlived its command"


@pytest.mark.parametrize("hook", ["tp_btf", "tracepoint"])
@pytest.mark.parametrize("server,client,src", [(GW, CLIENT, CLIENT), (GW6, CLIENT6, CLIENT6)],
                         ids=["ipv4", "ipv6"])
def test_syn_to_a_closed_port(pair: Lab, hook: str, server: str, client: str, src: str) -> None:
    tool = Tool("drops", "--json", "--attach", hook, netns=pair.gateway)
    url = f"http://[{server}]:81/" if ":" in server else f"http://{server}:81/"
    result = pair.run(pair.client, "curl", "-sS", "--max-time", "2", url, check=False)
    assert result.returncode == 7  # couldn't connect: the RST came back, one SYN, no retry
    out, err = tool.stop()
    drops = ip_drops(json_lines(out))
    assert len(drops) == 1, out
    d = drops[0]
    assert (d["reason"], d["protocol"], d["tcp_flags"]) == ("NO_SOCKET", "tcp", "S")
    assert (d["src"], d["dst"], d["dport"]) == (src, server, 81)
    assert d["location"].startswith("tcp_v4_rcv+" if ":" not in server else "tcp_v6_rcv+")
    assert (d["netns"], d["netns_inode"], d["interface"]) == (pair.gateway, inode(pair.gateway), "c0")
    assert "0 lost" in err


def test_udp_to_a_closed_port_counted_like_the_kernel(pair: Lab) -> None:
    before = nstat(pair, pair.gateway, "UdpNoPorts")["UdpNoPorts"]
    tool = Tool("drops", "--json", netns=pair.gateway)
    send_udp(pair, pair.client, GW, 9, count=50, sport=40009)
    out, err = tool.stop()
    kernel = nstat(pair, pair.gateway, "UdpNoPorts")["UdpNoPorts"] - before
    drops = ip_drops(json_lines(out))
    assert kernel == 50
    assert len(drops) == 50, err
    assert {(d["reason"], d["src"], d["sport"], d["dst"], d["dport"], d["len"]) for d in drops} == {
        ("NO_SOCKET", CLIENT, 40009, GW, 9, 29)}
    assert all(d["location"].startswith("__udp4_lib_rcv+") for d in drops)
    assert "50 drops shown, 0 lost" in err or f"{len(json_lines(out))} drops shown, 0 lost" in err


def test_stopped_in_a_flood_every_drop_is_shown_or_counted(pair: Lab) -> None:
    """SIGTERM while the ring is full of events: what it holds is printed before exit."""
    before = nstat(pair, pair.gateway, "UdpNoPorts")["UdpNoPorts"]
    # NO_SOCKET only: a flood may also overflow the gateway's backlog (CPU_BACKLOG drops
    # of the same flow), which UdpNoPorts does not count.
    tool = Tool("drops", "--in-netns", pair.gateway, "--port", "9", "--reason", "NO_SOCKET")
    python(pair, pair.client, "import socket\n"
                              "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                              f"for _ in range(20000): s.sendto(b'x', ('{GW}', 9))\n")
    # Every datagram has met the closed port (the kernel's counter stands still) while
    # the tool's ring is still full: its text output is far slower than the flood.
    kernel = settled(lambda: nstat(pair, pair.gateway, "UdpNoPorts")["UdpNoPorts"] - before)
    out, err = tool.stop(settle=0)
    last = [ln for ln in err.splitlines() if "shown" in ln][-1]
    shown, lost = int(last.split()[0]), int(last.split(",")[1].split()[0])
    assert shown + lost == kernel > 1000
    assert len(out.splitlines()) == 1 + shown


def summary(out: str) -> list[dict]:
    return json_lines(out)


def test_nftables_drop_rule_n_of_n(pair: Lab) -> None:
    pair.run(pair.gateway, "nft", "add table inet netbpf_t; "
             "add chain inet netbpf_t in { type filter hook input priority 0; }; "
             "add rule inet netbpf_t in udp dport 5555 counter drop")
    try:
        tool = Tool("drops", "--summary", "--json", "--by-flow", netns=pair.gateway)
        send_udp(pair, pair.client, GW, 5555, count=40, size=100, sport=40555)
        out, _err = tool.stop()
        listing = pair.run(pair.gateway, "nft", "list table inet netbpf_t").stdout
    finally:
        pair.run(pair.gateway, "nft", "delete table inet netbpf_t", check=False)
    assert "counter packets 40 bytes 5120" in listing  # nft's own count (IP length 128)
    rows = [r for r in summary(out) if r["reason"] == "NETFILTER_DROP"]
    assert len(rows) == 1, out
    r = rows[0]
    assert (r["count"], r["bytes"]) == (40, 40 * 128)
    assert (r["protocol"], r["src"], r["sport"], r["dst"], r["dport"]) == ("udp", CLIENT, 40555, GW, 5555)
    assert r["location"].startswith("nft_do_chain+") and r["interface"] == "c0"


def _shot_program() -> Program:
    fd = features.load_trivial(3, verdict=2, name="netbpf_t_shot")  # TC_ACT_SHOT
    return Program("netbpf_t_shot", fd=fd, owns_fd=True)


def _clsact_dropped(lab: Lab, netns_name: str, dev: str) -> int:
    out = lab.run(netns_name, "tc", "-s", "qdisc", "show", "dev", dev).stdout
    block = out[out.index("qdisc clsact"):]
    return int(block.split("dropped ", 1)[1].split(",", 1)[0])


@pytest.mark.parametrize("direction", ["ingress", "egress"])
def test_tc_program_drops_n_of_n(pair: Lab, direction: str) -> None:
    prog = _shot_program()
    tool = Tool("drops", "--summary", "--json", "--by-flow", "--in-netns", pair.gateway)
    # The test's own qdisc, so that its drop count outlives the filter: read after the
    # detach, it holds every packet the program shot, including any IPv6 chatter.
    pair.run(pair.gateway, "tc", "qdisc", "add", "dev", "c0", "clsact")
    att = netns.run_in(f"/run/netns/{pair.gateway}",
                       lambda: tc.attach_tc(prog, tc.TcOptions("c0", direction, mode="cls_bpf")))
    try:
        if direction == "ingress":
            send_udp(pair, pair.client, GW, 9, count=30, sport=40030)
        else:
            send_udp(pair, pair.gateway, CLIENT, 9, count=30, sport=40030)
    finally:
        att.close()
        prog.close()
    qdisc_dropped = _clsact_dropped(pair, pair.gateway, "c0")
    pair.run(pair.gateway, "tc", "qdisc", "del", "dev", "c0", "clsact")
    out, _err = tool.stop()
    reason = "TC_INGRESS" if direction == "ingress" else "TC_EGRESS"
    rows = [r for r in summary(out) if r["reason"] == reason]
    ours = [r for r in rows if r.get("sport") == 40030]
    src, dst = (CLIENT, GW) if direction == "ingress" else (GW, CLIENT)
    assert len(ours) == 1 and (ours[0]["src"], ours[0]["dst"], ours[0]["dport"]) == (src, dst, 9)
    assert ours[0]["count"] == 30
    # The qdisc counted every packet the program shot, ours and any other: all of them are here.
    assert sum(r["count"] for r in rows) == qdisc_dropped


@pytest.mark.parametrize("mode,function", [("skb", "do_xdp_generic"), ("drv", "veth_xdp_rcv_skb")])
def test_xdp_drops_on_veth_are_seen_as_not_specified(pair: Lab, mode: str, function: str) -> None:
    """On this kernel XDP_DROP of an skb (generic mode, or veth's native XDP, which runs on
    the skbs its peer sends) is freed with NOT_SPECIFIED; native XDP on a NIC never has an skb."""
    fd = features.load_trivial(6, verdict=1, name="netbpf_t_xdrop")  # XDP_DROP
    prog = Program("netbpf_t_xdrop", fd=fd, owns_fd=True)
    tool = Tool("drops", "--json", "--in-netns", pair.gateway, "--port", "9")
    att = netns.run_in(f"/run/netns/{pair.gateway}",
                       lambda: xdp.attach_xdp(prog, xdp.XdpOptions("c0", mode=mode)))
    try:
        assert netns.run_in(f"/run/netns/{pair.gateway}", lambda: xdp.query("c0")).mode == mode
        send_udp(pair, pair.client, GW, 9, count=20, sport=40020)
        tool.wait_lines(20)  # all met the program: none is left to reach the socket-less port
    finally:
        att.close()
        prog.close()
    out, _err = tool.stop()
    drops = json_lines(out)
    assert len(drops) == 20, out
    assert {(d["reason"], d["location"].split("+")[0], d["sport"]) for d in drops} == {
        ("NOT_SPECIFIED", function, 40020)}


def test_full_receive_buffer_matches_the_socket_drop_count(pair: Lab) -> None:
    """A UDP socket with a small SO_RCVBUF that never reads: the kernel counts each
    datagram it refuses in the socket's drop counter (/proc/net/udp)."""
    server = pair.popen(pair.gateway, sys.executable, "-c",
                        "import socket, time\n"
                        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                        "s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)\n"
                        "s.bind(('0.0.0.0', 7000))\n"
                        "print('ready', flush=True)\n"
                        "time.sleep(60)\n", stdout=__import__("subprocess").PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        tool = Tool("drops", "--summary", "--json", "--in-netns", pair.gateway, "--port", "7000")
        send_udp(pair, pair.client, GW, 7000, count=100, size=1000)
        time.sleep(0.2)
        proc_udp = pair.run(pair.gateway, "cat", "/proc/net/udp").stdout
        out, _err = tool.stop()
    finally:
        server.kill()
        server.wait()
    line = next(ln for ln in proc_udp.splitlines() if ":1B58 " in ln)  # port 7000
    socket_drops = int(line.split()[-1])
    rows = summary(out)
    assert 0 < socket_drops < 100
    assert [(r["reason"], r["count"]) for r in rows] == [("SOCKET_RCVBUFF", socket_drops)]


def test_filters_run_in_the_kernel(pair: Lab) -> None:
    """--reason, -p, --host and --port keep only what they name; -i binds to the namespace."""
    tool = Tool("drops", "--json", "-i", "c0", "--reason", "NO_SOCKET", "-p", "udp",
                "--host", "10.0.1.0/24", "--port", "9", netns=pair.gateway)
    send_udp(pair, pair.client, GW, 9, count=5, sport=40100)  # kept
    send_udp(pair, pair.client, GW, 10, count=3)  # another port
    send_udp(pair, pair.client, GW6, 9, count=3)  # another address family
    pair.run(pair.client, "curl", "-s", "--max-time", "2", f"http://{GW}:9/", check=False)  # TCP
    out, _err = tool.stop()
    drops = json_lines(out)
    assert [(d["sport"], d["dport"], d["protocol"]) for d in drops] == [(40100, 9, "udp")] * 5


def test_stack_shows_the_kernel_path(pair: Lab) -> None:
    tool = Tool("drops", "--json", "--stack", "--in-netns", pair.gateway, "--port", "9")
    send_udp(pair, pair.client, GW, 9, count=2)
    out, _err = tool.stop()
    drops = json_lines(out)
    assert len(drops) == 2
    frames = [f.split("+")[0] for f in drops[0]["stack"]]
    assert "__udp4_lib_rcv" in frames and "ip_local_deliver_finish" in frames
    # The tracer's own program, loaded after kallsyms was first read and seen after the
    # drop to -Z's user: named, not a raw address.
    assert any(f.startswith("bpf_prog_") and "netbpf_drop" in f for f in frames), frames


def test_summary_with_stack_and_text_output(pair: Lab) -> None:
    tool = Tool("drops", "--summary", "--stack", "--in-netns", pair.gateway, "--port", "9")
    send_udp(pair, pair.client, GW, 9, count=7)
    out, _err = tool.stop(signal.SIGINT)
    last = out.rsplit("---", 1)[-1]
    assert "7 drops, 1 rows" in last
    assert "NO_SOCKET" in last and "__udp4_lib_rcv+" in last and "ip_local_deliver_finish+" in last


def test_count_and_duration_end_the_command(pair: Lab) -> None:
    tool = Tool("drops", "-c", "3", "--in-netns", pair.gateway)
    send_udp(pair, pair.client, GW, 9, count=10)
    out, err = tool.wait()
    assert len(out.strip().splitlines()) == 1 + 3  # header + 3 drops
    assert "3 drops shown, 0 lost" in err
    tool = Tool("drops", "--duration", "0.5", "--in-netns", pair.gateway, "--port", "9")
    out, err = tool.wait(timeout=10)
    assert "0 drops shown, 0 lost" in err


def test_metrics_are_read_by_prometheus_tools(pair: Lab, tmp_path) -> None:
    import subprocess
    import urllib.request

    port = free_port()
    tool = Tool("drops", "--in-netns", pair.gateway, "--port", "9", "--metrics", f"127.0.0.1:{port}")
    send_udp(pair, pair.client, GW, 9, count=12)
    time.sleep(0.2)
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    tool.stop()
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    line = next(ln for ln in text.splitlines() if ln.startswith("netbpf_drops_total{"))
    assert 'reason="NO_SOCKET"' in line and f'netns="{pair.gateway}"' in line
    assert line.endswith(" 12.0")


@pytest.mark.parametrize("args,code,message", [
    (["--reason", "NO_SUCH_REASON"], 2, "unknown drop reason 'NO_SUCH_REASON'"),
    (["--reason", "NO_SOCKE"], 2, "did you mean NO_SOCKET"),
    (["-i", "nosuch0"], 1, "no such interface: nosuch0"),
    (["--in-netns", "nosuch-ns"], 1, "no such network namespace: nosuch-ns"),
    (["--host", "10.0.0.300"], 2, "not an IP address"),
    (["-p", "bogus"], 2, "unknown protocol"),
    (["--by-flow"], 2, "--by-flow goes with --summary"),
    (["--reason", "CONSUMED"], 2, "CONSUMED is not a drop"),
])
def test_bad_input_is_one_clear_line(args: list[str], code: int, message: str) -> None:
    from .conftest import netbpf

    result = netbpf("drops", *args, "--duration", "1")
    assert result.returncode == code
    # One line says what is wrong (argparse's own errors come after its usage lines).
    assert message in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr


def test_not_root_is_one_clear_line() -> None:
    skip_unless_nobody_can_run_netbpf()
    import subprocess

    result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                             sys.executable, "-m", "netbpf", "drops"], capture_output=True, text=True,
                            env={"PYTHONPATH": str(__import__("pathlib").Path(__file__).parents[2] / "src")})
    assert result.returncode == 1
    assert result.stderr.strip() == "netbpf: drops: permission denied (run as root)"


def test_list_reasons_comes_from_the_running_kernel() -> None:
    from netbpf.bpf.btf import vmlinux

    from .conftest import netbpf

    out = netbpf("drops", "--list-reasons").stdout
    listed = {int(line.split()[0]): line.split()[1] for line in out.splitlines()}
    enum = vmlinux().enum_values("skb_drop_reason")
    assert listed[enum["SKB_DROP_REASON_NO_SOCKET"]] == "NO_SOCKET"
    assert len(listed) == len(set(enum.values()))


def test_reason_names_agree_with_the_tracepoint_format() -> None:
    """BTF and the tracefs format are two independent sources in the kernel: they agree."""
    from netbpf.tools.drops import reasons
    from netbpf.tools.drops.kernel import tracepoint_format

    btf = reasons.load()
    tracefs = reasons.from_format(tracepoint_format())
    assert btf.source == "btf" and tracefs.source == "tracefs"
    for value, name in tracefs.by_value.items():
        if name != "MAX":
            assert btf.by_value[value] == name
    assert set(tracefs.not_drops) == set(btf.not_drops)


def test_python_in_the_namespace_sees_the_same_namespace(pair: Lab) -> None:
    # A sanity check of the fixture the tests rely on: the inode python reports is the lab's.
    got = python(pair, pair.gateway, "import os; print(os.stat('/proc/self/ns/net').st_ino)")
    assert int(got) == inode(pair.gateway)


# As a client closing first (curl): its socket, closed and orphaned, still receives the
# server's FIN, which nobody will read; destroying the socket purges it (QUEUE_PURGE).
CLOSE_WITH_UNREAD_FIN = """
import socket, threading
srv = socket.create_server(('{gw}', {port}))
def serve():
    for _ in range({n}):
        c, _ = srv.accept(); c.sendall(b'hi'); c.recv(1); c.close()
t = threading.Thread(target=serve); t.start()
for _ in range({n}):
    s = socket.create_connection(('{gw}', {port}))
    s.recv(2)
    s.close()
t.join()
"""


@pytest.mark.parametrize("show_all", [False, True], ids=["default", "all"])
def test_closed_connections_are_not_shown_as_loss(pair: Lab, show_all: bool) -> None:
    """Closing a socket frees its receive queue as QUEUE_PURGE; by default that is hidden,
    counted in the summary line by reason, and a real drop in the same run is shown."""
    n, port = 5, free_port()
    tool = Tool("drops", "--json", *(["--all"] if show_all else []), netns=pair.gateway)
    # client and server both in the gateway namespace: one socket pair per connection
    python(pair, pair.gateway, CLOSE_WITH_UNREAD_FIN.format(gw=GW, port=port, n=n))
    send_udp(pair, pair.client, GW, 9, count=1, sport=40019)
    out, err = tool.stop()
    events = json_lines(out)
    # Each connection's unread FIN is freed once: purged with the receive queue at close,
    # or, when it arrives after the close (the kernel's timing), dropped by tcp_v4_rcv.
    fins = [e for e in events if port in (e["sport"], e["dport"]) and "F" in (e["tcp_flags"] or "")]
    purged = [e for e in fins if e["reason"] == "QUEUE_PURGE"]
    late = [e for e in fins if e["reason"] != "QUEUE_PURGE"]
    closed_port = [e for e in events if e["reason"] == "NO_SOCKET" and e["sport"] == 40019]
    assert len(closed_port) == 1, out
    assert all(e["location"].startswith("tcp_v") for e in late), out
    last = [ln for ln in err.splitlines() if "shown" in ln][-1]
    if show_all:
        assert len(purged) + len(late) == n and purged, out
        assert "not packet loss hidden" not in last
    else:
        assert not [e for e in events if e["reason"] == "QUEUE_PURGE"], out
        hidden = int(last.split("; ")[1].split()[0])
        assert hidden + len(late) >= n and hidden, last  # other sockets of the namespace may close meanwhile
        assert f"(QUEUE_PURGE {hidden}; --all shows them)" in last, last
