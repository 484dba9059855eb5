"""Once attached, every long-running tool runs as -Z USER with only what detaching needs.

Checked from outside, as an administrator would: /proc/PID/status while the
tool runs (Uid, CapEff, CapPrm, NoNewPrivs), bpftool and ip after it exits
(nothing left), tshark on what -w wrote (and ls: whose file it is).
"""
from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netbpf import privilege
from netbpf.lab import Lab

from .conftest import link_prog_ids, loaded_prog_ids, netbpf, ping, settled, tc_filters, xdp_prog_on
from .drops_helpers import Tool
from .test_security import FOREIGN_C, attach_foreign, foreign_object, pin_root  # noqa: F401

NOBODY = pwd.getpwnam("nobody").pw_uid
NET_ADMIN = 1 << privilege.CAP_NET_ADMIN
DAC_OVERRIDE = 1 << privilege.CAP_DAC_OVERRIDE
SYS_ADMIN = 1 << privilege.CAP_SYS_ADMIN
assert FOREIGN_C


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory any user can create files in (pytest's tmp_path is root's, 0700)."""
    path = Path(tempfile.mkdtemp(prefix="netbpf-priv-"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path)


def status_of(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def dropped(tool: Tool, timeout: float = 30) -> dict[str, str]:
    """/proc/PID/status once the tool has left root (it drops right after attaching)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fields = status_of(tool.proc.pid)
        if fields["NoNewPrivs"] == "1":  # the last step of the drop
            return fields
        time.sleep(0.05)
    raise AssertionError("the tool never left root")


def caps(fields: dict[str, str], key: str) -> int:
    return int(fields[key], 16)


def netbpf_links() -> set[int]:
    return link_prog_ids()


