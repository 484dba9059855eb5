"""The programs ``netbpf accel bench`` measures with, all from Debian and all
written in C, so that their own cost does not hide what a redirect saves:

- sockperf ping-pong (``sockperf sr`` / ``sockperf pp``): round trips per
  second, p50 and p99 round-trip latency (sockperf prints half a round trip;
  doubled here);
- iperf3: a stream of writes of one size, received Gbit/s;
- nginx serving a small file to wrk over 127.0.0.1: requests per second.

Every server listens on 127.0.0.1 only (never dual-stack): the seed's program
breaks the connections of a dual-stack server (see seed_accel.bpf.c), and the
three modes must meet the same servers. Each function raises ClientError with
the tool's own words when a run fails or reports an error, so that a broken
run can never pass for a fast one.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ...errors import NetbpfError
from ...lab import stop_process
from .sandbox import Sandbox

HOST = "127.0.0.1"
SMALL_FILE_BYTES = 1024
TOOLS = {"sockperf": "sockperf", "iperf3": "iperf3", "nginx": "nginx", "wrk": "wrk"}


class ClientError(NetbpfError):
    pass


def missing_tools() -> list[str]:
    return [pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None]


def _wait_listening(sandbox: Sandbox, port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ClientError(f"{what} exited with status {proc.returncode} before listening")
        out = sandbox.run(["ss", "-Hltn", f"sport = :{port}"], None, timeout=10)
        if out.stdout.strip():
            return
        time.sleep(0.05)
    raise ClientError(f"{what} is not listening on {HOST}:{port} after 10 s")


# -- sockperf ping-pong -------------------------------------------------------------------

_VALID = re.compile(r"\[Valid Duration\] RunTime=([\d.]+) sec; SentMessages=(\d+); ReceivedMessages=(\d+)")
_PERCENTILE = re.compile(r"percentile (\d+\.\d+) =\s+([\d.]+)")
_LOSS = re.compile(r"# dropped messages = (\d+); # duplicated messages = (\d+); # out-of-order messages = (\d+)")


def parse_sockperf(text: str) -> dict[str, float]:
    """Round trips/s and p50/p99 round-trip µs from ``sockperf pp`` output."""
    valid, loss = _VALID.search(text), _LOSS.search(text)
    if not valid or not loss:
        raise ClientError("sockperf printed no statistics")
    if any(int(n) for n in loss.groups()):
        raise ClientError(f"sockperf saw dropped, duplicated or out-of-order messages: {loss.group(0)}")
    seconds, received = float(valid.group(1)), int(valid.group(3))
    if received <= 0 or seconds <= 0:
        raise ClientError("sockperf received no answer")
    pct = {float(p): float(v) for p, v in _PERCENTILE.findall(text)}
    if 50.0 not in pct or 99.0 not in pct:
        raise ClientError("sockperf printed no p50/p99")
    return {"rate": received / seconds, "p50": 2 * pct[50.0], "p99": 2 * pct[99.0]}


def ping_pong(sandbox: Sandbox, cgroup: str, port: int, size: int, seconds: float) -> dict[str, float]:
    server = sandbox.popen(["sockperf", "sr", "--tcp", "-i", HOST, "-p", str(port)], cgroup,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_listening(sandbox, port, server, "sockperf server")
        out = sandbox.run(["sockperf", "pp", "--tcp", "-i", HOST, "-p", str(port), "-m", str(size),
                           "-t", f"{seconds:g}"], cgroup, timeout=seconds + 30)
        if out.returncode != 0:
            raise ClientError(f"sockperf pp -m {size}: exit {out.returncode}: {out.stderr.strip()[-200:]}")
        return parse_sockperf(out.stdout + out.stderr)
    finally:
        stop_process(server, timeout=5)


# -- iperf3 stream -------------------------------------------------------------------------

def stream(sandbox: Sandbox, cgroup: str, port: int, length: str, seconds: float) -> float:
    """Received Gbit/s of one iperf3 stream written ``length`` bytes at a time."""
    server = sandbox.popen(["iperf3", "-s", "-1", "-B", HOST, "-p", str(port)], cgroup,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_listening(sandbox, port, server, "iperf3 server")
        out = sandbox.run(["iperf3", "-c", HOST, "-p", str(port), "-J", "-t", f"{seconds:g}",
                           "-l", length], cgroup, timeout=seconds + 30)
        try:
            report = json.loads(out.stdout or "{}")
        except json.JSONDecodeError:
            report = {}
        error = report.get("error", "")
        if error or out.returncode != 0 or "end" not in report:
            raise ClientError(f"iperf3 -l {length}: {error or out.stderr.strip()[-200:] or 'no report'}")
        received = report["end"]["sum_received"]
        if received["bytes"] <= 0:
            raise ClientError(f"iperf3 -l {length}: nothing received")
        return float(received["bits_per_second"]) / 1e9
    finally:
        stop_process(server, timeout=5)


# -- nginx + wrk ---------------------------------------------------------------------------

_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_REQUESTS = re.compile(r"(\d+) requests in ")


def parse_wrk(text: str) -> dict[str, float]:
    """Requests/s from wrk's output; ClientError on any error it reports."""
    rps, requests = _RPS.search(text), _REQUESTS.search(text)
    if not rps or not requests:
        raise ClientError("wrk printed no result")
    problems = []
    if (m := _NON2XX.search(text)) and int(m.group(1)):
        problems.append(f"{m.group(1)} non-2xx/3xx responses")
    if (m := _SOCKET_ERRORS.search(text)) and any(int(n) for n in m.groups()):
        problems.append(m.group(0))
    if problems:
        raise ClientError("wrk: " + "; ".join(problems))
    if int(requests.group(1)) <= 0:
        raise ClientError("wrk: no request answered")
    return {"rate": float(rps.group(1)), "requests": float(requests.group(1))}


