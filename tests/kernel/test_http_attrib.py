"""``netbpf http --process``: the local process and container on each side of every transaction.

The lab's gateway (nginx) balances over two backends (IPv4 and IPv6), each
program in a child cgroup named as a container runtime names it (nginx as a
Docker container, the backends as containerd and cgroupfs Kubernetes pods),
and curl, one short-lived process per request, in another container cgroup in
the client namespace. ``netbpf http`` runs in the gateway namespace; every
transaction (client -> nginx, nginx -> backend) must name, on each side, the
process that really holds that end (curl's pid, the nginx worker, the
backend's server) and its container, whichever namespace it lives in, and
curl's requests must be attributed although each curl has exited.
"""
from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netbpf.bpf.fs import cgroup2_root
from netbpf.lab import Lab, stop_process
from netbpf.lab.servers import Backend, NginxGateway, _children

from .conftest import unique_prefix
from .test_http import Tracer as HttpTracer

HERE = Path(__file__).resolve().parent
REQUESTS = 6  # curl runs, alternately over IPv4 and IPv6


def _hex64() -> str:
    return uuid.uuid4().hex + uuid.uuid4().hex


class Cgroups:
    """Child cgroups of a test-owned parent, removed at the end (children first)."""

    def __init__(self) -> None:
        self.root = cgroup2_root()
        self.parent = self.root / f"netbpf-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"

    def make(self, path: str) -> Path:
        full = self.parent / path.lstrip("/")
        full.mkdir(parents=True)
        return full

    def joining(self, lab: Lab, path: Path) -> Any:
        """lab.popen for programs that must start inside the cgroup at ``path``."""
        original = lab.popen

        def popen(netns: str, *argv: str, **kwargs: Any) -> subprocess.Popen[Any]:
            fd = os.open(path / "cgroup.procs", os.O_WRONLY)
            try:
                kwargs["pass_fds"] = (*kwargs.get("pass_fds", ()), fd)
                return original(netns, sys.executable, str(HERE / "attrib_join.py"), str(fd), *argv, **kwargs)
            finally:
                os.close(fd)
        return popen

    def remove(self) -> None:
        for directory in sorted((p for p in self.parent.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            directory.rmdir()
        if self.parent.exists():
            self.parent.rmdir()


@pytest.fixture
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="netbpf-http-attrib-") as d:
        yield Path(d)


@pytest.fixture
def cgroups() -> Iterator[Cgroups]:
    c = Cgroups()
    try:
        yield c
    finally:
        c.remove()


# test_http's, without its machine-wide count of programs (other runs on a shared machine upset it)
Tracer = functools.partial(HttpTracer, counted=False)


def _comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def test_each_side_of_each_transaction_names_its_process_and_container(cgroups: Cgroups, workdir: Path) -> None:
    ids = {name: _hex64() for name in ("nginx", "curl", "b1", "b2")}
    pod1, pod2 = str(uuid.uuid4()), str(uuid.uuid4())
    paths = {
        "nginx": cgroups.make(f"system.slice/docker-{ids['nginx']}.scope"),
        "curl": cgroups.make(f"docker/{ids['curl']}"),
        "b1": cgroups.make(f"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{pod1.replace('-', '_')}"
                           f".slice/cri-containerd-{ids['b1']}.scope"),
        "b2": cgroups.make(f"kubepods/besteffort/pod{pod2}/{ids['b2']}"),
    }
    lab = Lab(unique_prefix(), backends=2).up()
    backends = [Backend(lab, i) for i in (1, 2)]
    gateway = NginxGateway(lab, family="mixed")  # backend 1 over IPv4, backend 2 over IPv6
    procs: list[subprocess.Popen[Any]] = []
    try:
        lab.wait_reachable()
        for i, b in enumerate(backends, start=1):
            lab.popen = cgroups.joining(lab, paths[f"b{i}"])  # type: ignore[method-assign]
            b.start()
        lab.popen = cgroups.joining(lab, paths["nginx"])  # type: ignore[method-assign]
        gateway.start()
        lab.popen = cgroups.joining(lab, paths["curl"])  # type: ignore[method-assign]
        assert gateway.proc is not None
        (worker,) = _children(gateway.proc.pid)  # worker_processes 1
        tracer = Tracer(lab.gateway, "-i", "any", "--port", "80,8080", "--process", "--json", workdir=workdir)
        (workdir / "text").mkdir()
        lines = Tracer(lab.gateway, "-i", "any", "--port", "80,8080", "--process", workdir=workdir / "text")
        curls: dict[str, int] = {}  # request path -> the pid of the curl that sent it
        for n in range(REQUESTS):
            host = f"[{lab.GATEWAY_IP6}]" if n % 2 else lab.GATEWAY_IP
            path = f"/attrib/{n}"
            curl = lab.popen(lab.client, "curl", "-sS", "-o", "/dev/null", "--max-time", "10",
                             f"http://{host}{path}")
            procs.append(curl)
            assert curl.wait(timeout=30) == 0
            curls[path] = curl.pid  # exited: attributed all the same
        backend_logs_ = {b.index: b.transactions() for b in backends}
        deadline = time.monotonic() + 10
        while sum(map(len, backend_logs_.values())) < REQUESTS and time.monotonic() < deadline:
            time.sleep(0.1)
            backend_logs_ = {b.index: b.transactions() for b in backends}
        out, err = tracer.stop()
        text, _ = lines.stop()
        expected_backends = {}
        for b in backends:
            assert b.proc is not None
            expected_backends[gateway.backend_address(b.index)] = (b.proc.pid, _comm(b.proc.pid), ids[f"b{b.index}"])
        nginx_comm = _comm(worker)
    finally:
        for p in procs:
            if p.poll() is None:
                stop_process(p)
        gateway.stop()
        for b in backends:
            b.stop()
        lab.down()

    traced = [json.loads(line) for line in out.splitlines()]
    front = [t for t in traced if t["backend"].endswith(":80")]
    upstream = [t for t in traced if t["backend"].endswith(":8080")]
    assert sorted(t["path"] for t in front) == sorted(curls), err
    assert sorted(t["path"] for t in upstream) == sorted(curls), err
    assert nginx_comm == "nginx"

    def side(t: dict[str, Any], which: str) -> tuple[object, ...]:
        s = t[f"{which}_process"]
        return (s["pid"], s["comm"], s["container"], s["owner"])

    for t in front:  # curl (client namespace) -> nginx (gateway namespace)
        assert side(t, "client") == (curls[t["path"]], "curl", ids["curl"], "known"), t
        assert t["client_process"]["container_runtime"] == "docker"
        assert t["client_process"]["cgroup"] == f"/{cgroups.parent.name}/docker/{ids['curl']}"
        assert side(t, "backend") == (worker, "nginx", ids["nginx"], "known"), t
    served = set()
    for t in upstream:  # nginx -> a backend (its namespace)
        pid, comm, container = expected_backends[t["backend"]]
        served.add(t["backend"])
        assert side(t, "client") == (worker, "nginx", ids["nginx"], "known"), t
        assert side(t, "backend") == (pid, comm, container, "known"), t
        assert t["backend_process"]["pod"] == (pod1 if container == ids["b1"] else pod2)
    assert served == set(expected_backends)  # both backends, IPv4 and IPv6

    # The lines: the same sides as columns after the transaction's.
    header, *rows = text.splitlines()
    assert header.split()[-4:] == ["CLIENT", "PROCESS", "BACKEND", "PROCESS"]
    assert len(rows) == 2 * REQUESTS
    front_rows = 0
    for row in rows:
        path = row.split()[4]
        if row.split()[2].endswith(":80"):
            front_rows += 1
            assert f"curl[{curls[path]}] docker:{ids['curl'][:12]}" in row, row
        assert f"nginx[{worker}] docker:{ids['nginx'][:12]}" in row, row
    assert front_rows == REQUESTS


def test_process_and_summary_do_not_go_together() -> None:
    result = subprocess.run([sys.executable, "-m", "netbpf", "http", "-i", "lo", "--port", "80", "--process",
                             "--summary", "--duration", "1"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--process" in result.stderr and "Traceback" not in result.stderr
