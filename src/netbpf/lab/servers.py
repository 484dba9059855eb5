"""Servers for the lab: the gateway's load balancer, backends, and a client.

- :class:`NginxGateway`: Debian's nginx in the gateway namespace, proxying
  port 80 to the backends with an ``upstream`` whose weights can be skewed
  (and changed live, with a reload), so the lab has a real load balancer
  whose spread the tools can judge.
- :class:`Backend`: an HTTP/1.1 server in a backend namespace that logs every
  transaction it serves (method, path, status, request and response body
  sizes, tag) as a JSON line, so that a tracer's report can be checked
  against the servers' own record, transaction by transaction. The request
  path chooses the answer: ``?size=N&status=S&chunked=1&close=1``.
- :class:`NginxBackend`: nginx answering a fixed small body, for load tests
  where the backend must not be the bottleneck.
- :func:`run_client`: sends a planned list of requests (GET/POST/PUT/HEAD/
  DELETE, bodies up to megabytes, chunked, keep-alive or not, pipelined,
  ``Expect: 100-continue``, tagged) and records what came back.

Every process started here runs in a lab namespace and is stopped by
``stop()`` or by ``Lab.down()``; files live in a temporary directory.
"""
from __future__ import annotations

import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import Lab, LabError, stop_process

BACKEND_PORT = 8080
GATEWAY_PORT = 80
TAG_HEADER = "X-Test-Id"


def _workdir(name: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=f"netbpf-{name}-"))
    path.chmod(0o755)  # nginx workers run as nobody and must reach their temp dirs
    return path