def nginx_conf(d: Path, port: int) -> str:
    return f"""\
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen {HOST}:{port};
        root {d}/www;
    }}
}}
"""


class Nginx:
    """nginx serving ``/small`` (1 KiB) on 127.0.0.1:port, in a cgroup of the sandbox."""

    def __init__(self, sandbox: Sandbox, cgroup: str, port: int) -> None:
        self.sandbox, self.cgroup, self.port = sandbox, cgroup, port
        self.dir = Path(tempfile.mkdtemp(prefix="netbpf-accel-nginx-"))
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Nginx:
        d = self.dir
        # nginx's workers run as nobody: they must be able to reach and read the file.
        d.chmod(0o755)
        (d / "www").mkdir(mode=0o755)
        (d / "www" / "small").write_bytes(bytes(i % 251 for i in range(SMALL_FILE_BYTES)))
        (d / "www" / "small").chmod(0o644)
        (d / "nginx.conf").write_text(nginx_conf(d, self.port))
        try:
            self.proc = self.sandbox.popen(
                ["nginx", "-e", str(d / "error.log"), "-p", str(d), "-c", str(d / "nginx.conf"),
                 "-g", "daemon off;"], self.cgroup,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _wait_listening(self.sandbox, self.port, self.proc, "nginx")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=5)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self) -> str:
        return f"http://{HOST}:{self.port}/small"


def wrk(sandbox: Sandbox, cgroup: str, url: str, seconds: float, connections: int = 8) -> dict[str, float]:
    out = sandbox.run(["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", url], cgroup,
                      timeout=seconds + 30)
    if out.returncode != 0:
        raise ClientError(f"wrk: exit {out.returncode}: {out.stderr.strip()[-200:]}")
    return parse_wrk(out.stdout)


def web(sandbox: Sandbox, cgroup: str, port: int, seconds: float) -> dict[str, float]:
    with Nginx(sandbox, cgroup, port) as server:
        return wrk(sandbox, cgroup, server.url(), seconds)
