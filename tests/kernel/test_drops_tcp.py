"""netbpf tcp sees exactly the retransmits, resets and state changes the test causes.

Retransmits are made by a tc program that drops everything a veth receives
for a while (the kernel's own RTO does the rest) and compared with the kernel's
RetransSegs counter (nstat) and the socket's own total (ss -ti). Resets come
from curl to a closed port and from an abortive close (SO_LINGER 0); the
kernel's TcpOutRsts/TcpEstabResets/TcpAttemptFails agree. Lifetimes are
compared with what curl says it sent and received from nginx.
"""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netbpf import netns
from netbpf.bpf import features
from netbpf.bpf.attach import tc
from netbpf.bpf.program import Program
from netbpf.lab import Lab

from .conftest import free_port
from .drops_helpers import Tool, json_lines, nstat, wait_gone

GW, CLIENT = Lab.GATEWAY_IP, Lab.CLIENT_IP


@pytest.fixture(autouse=True)
def nothing_left_behind():
    yield
    assert wait_gone("netbpf_tcp") == [], "a netbpf_tcp program outlived its command"


SINK = """
import socket, sys
srv = socket.create_server(('0.0.0.0', 7100))
print('ready', flush=True)
conn, _ = srv.accept()
got = 0
while got < 20000:
    got += len(conn.recv(65536))
conn.sendall(b'k')
conn.recv(1)  # until the client closes
"""

SENDER = """
import socket, sys
s = socket.create_connection(('%s', 7100))
s.sendall(b'a' * 10000)
print('connected', flush=True)
sys.stdin.readline()          # the test drops our packets now
s.sendall(b'b' * 10000)
assert s.recv(1) == b'k'      # everything arrived, after retransmits
print('acked', flush=True)
sys.stdin.readline()          # the test reads ss -ti
s.close()
"""


def _drop_all_ingress(ns: str, dev: str):  # type: ignore[no-untyped-def]
    """A tc program shooting every packet the veth receives: the sender's segments are
    lost on the wire, as far as its TCP can tell. (Dropped at the sender's own egress,
    they would not be retransmits: the qdisc reports the drop and TCP sends them anew.)"""
    fd = features.load_trivial(3, verdict=2, name="netbpf_t_shot")
    prog = Program("netbpf_t_shot", fd=fd, owns_fd=True)
    att = netns.run_in(f"/run/netns/{ns}", lambda: tc.attach_tc(prog, tc.TcOptions(dev, "ingress", "cls_bpf")))
    return prog, att


def test_retransmits_counted_exactly(pair: Lab) -> None:
    sink = pair.popen(pair.gateway, sys.executable, "-c", SINK, stdout=subprocess.PIPE, text=True)
    assert sink.stdout.readline().strip() == "ready"
    before = nstat(pair, pair.client, "TcpRetransSegs")["TcpRetransSegs"]
    stream = Tool("tcp", "--json", "--events", "retrans", netns=pair.client)
    summary = Tool("tcp", "--summary", "--json", "--by", "remote", "--in-netns", pair.client)
    client = pair.popen(pair.client, sys.executable, "-c", SENDER % GW, stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE, text=True)
    try:
        assert client.stdout.readline().strip() == "connected"
        prog, att = _drop_all_ingress(pair.gateway, "c0")
        client.stdin.write("go\n")
        client.stdin.flush()
        time.sleep(1.5)  # RTOs at about 0.2, 0.6 and 1.4 s: all shot down
        att.close()
        prog.close()
        assert client.stdout.readline().strip() == "acked"
        ss = pair.run(pair.client, "ss", "-tin", "dst", f"{GW}:7100").stdout
        client.stdin.write("close\n")
        client.stdin.flush()
        client.wait(10)
    finally:
        client.kill()
        sink.kill()
    events, _ = stream.stop()
    rows, _ = summary.stop()
    kernel = nstat(pair, pair.client, "TcpRetransSegs")["TcpRetransSegs"] - before
    socket_total = int(re.search(r"retrans:\d+/(\d+)", ss).group(1))
    retrans = json_lines(events)
    assert kernel >= 3
    assert sum(e["segs"] for e in retrans if e["err"] == 0) == kernel == socket_total
    assert {(e["local"], e["remote"], e["rport"], e["state"]) for e in retrans} == {
        (CLIENT, GW, 7100, "ESTABLISHED")}
    assert [(r["remote"], r["retrans_segs"]) for r in json_lines(rows)] == [(f"{GW}:7100", kernel)]