def _wait_port(lab: Lab, netns: str, host: str, port: int, proc: subprocess.Popen[Any],
               timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    target = f"[{host}]" if ":" in host else host
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(f"[{netns}] server on {target}:{port} exited with {proc.returncode}")
        probe = lab.run(netns, "bash", "-c", f"exec 3<>/dev/tcp/{host}/{port}", check=False, timeout=5)
        if probe.returncode == 0:
            return
        time.sleep(0.05)
    raise LabError(f"[{netns}] nothing listens on {target}:{port} after {timeout} s")


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            found |= {int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()}
    except OSError:
        pass
    return found


# -- the gateway ---------------------------------------------------------------------------
class NginxGateway:
    """nginx on port 80 of the gateway, load-balancing over the lab's backends."""

    def __init__(self, lab: Lab, weights: Sequence[int] | None = None, family: str = "ipv4",
                 backend_port: int = BACKEND_PORT, listen_port: int = GATEWAY_PORT,
                 workers: int = 1, keepalive: int = 32, workdir: Path | None = None) -> None:
        if family not in ("ipv4", "ipv6", "mixed"):
            raise LabError(f"family must be ipv4, ipv6 or mixed, not {family}")
        self.lab = lab
        self.weights = list(weights or [1] * len(lab.backends))
        if len(self.weights) != len(lab.backends) or any(w < 1 for w in self.weights):
            raise LabError(f"one weight >= 1 per backend ({len(lab.backends)}), got {self.weights}")
        self.family = family
        self.backend_port = backend_port
        self.listen_port = listen_port
        self.workers = workers
        self.keepalive = keepalive
        self.dir = workdir or _workdir(f"{lab.prefix}-gw")
        self.proc: subprocess.Popen[bytes] | None = None

    def backend_address(self, index: int) -> str:
        """How nginx (and a tracer's BACKEND column) names backend ``index`` (1-based)."""
        backend = self.lab.backends[index - 1]
        six = self.family == "ipv6" or (self.family == "mixed" and index % 2 == 0)
        return f"[{backend.ip6}]:{self.backend_port}" if six else f"{backend.ip}:{self.backend_port}"

    def config(self) -> str:
        servers = "\n".join(f"        server {self.backend_address(i)} weight={w};"
                            for i, w in enumerate(self.weights, start=1))
        d = self.dir
        return f"""\
worker_processes {self.workers};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    client_max_body_size 0;
    keepalive_requests 100000;
    upstream backends {{
{servers}
        keepalive {self.keepalive};
    }}
    server {{
        listen {self.listen_port} reuseport;
        listen [::]:{self.listen_port} ipv6only=on reuseport;
        location / {{
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            # Stream bodies both ways (chunked requests stay chunked upstream) and
            # never send a request twice: each backend log line is one request.
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_next_upstream off;
        }}
    }}
}}
"""

    def _write(self) -> Path:
        path = self.dir / "nginx.conf"
        path.write_text(self.config())
        return path

    def start(self, detached: bool = False) -> NginxGateway:
        conf = self._write()
        self.lab.run(self.lab.gateway, "nginx", "-t", "-q", "-e", str(self.dir / "error.log"),
                     "-p", str(self.dir), "-c", str(conf))
        self.proc = self.lab.popen(self.lab.gateway, "nginx", "-e", str(self.dir / "error.log"),
                                   "-p", str(self.dir), "-c", str(conf), "-g", "daemon off;",
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=detached)
        _wait_port(self.lab, self.lab.client, self.lab.GATEWAY_IP, self.listen_port, self.proc)
        return self

    def set_weights(self, weights: Sequence[int], timeout: float = 10) -> None:
        """New weights, applied by a reload; returns once the new workers serve."""
        if len(weights) != len(self.lab.backends) or any(w < 1 for w in weights):
            raise LabError(f"one weight >= 1 per backend, got {list(weights)}")
        self.weights = list(weights)
        self._write()
        pid = int((self.dir / "nginx.pid").read_text())
        old = _children(pid)
        os.kill(pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = _children(pid)
            if now and not (now & old):
                return
            time.sleep(0.05)
        raise LabError("nginx did not reload within {timeout} s")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, signal.SIGQUIT)  # graceful: finish the requests in flight
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


# -- backends ------------------------------------------------------------------------------
class Backend:
    """The logging HTTP server of this module, in a backend namespace."""

    def __init__(self, lab: Lab, index: int, port: int = BACKEND_PORT, log: Path | None = None) -> None:
        self.lab = lab
        self.index = index
        self.netns = lab.backends[index - 1].netns
        self.port = port
        self.dir = _workdir(f"{self.netns}")
        self.log = log or self.dir / "transactions.jsonl"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, detached: bool = False) -> Backend:
        self.proc = self.lab.popen(self.netns, sys.executable, "-m", "netbpf.lab.servers", "backend",
                                   "--port", str(self.port), "--log", str(self.log),
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL if detached else subprocess.PIPE,
                                   start_new_session=detached)
        _wait_port(self.lab, self.netns, "127.0.0.1", self.port, self.proc)
        return self

    def transactions(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


class NginxBackend:
    """nginx answering every request with a fixed body: a backend that is never the bottleneck."""

    def __init__(self, lab: Lab, index: int, body: str = "ok\n", port: int = BACKEND_PORT,
                 workers: int = 1) -> None:
        self.lab = lab
        self.netns = lab.backends[index - 1].netns
        self.port = port
        self.dir = _workdir(self.netns)
        self.body = body
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> NginxBackend:
        d = self.dir
        body = self.body.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        (d / "nginx.conf").write_text(f"""\
worker_processes {self.workers};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 1000000;
    server {{
        listen {self.port} reuseport;
        listen [::]:{self.port} ipv6only=on reuseport;
        location / {{ default_type text/plain; return 200 "{body}"; }}
    }}
}}
""")
        self.proc = self.lab.popen(self.netns, "nginx", "-e", str(d / "error.log"), "-p", str(d),
                                   "-c", str(d / "nginx.conf"), "-g", "daemon off;",
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.lab, self.netns, "127.0.0.1", self.port, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, signal.SIGQUIT)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


# -- what `netbpf lab up` leaves running ----------------------------------------------------
IPERF_PORT = 5201
SERVICES_DIR = Path("/run/netbpf-lab")


def _listening(lab: Lab, netns: str, port: int) -> bool:
    return bool(lab.run(netns, "ss", "-Hltn", f"sport = :{port}", check=False).stdout.strip())


def start_services(lab: Lab, weights: Sequence[int] | None = None) -> None:
    """Start, detached, what the README's examples talk to: the HTTP server of this module
    on port 8080 of every backend, nginx on port 80 of the gateway balancing over them
    (``weights``, even by default) and an iperf3 server on backend 1. What already listens
    is left alone (``up`` twice starts nothing twice). They run in the lab's namespaces
    until ``Lab.down()`` kills every process there."""
    if not lab.backends:
        return
    for b in lab.backends:
        if not _listening(lab, b.netns, BACKEND_PORT):
            # no transaction log: a lab left up under load would fill /run
            Backend(lab, b.index, log=Path(os.devnull)).start(detached=True)
    workdir = SERVICES_DIR / lab.prefix
    if not _listening(lab, lab.gateway, GATEWAY_PORT):
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True, mode=0o755)
        workdir.chmod(0o755)  # nginx workers run as nobody
        NginxGateway(lab, weights=weights, workdir=workdir).start(detached=True)
    elif weights is not None and (workdir / "nginx.pid").exists():
        NginxGateway(lab, weights=[1] * len(lab.backends), workdir=workdir).set_weights(weights)
    be1 = lab.backends[0]
    if not _listening(lab, be1.netns, IPERF_PORT):
        proc = lab.popen(be1.netns, "iperf3", "-s", "-p", str(IPERF_PORT), stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        _wait_port(lab, be1.netns, be1.ip, IPERF_PORT, proc)


def remove_services(lab: Lab) -> None:
    """After ``Lab.down()`` (which stopped the processes): their files."""
    shutil.rmtree(SERVICES_DIR / lab.prefix, ignore_errors=True)
    try:
        SERVICES_DIR.rmdir()
    except OSError:
        pass


def describe_services(lab: Lab) -> str:
    """What listens in the lab, read from the kernel (ss), not from what was asked."""
    lines = []
    gw = [b for b in lab.backends if _listening(lab, b.netns, BACKEND_PORT)]
    if gw:
        lines.append(f"  HTTP on port {BACKEND_PORT} of backend{'s' if len(gw) > 1 else ''} "
                     + ", ".join(b.ip for b in gw))
    if _listening(lab, lab.gateway, GATEWAY_PORT):
        conf = SERVICES_DIR / lab.prefix / "nginx.conf"
        weights = [line.split("weight=")[1].rstrip(";") for line in
                   (conf.read_text().splitlines() if conf.exists() else []) if "weight=" in line]
        spread = f" with weights {':'.join(weights)}" if weights else ""
        lines.append(f"  nginx on {lab.GATEWAY_IP}:{GATEWAY_PORT} balancing over them{spread}")
    if lab.backends and _listening(lab, lab.backends[0].netns, IPERF_PORT):
        lines.append(f"  iperf3 server on {lab.backends[0].ip}:{IPERF_PORT}")
    return "\n".join(lines) if lines else "  no servers running"


# -- the backend server itself (runs as `python -m netbpf.lab.servers backend`) -------------
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "netbpf-lab"
    log_lock = threading.Lock()
    log_file: Any = None

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> tuple[int, bool]:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            total = 0
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return total, True
                self._skip(size)
                self.rfile.readline(8)
                total += size
        length = int(self.headers.get("Content-Length") or 0)
        self._skip(length)
        return length, False

    def _skip(self, size: int) -> None:
        """Read and drop ``size`` bytes of the request body."""
        while size:
            got = len(self.rfile.read(min(size, 1 << 16)))
            if not got:
                raise ConnectionError("request body cut short")
            size -= got

    def _serve(self) -> None:
        request_body, chunked_request = self._read_body()
        query = parse_qs(urlsplit(self.path).query)
        size = int(query.get("size", ["0"])[0])
        status = int(query.get("status", ["200"])[0])
        chunked = query.get("chunked", ["0"])[0] == "1"
        close = query.get("close", ["0"])[0] == "1"
        no_body = self.command == "HEAD" or status in (204, 304) or 100 <= status < 200
        body = b"" if no_body else (b"0123456789abcdef" * (size // 16 + 1))[:size]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        if status not in (204, 304):
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            elif close:
                self.send_header("Connection", "close")  # the body ends when the connection does
                self.close_connection = True
            else:
                self.send_header("Content-Length", str(size))
        self.end_headers()
        if not no_body and chunked:
            rng = random.Random(self.path)
            pos = 0
            while pos < len(body):
                piece = body[pos:pos + rng.randint(1, 70000)]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                pos += len(piece)
            self.wfile.write(b"0\r\n\r\n")
        elif body:
            self.wfile.write(body)
        self.wfile.flush()
        record = {"method": self.command, "path": self.path, "status": status,
                  "request_body": request_body, "response_body": len(body),
                  "chunked_request": chunked_request, "chunked_response": chunked and not no_body,
                  "client": f"{self.client_address[0]}:{self.client_address[1]}",
                  "tag": self.headers.get(TAG_HEADER)}
        with self.log_lock:
            self.log_file.write(json.dumps(record) + "\n")
            self.log_file.flush()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _serve


class _DualStackServer(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    request_queue_size = 1024

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def serve_backend(port: int, log: str) -> None:
    with open(log, "a", buffering=1 << 16) as log_file:
        _Handler.log_file = log_file
        server = _DualStackServer(("::", port), _Handler)
        signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
        try:
            server.serve_forever(poll_interval=0.2)
        finally:
            server.server_close()


# -- the client ----------------------------------------------------------------------------
@dataclass
class PlannedRequest:
    id: int
    method: str
    size: int  # response body asked for
    status: int
    body: int  # request body
    chunked_request: bool
    chunked_response: bool
    close_response: bool  # the backend answers without a length and closes
    keepalive: bool
    expect_continue: bool
    ipv6: bool
    tag: str | None
    pipeline: int  # > 0: sent together with the other requests of this group

    @property
    def path(self) -> str:
        query = f"size={self.size}&status={self.status}"
        if self.chunked_response:
            query += "&chunked=1"
        if self.close_response:
            query += "&close=1"
        return f"/r/{self.id}?{query}"


def _body_size(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.2:
        return 0
    if roll < 0.6:
        return rng.randint(1, 1000)
    if roll < 0.9:
        return rng.randint(1000, 65536)
    if roll < 0.98:
        return rng.randint(65536, 1 << 20)
    return 1 << 20


def make_plan(count: int, seed: int = 1, tag_share: float = 0.2) -> list[PlannedRequest]:
    """A reproducible mix of requests covering what an HTTP tracer must get right."""
    rng = random.Random(seed)
    plan = []
    pipeline_group = 0
    i = 0
    while i < count:
        if rng.random() < 0.02 and count - i >= 3:
            pipeline_group += 1
            ipv6 = rng.random() < 0.5  # one connection carries the group
            for _ in range(3):
                plan.append(PlannedRequest(i, "GET", rng.randint(0, 5000), 200, 0, False, False, False,
                                           True, False, ipv6, f"pipe-{i}", pipeline_group))
                i += 1
            continue
        method = rng.choices(["GET", "POST", "PUT", "HEAD", "DELETE"], [45, 35, 5, 8, 7])[0]
        body = _body_size(rng) if method in ("POST", "PUT") else 0
        status = rng.choices([200, 201, 204, 304, 404, 500], [80, 5, 4, 3, 5, 3])[0]
        no_body = method == "HEAD" or status in (204, 304)
        plan.append(PlannedRequest(
            id=i, method=method, size=_body_size(rng), status=status, body=body,
            chunked_request=body > 0 and rng.random() < 0.25,
            chunked_response=not no_body and rng.random() < 0.15,
            close_response=not no_body and rng.random() < 0.03,
            keepalive=rng.random() < 0.7,
            expect_continue=body > 0 and rng.random() < 0.1,
            ipv6=rng.random() < 0.5,
            tag=f"tag-{i}" if rng.random() < tag_share else None,
            pipeline=0))
        i += 1
    for p in plan:
        if p.close_response and p.chunked_response:
            p.chunked_response = False
    return plan


class _KeepOpen:
    """One buffered reader shared by the responses of a pipelined batch."""

    def __init__(self, fp: Any) -> None:
        self.fp = fp

    def makefile(self, mode: str) -> Any:
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fp, name)

    def close(self) -> None:
        pass


def _chunks(size: int, rng: random.Random) -> Any:
    pos = 0
    data = b"x" * size
    while pos < size:
        step = rng.randint(1, 100000)
        yield data[pos:pos + step]
        pos += step


def run_client(plan: list[PlannedRequest], host4: str, host6: str, port: int, workers: int) -> list[dict[str, Any]]:
    """Send the plan over ``workers`` threads; one result per request."""
    results: list[dict[str, Any]] = []
    lock = threading.Lock()
    groups: list[list[PlannedRequest]] = []
    for p in plan:
        if p.pipeline and groups and groups[-1][0].pipeline == p.pipeline:
            groups[-1].append(p)
        else:
            groups.append([p])
    queue = list(reversed(groups))

    def worker(n: int) -> None:
        conns: dict[bool, http.client.HTTPConnection] = {}
        rng = random.Random(n)
        while True:
            with lock:
                if not queue:
                    break
                group = queue.pop()
            if group[0].pipeline:
                out = _pipelined(group, host6 if group[0].ipv6 else host4, port)
            else:
                out = [_one(group[0], conns, host4, host6, port, rng)]
            with lock:
                results.extend(out)
        for conn in conns.values():
            conn.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(results, key=lambda r: r["id"])


def _one(p: PlannedRequest, conns: dict[bool, http.client.HTTPConnection], host4: str, host6: str,
         port: int, rng: random.Random) -> dict[str, Any]:
    conn = conns.get(p.ipv6)
    if conn is None:
        conn = conns[p.ipv6] = http.client.HTTPConnection(host6 if p.ipv6 else host4, port, timeout=60)
    headers = {TAG_HEADER: p.tag} if p.tag else {}
    if not p.keepalive:
        headers["Connection"] = "close"
    if p.expect_continue:
        headers["Expect"] = "100-continue"
    body: Any = None
    if p.method in ("POST", "PUT"):
        if p.chunked_request:
            body = _chunks(p.body, rng)
            headers["Transfer-Encoding"] = "chunked"
        else:
            body = b"y" * p.body
            headers["Content-Length"] = str(p.body)
    conn.request(p.method, p.path, body=body, headers=headers, encode_chunked=p.chunked_request)
    response = conn.getresponse()
    data = response.read()
    result = {"id": p.id, "status": response.status, "response_body": len(data), "request_body": p.body}
    if not p.keepalive or response.will_close:
        conn.close()
        del conns[p.ipv6]
    return result


def _pipelined(group: list[PlannedRequest], host: str, port: int) -> list[dict[str, Any]]:
    with socket.create_connection((host, port), timeout=60) as sock:
        wire = b"".join(f"GET {p.path} HTTP/1.1\r\nHost: gw\r\n{TAG_HEADER}: {p.tag}\r\n\r\n".encode()
                        for p in group)
        sock.sendall(wire)
        shared = _KeepOpen(sock.makefile("rb"))
        out = []
        for p in group:
            response = http.client.HTTPResponse(shared, method="GET")  # type: ignore[arg-type]
            response.begin()
            out.append({"id": p.id, "status": response.status, "response_body": len(response.read()),
                        "request_body": 0})
        return out


def client_in_lab(lab: Lab, plan: list[PlannedRequest], workers: int = 4,
                  timeout: float = 600) -> list[dict[str, Any]]:
    """Run :func:`run_client` in the lab's client namespace (a separate process)."""
    with tempfile.TemporaryDirectory(prefix="netbpf-client-") as d:
        plan_file, out_file = Path(d) / "plan.json", Path(d) / "results.json"
        plan_file.write_text(json.dumps([asdict(p) for p in plan]))
        lab.run(lab.client, sys.executable, "-m", "netbpf.lab.servers", "client", "--plan", str(plan_file),
                "--out", str(out_file), "--workers", str(workers), timeout=timeout)
        results: list[dict[str, Any]] = json.loads(out_file.read_text())
        return results


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m netbpf.lab.servers")
    sub = parser.add_subparsers(dest="role", required=True)
    b = sub.add_parser("backend", help="the logging HTTP backend")
    b.add_argument("--port", type=int, default=BACKEND_PORT)
    b.add_argument("--log", required=True)
    c = sub.add_parser("client", help="send a plan of requests to the gateway")
    c.add_argument("--plan", required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--workers", type=int, default=4)
    c.add_argument("--host4", default=Lab.GATEWAY_IP)
    c.add_argument("--host6", default=Lab.GATEWAY_IP6)
    c.add_argument("--port", type=int, default=GATEWAY_PORT)
    args = parser.parse_args(argv)
    if args.role == "backend":
        serve_backend(args.port, args.log)
    else:
        plan = [PlannedRequest(**p) for p in json.loads(Path(args.plan).read_text())]
        results = run_client(plan, args.host4, args.host6, args.port, args.workers)
        Path(args.out).write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
