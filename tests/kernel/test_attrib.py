"""Packets attributed to their process, cgroup and container, checked against what the test set up.

Processes join child cgroups named as Docker (systemd and cgroupfs drivers) and
containerd under Kubernetes name them, in a test-owned parent under the cgroup
v2 root; they talk from the gateway namespace to an echo server in the client
namespace, over sockets opened before and after netbpf starts, TCP and UDP,
IPv4 and IPv6. Every packet of their ports must name the process that owns
the socket (N of N): at tc egress the sender, at tc ingress and XDP the
receiver. ``--pid`` must keep exactly the packets tcpdump sees on that
process's ports, and tshark must show the process in every packet's comment.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from netbpf.bpf.fs import cgroup2_root
from netbpf.lab import Lab, stop_process

from .conftest import netbpf, wait_until_settled
from .test_dump import ARGV, stop

HERE = Path(__file__).resolve().parent
PORT = 7411
MESSAGES = 5


def _hex64() -> str:
    return uuid.uuid4().hex + uuid.uuid4().hex


@dataclass
class Worker:
    name: str  # its command (prctl)
    cgroup: str  # path under the v2 root
    runtime: str
    container: str
    pod: str | None = None
    proc: subprocess.Popen[str] | None = None
    pid: int = 0
    ports: dict[int, str] = field(default_factory=dict)  # local port -> tcp/udp

    def command(self, line: str) -> dict[str, object]:
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.read()

    def read(self) -> dict[str, object]:
        assert self.proc is not None and self.proc.stdout is not None
        report = json.loads(self.proc.stdout.readline())
        self.pid = int(report["pid"])
        self.ports = {int(s["port"]): str(s["proto"]) for s in report["sockets"]}
        return report


@pytest.fixture
def containers(pair: Lab) -> Iterator[tuple[Lab, list[Worker]]]:
    """Three workers in container-like cgroups, and an echo server in the client namespace."""
    root = cgroup2_root()
    parent = root / f"netbpf-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    pod = str(uuid.uuid4())
    ids = [_hex64() for _ in range(3)]
    workers = [
        Worker("wk-docker", f"/{parent.name}/system.slice/docker-{ids[0]}.scope", "docker", ids[0]),
        Worker("wk-k8s", f"/{parent.name}/kubepods.slice/kubepods-burstable.slice/"
               f"kubepods-burstable-pod{pod.replace('-', '_')}.slice/cri-containerd-{ids[1]}.scope",
               "containerd", ids[1], pod),
        Worker("wk-cgroupfs", f"/{parent.name}/docker/{ids[2]}", "docker", ids[2]),
    ]
    echo_pod, echo_id = str(uuid.uuid4()), _hex64()
    echo_cgroup = f"/{parent.name}/kubepods/besteffort/pod{echo_pod}/{echo_id}"
    (root / echo_cgroup.lstrip("/")).mkdir(parents=True)
    procs = os.open(root / echo_cgroup.lstrip("/") / "cgroup.procs", os.O_WRONLY)
    try:
        echo = pair.popen(pair.client, sys.executable, str(HERE / "attrib_echo.py"), str(PORT), str(procs),
                          stdout=subprocess.PIPE, text=True, pass_fds=(procs,))
    finally:
        os.close(procs)
    try:
        assert echo.stdout is not None and echo.stdout.readline().strip() == "ready"
        server = Worker(Path(sys.executable).name[:15], echo_cgroup, "kubernetes", echo_id, echo_pod, echo, echo.pid)
        for w in workers:
            (root / w.cgroup.lstrip("/")).mkdir(parents=True)
            procs = os.open(root / w.cgroup.lstrip("/") / "cgroup.procs", os.O_WRONLY)
            try:
                w.proc = pair.popen(pair.gateway, sys.executable, str(HERE / "attrib_worker.py"),
                                    str(procs), w.name, pair.CLIENT_IP, pair.CLIENT_IP6, str(PORT),
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                    pass_fds=(procs,))
            finally:
                os.close(procs)
            w.read()
        yield pair, [*workers, server]
    finally:
        for w in workers:
            if w.proc is not None:
                stop_process(w.proc)
        stop_process(echo)
        # Children first: rmdir of a cgroup needs it empty of processes and cgroups.
        for directory in sorted((p for p in parent.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            directory.rmdir()
        if parent.exists():
            parent.rmdir()


def start(lab: Lab, *args: str, netns: str | None = None) -> subprocess.Popen[bytes]:
    """`netbpf --netns NS dump ...` (the gateway by default), once it says it captures."""
    proc = subprocess.Popen([*ARGV, "--netns", netns or lab.gateway, "dump", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    line = proc.stderr.readline()  # the first line: capturing, or the one error line
    if b"capturing on" not in line:
        proc.kill()
        raise AssertionError(f"netbpf dump did not start: {line!r} {proc.stderr.read()!r}")
    return proc


def _records(out: bytes) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


def _local_port(rec: dict[str, object], egress: bool) -> int:
    return int(rec["sport"] if egress else rec["dport"])  # type: ignore[call-overload]


@pytest.mark.parametrize("hook", ["tc-egress", "tc-ingress", "xdp"])
def test_every_packet_names_its_process_cgroup_and_container(containers: tuple[Lab, list[Worker]],
                                                              hook: str) -> None:
    lab, (*workers, _server) = containers
    dump = start(lab, "-i", "c0", "--hook", hook, "--json", "--process", f"port {PORT}")
    try:
        for w in workers:
            w.command("open")  # a second set, opened while netbpf runs
            w.command(f"send {MESSAGES}")
    finally:
        time.sleep(0.5)
        out, err = stop(dump)
    records = _records(out)
    egress = hook == "tc-egress"
    by_port = {port: w for w in workers for port in w.ports}
    per_socket: dict[int, int] = {}
    for rec in records:
        w = by_port[_local_port(rec, egress)]
        assert (rec["pid"], rec["comm"], rec["cgroup"]) == (w.pid, w.name, w.cgroup), rec
        assert (rec["container"], rec["container_runtime"], rec["pod"]) == (w.container, w.runtime, w.pod), rec
        per_socket[_local_port(rec, egress)] = per_socket.get(_local_port(rec, egress), 0) + 1
    # Every socket (4 before, 4 after start, per worker) was seen with all its messages.
    assert set(per_socket) == set(by_port), (sorted(per_socket), sorted(by_port))
    assert all(n >= MESSAGES for n in per_socket.values()), per_socket
    assert "0 no local socket, 0 local socket, owner unknown" in err, err


def _tcpdump(lab: Lab, direction: str, ports: list[int], path: Path) -> subprocess.Popen[bytes]:
    expression = " or ".join(f"port {p}" for p in ports)
    proc = lab.popen(lab.gateway, "tcpdump", "-i", "c0", "-Q", direction, "-U", "-w", str(path),
                     expression, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert b"listening on" in line, line
    return proc


def _frames(path: Path) -> list[bytes]:
    from netbpf.packet import pcap

    return sorted(p.data for p in pcap.read(str(path)))


@pytest.mark.parametrize("hook", ["tc-egress", "tc-ingress"])
def test_pid_captures_exactly_the_process_packets(containers: tuple[Lab, list[Worker]], hook: str,
                                                  tmp_path: Path) -> None:
    lab, (*workers, _server) = containers
    target = workers[1]
    ours, theirs = tmp_path / "netbpf.pcapng", tmp_path / "tcpdump.pcap"
    os.chmod(tmp_path, 0o777)  # netbpf writes as its -Z user
    dump = start(lab, "-i", "c0", "--hook", hook, "--pid", str(target.pid), "-U", "-w", str(ours))
    reference = _tcpdump(lab, "out" if hook == "tc-egress" else "in", list(target.ports), theirs)
    try:
        for w in workers:  # the others talk too, on the same port of the same server
            w.command(f"send {MESSAGES}")
    finally:
        wait_until_settled(theirs)
        wait_until_settled(ours)
        reference.send_signal(signal.SIGINT)
        _, tcpdump_said = reference.communicate(timeout=10)
        stop(dump)
    expected = _frames(theirs)
    assert len(expected) >= 4 * MESSAGES, tcpdump_said
    assert _frames(ours) == expected
    comments = subprocess.run(["tshark", "-r", str(ours), "-T", "fields", "-e", "frame.comment"],
                              capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(comments) == len(expected)
    want = f"pid {target.pid} comm {target.name} cgroup {target.cgroup} container containerd:{target.container[:12]}"
    assert all(c.startswith(want) for c in comments), comments[:3]


def test_short_lived_process(containers: tuple[Lab, list[Worker]]) -> None:
    """exec, send one datagram, exit: the packet still names it."""
    lab, (*workers, _server) = containers
    procs = os.open(cgroup2_root() / workers[0].cgroup.lstrip("/") / "cgroup.procs", os.O_WRONLY)
    dump = start(lab, "-i", "c0", "--hook", "tc-egress", "--json", "--comm", "bash", f"udp port {PORT}")
    pids = []
    try:
        for _ in range(3):
            # The shell joins the cgroup, then execs bash, which sends and exits.
            result = lab.run(lab.gateway, "bash", "-c",
                             f"echo $$ >&{procs}; exec bash -c "
                             f"'echo $$; echo hi > /dev/udp/{lab.CLIENT_IP}/{PORT}'", pass_fds=(procs,))
            pids.append(int(result.stdout.split()[0]))
    finally:
        os.close(procs)
        time.sleep(0.5)
        out, _ = stop(dump)
    records = _records(out)
    assert sorted(int(r["pid"]) for r in records) == sorted(pids)  # type: ignore[call-overload]
    assert all(r["comm"] == "bash" and r["container"] == workers[0].container for r in records)


def test_an_exec_renames_the_packets_that_follow(containers: tuple[Lab, list[Worker]], tmp_path: Path) -> None:
    """A socket kept across exec: packets before it name the old command, after it the new one
    (each CPU's cached answer and comment are dropped when a process execs)."""
    lab, (*workers, _server) = containers
    ours = tmp_path / "x.pcapng"
    os.chmod(tmp_path, 0o777)  # netbpf writes as its -Z user
    files = start(lab, "-i", "c0", "--hook", "tc-egress", "--process", "-U", "-w", str(ours), f"udp port {PORT}")
    lines = start(lab, "-i", "c0", "--hook", "tc-egress", "--process", "--json", f"udp port {PORT}")
    procs = os.open(cgroup2_root() / workers[0].cgroup.lstrip("/") / "cgroup.procs", os.O_WRONLY)
    sender = (f"import os, socket\nos.write({procs}, str(os.getpid()).encode())\n"
              f"s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.connect(('{lab.CLIENT_IP}', {PORT}))\n"
              "s.set_inheritable(True)\nprint(os.getpid(), flush=True)\n"
              f"for _ in range({MESSAGES}):\n    s.send(b'before')\n"
              f"os.execv('/bin/bash', ['bash', '-c', 'for i in $(seq {MESSAGES}); do echo after >&%d; done' % s.fileno()])")
    try:
        result = lab.run(lab.gateway, sys.executable, "-c", sender, pass_fds=(procs,))
        pid = int(result.stdout.split()[0])
    finally:
        os.close(procs)
        time.sleep(0.5)
        wait_until_settled(ours)
        stop(files)
        out, _ = stop(lines)
    python = Path(sys.executable).name[:15]
    expected = [python] * MESSAGES + ["bash"] * MESSAGES
    records = [r for r in _records(out) if r["pid"] == pid]
    assert [r["comm"] for r in records] == expected, records
    comments = subprocess.run(["tshark", "-r", str(ours), "-T", "fields", "-e", "frame.comment"],
                              capture_output=True, text=True, check=True).stdout.splitlines()
    ours_only = [c for c in comments if c.startswith(f"pid {pid} ")]
    assert [c.split()[3] for c in ours_only] == expected, comments


def _kept_of_all(lab: Lab, workers: list[Worker], *args: str) -> tuple[list[dict[str, object]], str]:
    """dump --json on c0 with ``args`` while every worker sends: the records it kept
    (at least one worker's worth), and its stderr."""
    dump = start(lab, "-i", "c0", "--json", *args, f"port {PORT}")
    try:
        for w in workers:
            w.command(f"send {MESSAGES}")
    finally:
        time.sleep(0.5)
        out, err = stop(dump)
    records = _records(out)
    assert len(records) >= 4 * MESSAGES
    return records, err


def test_container_filter_keeps_that_container_only(containers: tuple[Lab, list[Worker]]) -> None:
    lab, (*workers, _server) = containers
    target = workers[0]
    records, err = _kept_of_all(lab, workers, "--hook", "tc-egress", "--container", target.container[:12])
    assert {(r["pid"], r["container"]) for r in records} == {(target.pid, target.container)}
    assert {int(r["sport"]) for r in records} == set(target.ports)  # type: ignore[call-overload]
    # The other workers' packets matched the expression, and were counted, not kept.
    assert f"{len(records)} packets captured" in err


def test_cgroup_filter_takes_the_subtree(containers: tuple[Lab, list[Worker]]) -> None:
    lab, (*workers, _server) = containers
    k8s = workers[1]
    slice_path = k8s.cgroup.rsplit("/", 2)[0]  # .../kubepods-burstable.slice: the pod's parent
    records, _ = _kept_of_all(lab, workers, "--hook", "tc-ingress", "--cgroup", slice_path)
    assert {r["pid"] for r in records} == {k8s.pid}


def test_accepted_sockets_name_the_accepting_process(containers: tuple[Lab, list[Worker]]) -> None:
    """The echo server's accepted sockets: sock_create never saw them; accept() names the process.
    Before accept() returns, their packets say "owner unknown": never the listener's process by guess."""
    lab, (*workers, server) = containers
    dump = start(lab, "-i", "eth0", "--hook", "tc-egress", "--json", "--process", f"tcp src port {PORT}",
                 netns=lab.client)
    try:
        for w in workers:
            w.command("open")  # new connections: accepted while netbpf runs
            w.command(f"send {MESSAGES}")
    finally:
        time.sleep(0.5)
        out, _ = stop(dump)
    records = _records(out)
    with_data = [r for r in records if r.get("length")]
    assert len(with_data) >= 2 * len(workers) * MESSAGES
    for r in with_data:  # an echo is sent after accept() and recv(): always known
        assert (r["pid"], r["comm"], r["cgroup"], r["container"], r["pod"]) == (
            server.pid, server.name, server.cgroup, server.container, server.pod), r
    assert {r["owner"] for r in records} <= {"known", "local socket, owner unknown"}
    assert all(r["pid"] in (server.pid, None) for r in records)


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--container", "0123456789ab"], 1, "no cgroup of such a container"),
    (["--cgroup", "/no/such/cgroup/here"], 1, "no such cgroup"),
    (["--pid", "abc"], 2, "not a process id"),
    (["--pid", "4194304"], 1, "--pid 4194304: no such process"),  # above PID_MAX_LIMIT: never a pid
    (["--comm", "a-name-longer-than-15"], 2, "keeps 15 bytes"),
    (["--cgroup", "/", "--container", "0123"], 2, "do not go together"),
])
def test_bad_attribution_options(pair: Lab, args: list[str], code: int, message: str) -> None:
    result = netbpf("dump", "-i", "c0", *args, netns=pair.gateway)
    assert result.returncode == code, result.stderr
    # One line (argparse's own errors: after its usage lines, as for every option)
    assert message in result.stderr.strip().splitlines()[-1], result.stderr
    if code == 1:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_tcp_names_the_container(containers: tuple[Lab, list[Worker]]) -> None:
    """netbpf tcp: connect() runs in the process, so SYN_SENT carries its cgroup and container."""
    lab, (*workers, _server) = containers
    proc = subprocess.Popen([*ARGV, "--netns", lab.gateway, "tcp", "--events", "state", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert b"watching TCP" in line, line
    try:
        for w in workers:
            w.command("open")
    finally:
        time.sleep(0.5)
        out, _ = stop(proc)
    connects = [r for r in _records(out) if r["oldstate"] == "CLOSE" and r["state"] == "SYN_SENT"]
    # Two TCP connections (IPv4, IPv6) per worker.
    assert sorted(int(r["pid"]) for r in connects) == sorted(w.pid for w in workers for _ in range(2))  # type: ignore[call-overload]
    by_pid = {w.pid: w for w in workers}
    for r in connects:
        w = by_pid[int(r["pid"])]  # type: ignore[call-overload]
        assert (r["comm"], r["cgroup"], r["container"], r["container_runtime"], r["pod"]) == (
            w.name, w.cgroup, w.container, w.runtime, w.pod), r


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_nothing_stays_attached(pair: Lab, sig: int) -> None:
    """The cgroup, sockops and tracepoint programs go with the process, even after SIGKILL
    (BPF links held by file descriptors, never pinned)."""
    from .conftest import bpftool_json

    def ours() -> set[int]:
        return {int(p["id"]) for p in bpftool_json("prog", "show")  # type: ignore[call-overload]
                if str(p.get("name", "")).startswith("netbpf_attr")}

    before = ours()
    proc = start(pair, "-i", "c0", "--hook", "tc-egress", "--process")
    assert len(ours() - before) == 5  # sock_create, sockops, accept, accept4, exec
    proc.send_signal(sig)
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while ours() - before and time.monotonic() < deadline:
        time.sleep(0.2)  # programs are freed after an RCU grace period
    assert not ours() - before


def test_drops_names_the_owner_of_a_full_socket(containers: tuple[Lab, list[Worker]]) -> None:
    """A UDP socket that never reads, in the Docker-named cgroup: its overflow drops (rx_sk)
    name its process and container; drops without a socket say so."""
    from .drops_helpers import Tool, send_udp

    lab, (*workers, _server) = containers
    cgroup = workers[0].cgroup
    procs = os.open(cgroup2_root() / cgroup.lstrip("/") / "cgroup.procs", os.O_WRONLY)
    try:
        sink = lab.popen(lab.gateway, "bash", "-c", f"echo $$ >&{procs}; exec {sys.executable} -c \""
                         "import socket, sys, time\n"
                         "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                         "s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)\n"
                         "s.bind(('0.0.0.0', 7412)); print('bound', flush=True); time.sleep(60)\"",
                         stdout=subprocess.PIPE, text=True, pass_fds=(procs,))
    finally:
        os.close(procs)
    try:
        assert sink.stdout is not None and sink.stdout.readline().strip() == "bound"
        tool = Tool("drops", "--json", "--process", "--in-netns", lab.gateway, "--port", "7412")
        send_udp(lab, lab.client, lab.GATEWAY_IP, 7412, count=200, size=1000)
        out, _ = tool.stop()
    finally:
        stop_process(sink)
    drops = [json.loads(line) for line in out.splitlines() if line.strip()]
    full = [d for d in drops if d["socket"] == "rx_sk"]
    assert full, drops[:3]
    assert {d["reason"] for d in full} == {"SOCKET_RCVBUFF"}, full[:1]
    for d in full:
        assert (d["pid"], d["container"], d["cgroup"]) == (sink.pid, workers[0].container, cgroup), d