def test_dump_runs_as_the_user_keeps_net_admin_and_restores(pair: Lab, pin_root: Path,  # noqa: F811
                                                          foreign_object: Path, open_dir: Path) -> None:  # noqa: F811
    """In front of a netlink XDP program: CAP_NET_ADMIN (to put it back over
    netlink) and CAP_SYS_ADMIN (to splice out of a stack of front programs, which
    opens programs and maps by id) effective, CAP_DAC_OVERRIDE only permitted (to
    unpin its PROG_ARRAY from the root-only pin directory), nothing else; -w FILE
    is the user's."""
    original = attach_foreign(pair, foreign_object)
    out = open_dir / "x.pcap"
    tool = Tool("dump", "-Z", "nobody", "-i", "c0", "-w", str(out), "-U", "icmp", netns=pair.gateway,
                ready="capturing on c0")
    fields = dropped(tool)
    assert fields["Uid"].split() == [str(NOBODY)] * 4
    assert fields["Groups"] == ""
    assert caps(fields, "CapEff") == NET_ADMIN | SYS_ADMIN
    assert caps(fields, "CapPrm") == NET_ADMIN | SYS_ADMIN | DAC_OVERRIDE
    assert caps(fields, "CapInh") == 0 and caps(fields, "CapAmb") == 0
    assert fields["NoNewPrivs"] == "1"
    front = xdp_prog_on(pair, pair.gateway, "c0")
    assert front != original
    assert ping(pair, pair.client, pair.GATEWAY_IP, count=3) == 3  # parsed as nobody, still passes
    _, err = tool.stop()
    assert "Traceback" not in err and "packets captured" in err
    # Exit put the original back (netlink, with CAP_NET_ADMIN) and unpinned (CAP_DAC_OVERRIDE).
    assert xdp_prog_on(pair, pair.gateway, "c0") == original
    assert front not in netbpf_links()
    assert [p for p in pin_root.rglob("*") if not p.is_dir()] == []
    assert out.stat().st_uid == NOBODY
    shown = subprocess.run(["tshark", "-r", str(out), "-T", "fields", "-e", "icmp.type"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert shown.count("8") >= 3  # the echo requests, as tshark reads them
    pair.run(pair.gateway, "ip", "link", "set", "dev", "c0", "xdp", "off")


def test_dump_writes_like_tcpdump_into_a_root_only_directory(pair: Lab, tmp_path: Path) -> None:
    """tmp_path is root's, 0700: as tcpdump, the file is created as the user
    (CAP_DAC_OVERRIDE for that one open), which then keeps only what leaving
    an XDP stack needs."""
    out = tmp_path / "x.pcapng"
    tool = Tool("dump", "-Z", "nobody", "-i", "c0", "-w", str(out), "-c", "2", "icmp", netns=pair.gateway,
                ready="capturing on c0")
    fields = dropped(tool)
    assert caps(fields, "CapEff") == NET_ADMIN | SYS_ADMIN  # at XDP: to splice out of a stack
    assert caps(fields, "CapPrm") == NET_ADMIN | SYS_ADMIN
    ping(pair, pair.client, pair.GATEWAY_IP, count=2)
    _, err = tool.wait()
    assert "2 packets captured" in err
    assert out.stat().st_uid == NOBODY
    shown = subprocess.run(["tshark", "-r", str(out), "-T", "fields", "-e", "icmp.type"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert shown == ["8", "8"]


def test_dump_refuses_another_users_file_and_keeps_it(pair: Lab, open_dir: Path) -> None:
    theirs = open_dir / "theirs.pcap"
    theirs.write_bytes(b"precious")
    theirs.chmod(0o666)  # even writable by everyone: not ours to truncate
    result = netbpf("dump", "-Z", "nobody", "-i", "c0", "-c", "1", "-w", str(theirs), netns=pair.gateway)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "another user's file" in result.stderr and "root" in result.stderr
    assert theirs.read_bytes() == b"precious"
    assert xdp_prog_on(pair, pair.gateway, "c0") == 0
    link = open_dir / "link.pcap"
    link.symlink_to(theirs)
    result = netbpf("dump", "-Z", "nobody", "-i", "c0", "-c", "1", "-w", str(link), netns=pair.gateway)
    assert result.returncode == 1 and "symlink" in result.stderr
    assert theirs.read_bytes() == b"precious"


@pytest.mark.parametrize("argv,ready,keeps", [
    (["fault", "drop", "-i", "c0", "--hook", "tc", "--tc-mode", "cls_bpf", "icmp"], "Ctrl-C to stop", NET_ADMIN),
    (["fault", "drop", "-i", "c0", "--hook", "tc", "--tc-mode", "tcx", "icmp"], "Ctrl-C to stop", 0),
    (["http", "-i", "c0", "--port", "8080"], "tracing HTTP", 0),
    (["drops"], "watching drops", 0),
    (["tcp"], "watching TCP", 0),
])
def test_every_tool_drops_to_the_user(pair: Lab, argv: list[str], ready: str, keeps: int) -> None:
    """Links need no capability to detach (closing the fd does it), a socket
    filter none, tracepoints none; a cls_bpf filter goes over netlink."""
    tool = Tool(*argv, "-Z", "nobody", netns=pair.gateway, ready=ready)
    fields = dropped(tool)
    assert fields["Uid"].split()[0] == str(NOBODY)
    assert caps(fields, "CapEff") == keeps and caps(fields, "CapPrm") == keeps
    held = held_ids(tool.proc.pid, "prog_id") | held_ids(tool.proc.pid, "link_id")
    progs = held_ids(tool.proc.pid, "prog_id")
    assert held
    _, err = tool.stop()
    assert "Traceback" not in err, err
    # Everything it attached is gone: filters, links, the programs themselves.
    assert tc_filters(pair, pair.gateway, "c0") == []
    assert xdp_prog_on(pair, pair.gateway, "c0") == 0
    settled(lambda: len(progs & loaded_prog_ids()), quiet=0.5, timeout=10)  # freed after RCU
    assert not progs & loaded_prog_ids()


def held_ids(pid: int, key: str) -> set[int]:
    """The BPF program or link ids whose fds a process holds (/proc/PID/fdinfo)."""
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            text = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            name, _, value = line.partition(":")
            if name == key:
                found.add(int(value))
    return found


def test_default_user_and_root_on_request(pair: Lab) -> None:
    tool = Tool("tcp", netns=pair.gateway, ready="watching TCP")
    fields = dropped(tool)
    assert fields["Uid"].split()[0] == str(pwd.getpwnam(privilege.default_user()).pw_uid) != "0"
    tool.stop()
    tool = Tool("tcp", "-Z", "root", "--duration", "1", netns=pair.gateway, ready="watching TCP")
    uids = set()
    while tool.proc.poll() is None:  # until it exits by itself: root all along
        try:
            uids.add(status_of(tool.proc.pid)["Uid"].split()[0])
        except OSError:
            break
        time.sleep(0.05)
    tool.wait()
    assert uids == {"0"}
    bad = netbpf("tcp", "-Z", "nosuchuser0", netns=pair.gateway)
    assert bad.returncode == 2 and "no such user" in bad.stderr


def test_http_parses_as_nobody(pair: Lab) -> None:
    """The parser that reads what anyone can send runs with no capability, and
    still traces: curl's request and the server's answer, paired."""
    server = pair.popen(pair.gateway, sys.executable, "-m", "http.server", "8080", "--bind", pair.GATEWAY_IP,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pair.wait_listening(pair.gateway, 8080)
        tool = Tool("http", "-Z", "nobody", "-i", "c0", "--port", "8080", "--json", "-c", "1",
                    netns=pair.gateway, ready="tracing HTTP")
        fields = dropped(tool)
        assert fields["Uid"].split()[0] == str(NOBODY) and caps(fields, "CapPrm") == 0
        curl = pair.run(pair.client, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                        f"http://{pair.GATEWAY_IP}:8080/")
        out, err = tool.wait()
        assert "Traceback" not in err
        tx = json.loads(out.splitlines()[0])
        assert str(tx["status"]) == curl.stdout == "200"
    finally:
        server.kill()
        server.wait()


def test_an_installation_the_user_cannot_read_still_runs(pair: Lab, tmp_path: Path) -> None:
    """netbpf in a directory only root may enter (a checkout under /root, 0700; pytest's
    tmp_path is one): a module first imported after the drop to nobody could not be read
    (the line printer, the report at exit), so the tool imports them all before it."""
    source = tmp_path / "src"
    shutil.copytree(Path(privilege.__file__).parent, source / "netbpf", ignore=shutil.ignore_patterns("__pycache__"))
    assert tmp_path.stat().st_mode & 0o007 == 0  # others may not enter
    env = {**os.environ, "PYTHONPATH": str(source)}
    where = subprocess.run([sys.executable, "-c", "import netbpf; print(netbpf.__file__)"], env=env,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(source))
    proc = subprocess.Popen([sys.executable, "-m", "netbpf", "--netns", pair.gateway, "dump", "-i", "c0",
                             "-Z", "nobody", "-c", "3", "--duration", "30", "icmp"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    assert "capturing on c0" in proc.stderr.readline()
    ping(pair, pair.client, pair.GATEWAY_IP, count=3)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert len([line for line in out.splitlines() if "ICMP echo request" in line]) == 3, out
