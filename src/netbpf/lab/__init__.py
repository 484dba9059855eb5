"""The lab: network namespaces joined by veth pairs, standing for a client, a
gateway and N backends, optionally with VXLAN between gateway and backends.

    {prefix}-client  eth0 10.0.1.2/24 fd00:1::2/64 ---- c0 10.0.1.1 fd00:1::1  {prefix}-gw
    {prefix}-be{i}   eth0 10.0.{10+i}.2/24 fd00:{10+i}::2/64 ---- b{i} .1       {prefix}-gw

With ``vxlan=True`` the gateway-backend link ``b{i}``/``eth0`` is a VXLAN
device (VNI 100+i, UDP 4789) over an underlay veth ``u{i}`` 172.16.{i}.1 ---
``u0`` 172.16.{i}.2, so the gateway sees encapsulated frames on ``u{i}``.
Interface names are the same in every lab (each lives in its own namespace),
so tests can run labs side by side under different prefixes. The gateway
routes between client and backends. Traffic never leaves these namespaces.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from ..errors import NetbpfError, UsageError


class LabError(NetbpfError):
    pass


@dataclass(frozen=True, slots=True)
class Backend:
    index: int
    netns: str
    ip: str
    ip6: str
    gateway_ip: str
    gateway_ip6: str
    gateway_dev: str  # interface in the gateway namespace facing this backend
    underlay_dev: str  # with VXLAN: the gateway's underlay veth; else == gateway_dev


class Lab:
    CLIENT_IP, CLIENT_IP6 = "10.0.1.2", "fd00:1::2"
    GATEWAY_IP, GATEWAY_IP6 = "10.0.1.1", "fd00:1::1"
    CLIENT_DEV, GATEWAY_CLIENT_DEV = "eth0", "c0"

    def __init__(self, prefix: str = "nb", backends: int = 3, vxlan: bool = False) -> None:
        if not prefix or len(prefix) > 20 or not prefix.replace("-", "").isalnum():
            raise UsageError(f"bad lab prefix {prefix!r}: letters, digits and '-', at most 20")
        if not 0 <= backends <= 50:
            raise UsageError("a lab has 0 to 50 backends")
        self.prefix, self.vxlan = prefix, vxlan
        self.client = f"{prefix}-client"
        self.gateway = f"{prefix}-gw"
        self.backends = [
            Backend(
                index=i, netns=f"{prefix}-be{i}",
                ip=f"10.0.{10 + i}.2", ip6=f"fd00:{10 + i}::2",
                gateway_ip=f"10.0.{10 + i}.1", gateway_ip6=f"fd00:{10 + i}::1",
                gateway_dev=f"b{i}", underlay_dev=f"u{i}" if vxlan else f"b{i}",
            )
            for i in range(1, backends + 1)
        ]

    @classmethod
    def find(cls, prefix: str = "nb") -> Lab | None:
        """The lab that is up under ``prefix``, as built (its backends counted, VXLAN
        seen on the gateway), or None: ``show`` and ``down`` need no ``--backends``."""
        present = set(_named_namespaces())
        if f"{prefix}-client" not in present or f"{prefix}-gw" not in present:
            return None
        count = 0
        while f"{prefix}-be{count + 1}" in present and count < 50:
            count += 1
        lab = cls(prefix, count)
        vxlan = count > 0 and lab._gateway_devices() >= {"u1"}
        return cls(prefix, count, vxlan) if vxlan else lab

    @property
    def namespaces(self) -> list[str]:
        return [self.client, self.gateway, *(b.netns for b in self.backends)]

    # -- running things inside ------------------------------------------------------------
    @staticmethod
    def _ip(*args: str) -> None:
        result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LabError(f"ip {' '.join(args)}: {result.stderr.strip()}")

    def run(self, netns: str, *argv: str, check: bool = True, timeout: float = 60,
            **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run a command in one of the lab's namespaces and wait for it."""
        kwargs.setdefault("capture_output", True)
        result = subprocess.run(["ip", "netns", "exec", netns, *argv], text=True, timeout=timeout,
                                check=False, **kwargs)
        if check and result.returncode != 0:
            raise LabError(f"[{netns}] {' '.join(argv)} exited {result.returncode}: "
                           f"{(result.stderr or '').strip()[-500:]}")
        return result

    def popen(self, netns: str, *argv: str, **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a command in a namespace (the caller stops it)."""
        return subprocess.Popen(["ip", "netns", "exec", netns, *argv], **kwargs)

    def sysctl(self, netns: str, key: str, value: str) -> None:
        self.run(netns, "sysctl", "-qw", f"{key}={value}")

    # -- building ---------------------------------------------------------------------------
    def exists(self) -> bool:
        present = set(_named_namespaces())
        return all(ns in present for ns in self.namespaces)

    def up(self) -> Lab:
        """Build the lab; a complete lab already there is left as it is."""
        if self.exists() and self._complete():
            return self
        found = Lab.find(self.prefix)
        if found is not None:
            found.down()  # all of the lab there, also backends this one does not have
        self.down()
        try:
            self._build()
        except BaseException:
            self.down()
            raise
        return self

    def _complete(self) -> bool:
        wanted = {self.GATEWAY_CLIENT_DEV, *(b.gateway_dev for b in self.backends),
                  *(b.underlay_dev for b in self.backends)}
        have = self._gateway_devices()
        # one more backend, or VXLAN where none was asked for, is another lab
        unwanted = {f"b{len(self.backends) + 1}", *(() if self.vxlan else ("u1",))}
        return wanted <= have and not unwanted & have

    def _gateway_devices(self) -> set[str]:
        out = self.run(self.gateway, "ip", "-o", "link", "show", check=False).stdout
        return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}

    def _build(self) -> None:
        for ns in self.namespaces:
            self._ip("netns", "add", ns)
            self._ip("-n", ns, "link", "set", "lo", "up")
        self._veth(self.client, self.CLIENT_DEV, self.gateway, self.GATEWAY_CLIENT_DEV)
        self._address(self.client, self.CLIENT_DEV, self.CLIENT_IP, self.CLIENT_IP6)
        self._address(self.gateway, self.GATEWAY_CLIENT_DEV, self.GATEWAY_IP, self.GATEWAY_IP6)
        self._ip("-n", self.client, "route", "add", "default", "via", self.GATEWAY_IP)
        self._ip("-n", self.client, "-6", "route", "add", "default", "via", self.GATEWAY_IP6)
        for b in self.backends:
            if self.vxlan:
                self._veth(b.netns, "u0", self.gateway, b.underlay_dev)
                under_gw, under_be = f"172.16.{b.index}.1", f"172.16.{b.index}.2"
                self._ip("-n", self.gateway, "addr", "add", f"{under_gw}/24", "dev", b.underlay_dev)
                self._ip("-n", b.netns, "addr", "add", f"{under_be}/24", "dev", "u0")
                vni = str(100 + b.index)
                for ns, dev, local, remote, lower in ((self.gateway, b.gateway_dev, under_gw, under_be, b.underlay_dev),
                                                      (b.netns, "eth0", under_be, under_gw, "u0")):
                    self._ip("-n", ns, "link", "add", dev, "type", "vxlan", "id", vni, "local", local,
                             "remote", remote, "dstport", "4789", "dev", lower)
                    self._ip("-n", ns, "link", "set", dev, "up")
            else:
                self._veth(b.netns, "eth0", self.gateway, b.gateway_dev)
            self._address(self.gateway, b.gateway_dev, b.gateway_ip, b.gateway_ip6)
            self._address(b.netns, "eth0", b.ip, b.ip6)
            self._ip("-n", b.netns, "route", "add", "default", "via", b.gateway_ip)
            self._ip("-n", b.netns, "-6", "route", "add", "default", "via", b.gateway_ip6)
        self.sysctl(self.gateway, "net.ipv4.ip_forward", "1")
        self.sysctl(self.gateway, "net.ipv6.conf.all.forwarding", "1")

    def _veth(self, ns_a: str, dev_a: str, ns_b: str, dev_b: str) -> None:
        self._ip("link", "add", dev_a, "netns", ns_a, "type", "veth", "peer", "name", dev_b, "netns", ns_b)
        self._ip("-n", ns_a, "link", "set", dev_a, "up")
        self._ip("-n", ns_b, "link", "set", dev_b, "up")

    def _address(self, ns: str, dev: str, ip: str, ip6: str) -> None:
        self._ip("-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
        self._ip("-n", ns, "-6", "addr", "add", f"{ip6}/64", "dev", dev, "nodad")

    def down(self) -> None:
        """Stop every process left in the lab's namespaces and delete them (idempotent)."""
        present = set(_named_namespaces())
        for ns in self.namespaces:
            if ns not in present:
                continue
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True,
                                  check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            self._ip("netns", "del", ns)
        deadline = time.monotonic() + 5
        while any(ns in _named_namespaces() for ns in self.namespaces) and time.monotonic() < deadline:
            time.sleep(0.05)

    def wait_reachable(self, timeout: float = 5) -> None:
        """Wait until the client can ping every backend over IPv4 and IPv6."""
        deadline = time.monotonic() + timeout
        targets = [ip for b in self.backends for ip in (b.ip, b.ip6)] or [self.GATEWAY_IP, self.GATEWAY_IP6]
        for ip in targets:
            while self.run(self.client, "ping", "-c1", "-W1", ip, check=False).returncode != 0:
                if time.monotonic() > deadline:
                    raise LabError(f"{ip} not reachable from {self.client}")
                time.sleep(0.1)

    def wait_listening(self, netns: str, port: int, timeout: float = 20) -> None:
        """Wait until a TCP socket listens on ``port`` in ``netns`` (read with ss, so
        no probe connection shows up in what a test counts)."""
        deadline = time.monotonic() + timeout
        while not self.run(netns, "ss", "-Hltn", f"sport = :{port}").stdout.strip():
            if time.monotonic() > deadline:
                raise LabError(f"nothing listens on port {port} in {netns}")
            time.sleep(0.05)

    def describe(self) -> str:
        lines = [f"lab {self.prefix}: client {self.client} ({self.CLIENT_IP}, {self.CLIENT_IP6}) -> "
                 f"gateway {self.gateway} ({self.GATEWAY_IP} on {self.GATEWAY_CLIENT_DEV})"]
        for b in self.backends:
            via = f" via VXLAN {b.gateway_dev} over {b.underlay_dev}" if self.vxlan else ""
            lines.append(f"  backend {b.index}: {b.netns} {b.ip} {b.ip6} (gateway side {b.gateway_dev}{via})")
        return "\n".join(lines)


def stop_process(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    """Signal a process we started and wait for it; kill it if it has not gone after `timeout`."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _named_namespaces() -> list[str]:
    from ..netns import named

    return named()