def test_resets_sent_and_received(pair: Lab) -> None:
    before_gw = nstat(pair, pair.gateway, "TcpOutRsts")
    before_cl = nstat(pair, pair.client, "TcpAttemptFails", "TcpEstabResets")
    gw_tool = Tool("tcp", "--json", "--events", "reset", netns=pair.gateway)
    cl_tool = Tool("tcp", "--json", "--events", "reset", netns=pair.client)
    # 1. A SYN to a closed port: the gateway answers RST without a socket.
    assert pair.run(pair.client, "curl", "-s", "--max-time", "2", f"http://{GW}:81/",
                    check=False).returncode == 7
    # 2. An abortive close (SO_LINGER 0) of an established connection by the gateway.
    server = pair.popen(pair.gateway, sys.executable, "-c",
                        "import socket, struct\n"
                        "srv = socket.create_server(('0.0.0.0', 7200))\n"
                        "print('ready', flush=True)\n"
                        "c, _ = srv.accept()\n"
                        "c.recv(10)\n"
                        "c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))\n"
                        "c.close()\n", stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline().strip() == "ready"
    pair.run(pair.client, sys.executable, "-c",
             "import socket\n"
             f"s = socket.create_connection(('{GW}', 7200))\n"
             "s.sendall(b'hello')\n"
             "try:\n    s.recv(10)\nexcept ConnectionResetError:\n    print('reset')\n")
    server.wait(10)
    gw_events, _ = gw_tool.stop()
    cl_events, _ = cl_tool.stop()
    sent = json_lines(gw_events)
    received = json_lines(cl_events)
    assert nstat(pair, pair.gateway, "TcpOutRsts")["TcpOutRsts"] - before_gw["TcpOutRsts"] == len(sent) == 2
    after_cl = nstat(pair, pair.client, "TcpAttemptFails", "TcpEstabResets")
    assert after_cl["TcpAttemptFails"] - before_cl["TcpAttemptFails"] == 1
    assert after_cl["TcpEstabResets"] - before_cl["TcpEstabResets"] == 1
    closed_port, linger = sent
    assert (closed_port["event"], closed_port["local"], closed_port["lport"], closed_port["remote"],
            closed_port["reason"], closed_port["has_socket"]) == ("rst_sent", GW, 81, CLIENT, "NO_SOCKET", False)
    assert (linger["lport"], linger["remote"], linger["has_socket"], linger["state"]) == (
        7200, CLIENT, True, "CLOSE")  # tcp_close() moves to CLOSE, then sends the RST
    from netbpf.bpf.btf import vmlinux

    assert f"SK_RST_REASON_{linger['reason']}" in vmlinux().enum_values("sk_rst_reason")
    assert [(e["event"], e["rport"], e["state"]) for e in received] == [
        ("rst_recv", 81, "SYN_SENT"), ("rst_recv", 7200, "ESTABLISHED")]


def test_ipv6_resets_carry_ipv6_endpoints(pair: Lab) -> None:
    gw_tool = Tool("tcp", "--json", "--events", "reset,life", netns=pair.gateway)
    cl_tool = Tool("tcp", "--json", "--events", "reset,life", netns=pair.client)
    assert pair.run(pair.client, "curl", "-s", "--max-time", "2", f"http://[{Lab.GATEWAY_IP6}]:81/",
                    check=False).returncode == 7
    sent = json_lines(gw_tool.stop()[0])
    got = json_lines(cl_tool.stop()[0])
    assert [(e["event"], e["local"], e["lport"], e["remote"], e["reason"]) for e in sent] == [
        ("rst_sent", Lab.GATEWAY_IP6, 81, Lab.CLIENT_IP6, "NO_SOCKET")]
    assert [(e["event"], e["local"], e["remote"], e["rport"]) for e in got] == [
        ("rst_recv", Lab.CLIENT_IP6, Lab.GATEWAY_IP6, 81), ("close", Lab.CLIENT_IP6, Lab.GATEWAY_IP6, 81)]


NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log stderr;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir};
    proxy_temp_path {dir};
    fastcgi_temp_path {dir};
    uwsgi_temp_path {dir};
    scgi_temp_path {dir};
    server {{
        listen {ip}:8080;
        root {dir};
        location / {{ }}
    }}
}}
"""


def test_state_changes_and_lifetime_of_a_curl_to_nginx(pair: Lab, tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("x" * 5000)
    tmp_path.chmod(0o755)
    (tmp_path / "nginx.conf").write_text(NGINX_CONF.format(dir=tmp_path, ip=GW))
    nginx = pair.popen(pair.gateway, "nginx", "-c", str(tmp_path / "nginx.conf"),
                       stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while pair.run(pair.gateway, "ss", "-tln", "sport", "8080").stdout.count("LISTEN") == 0:
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.05)
        cl_tool = Tool("tcp", "--json", "--events", "state,life", netns=pair.client)
        gw_tool = Tool("tcp", "--json", "--events", "state,life", "--port", "8080", netns=pair.gateway)
        curl = pair.run(pair.client, "curl", "-sS", "-o", "/dev/null", "-w",
                        "%{size_request} %{size_header} %{size_download} %{local_port}",
                        f"http://{GW}:8080/index.html")
        time.sleep(0.3)
        cl_events, _ = cl_tool.stop()
        gw_events, _ = gw_tool.stop()
    finally:
        nginx.terminate()
        nginx.wait(10)
    request, header, download, port = map(int, curl.stdout.split())
    assert download == 5000
    client = json_lines(cl_events)
    server = json_lines(gw_events)
    states = [(e["oldstate"], e["state"]) for e in client if e["event"] == "state"]
    assert states == [("CLOSE", "SYN_SENT"), ("SYN_SENT", "ESTABLISHED"), ("ESTABLISHED", "FIN_WAIT1"),
                      ("FIN_WAIT1", "FIN_WAIT2"), ("FIN_WAIT2", "CLOSE")]
    assert all(e["rport"] == 8080 for e in client)
    assert {e["lport"] for e in client if e["event"] == "state"} - {0} == {port}
    assert server[-1]["event"] == "close"
    server_states = [(e["oldstate"], e["state"]) for e in server if e["event"] == "state" and e["rport"] == port]
    assert server_states[-3:] == [("ESTABLISHED", "CLOSE_WAIT"), ("CLOSE_WAIT", "LAST_ACK"), ("LAST_ACK", "CLOSE")]
    life = [e for e in client if e["event"] == "close"]
    assert len(life) == 1
    life = life[0]
    assert (life["comm"], life["lport"], life["remote"], life["rport"]) == ("curl", port, GW, 8080)
    # The kernel counts sequence space, as bcc tcplife reports it: a SYN and a FIN count one each.
    assert life["tx_bytes"] == request + 2
    assert life["rx_bytes"] == header + download + 1
    assert life["duration_ms"] > 0
    nginx_life = server[-1]
    assert (nginx_life["comm"], nginx_life["lport"], nginx_life["rport"]) == ("nginx", 8080, port)
    assert nginx_life["rx_bytes"] == request + 1 and nginx_life["tx_bytes"] == header + download + 1


def test_summary_by_flow_and_metrics(pair: Lab) -> None:
    import urllib.request

    port = free_port()
    tool = Tool("tcp", "--summary", "--json", "--metrics", f"127.0.0.1:{port}", "--in-netns", pair.client)
    for _ in range(3):
        assert pair.run(pair.client, "curl", "-s", "--max-time", "2", f"http://{GW}:81/",
                        check=False).returncode == 7
    time.sleep(0.2)
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    rows, _ = tool.stop()
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "netbpf_tcp_resets_received_total 3.0" in text
    assert "netbpf_tcp_connections_closed_total 3.0" in text
    flows = json_lines(rows)
    assert len(flows) == 3  # three connections, three local ports
    assert all((r["remote"], r["resets_received"], r["closed"]) == (f"{GW}:81", 1, 1) for r in flows)


@pytest.mark.parametrize("args,message", [
    (["--events", "bogus"], "unknown event 'bogus'"),
    (["--by", "nothing"], "invalid choice"),
    (["--port", "70000"], "not a port"),
])
def test_bad_input_is_one_clear_line(args: list[str], message: str) -> None:
    from .conftest import netbpf

    result = netbpf("tcp", *args, "--duration", "1")
    assert result.returncode == 2
    assert message in result.stderr.strip().splitlines()[-1]
