"""A container and pod from a cgroup v2 path, as the runtimes name their cgroups.

No runtime API is asked: the kernel's view of a container is its cgroup, and
every runtime writes the container id into the cgroup's name:

- Docker, systemd driver: ``/system.slice/docker-<id>.scope``; cgroupfs driver:
  ``/docker/<id>``
- containerd (CRI) under systemd: ``.../cri-containerd-<id>.scope``; cgroupfs:
  ``/kubepods/.../<id>``
- CRI-O: ``.../crio-<id>.scope`` (``crio-conmon-<id>.scope`` is its monitor)
- Podman: ``.../libpod-<id>.scope`` (``libpod-conmon-<id>.scope``: its monitor)
- Kubernetes: ``kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice``
  (systemd driver, the uid's dashes written as underscores) or
  ``/kubepods/burstable/pod<uid>`` (cgroupfs driver)

The innermost match wins (a container's own nested cgroups stay its own).
A path that matches none is no container: ``None``, never a guess.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_ID = r"[0-9a-f]{64}"
# (runtime, pattern of one path component); the id is group 1.
_SCOPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("docker", re.compile(rf"^docker-({_ID})\.scope$")),
    ("containerd", re.compile(rf"^cri-containerd-({_ID})\.scope$")),
    ("cri-o", re.compile(rf"^crio-({_ID})\.scope$")),
    ("podman", re.compile(rf"^libpod-({_ID})\.scope$")),
)
_BARE_ID = re.compile(rf"^({_ID})$")  # cgroupfs drivers: the id alone, under a runtime's folder
_POD_SYSTEMD = re.compile(r"^kubepods(?:-[a-z]+)?-pod([0-9a-f_]{36})\.slice$")
_POD_CGROUPFS = re.compile(r"^pod([0-9a-f-]{36})$")


@dataclass(frozen=True, slots=True)
class Container:
    runtime: str  # docker, containerd, cri-o, podman, kubernetes (cgroupfs: runtime unknown)
    id: str  # the full id, 64 hex digits
    pod: str | None = None  # the Kubernetes pod UID, when the path carries one

    @property
    def short_id(self) -> str:
        return self.id[:12]


def pod_of(path: str) -> str | None:
    """The Kubernetes pod UID in a cgroup path, or None."""
    for part in reversed(path.split("/")):
        m = _POD_SYSTEMD.match(part)
        if m:
            return m.group(1).replace("_", "-")
        m = _POD_CGROUPFS.match(part)
        if m:
            return m.group(1)
    return None


def container_of(path: str) -> Container | None:
    """The container whose cgroup ``path`` is, or is inside of; None for no container."""
    parts = [p for p in path.split("/") if p]
    pod = pod_of(path)
    for i in range(len(parts) - 1, -1, -1):
        part = parts[i]
        for runtime, pattern in _SCOPES:
            m = pattern.match(part)
            if m:
                return Container(runtime, m.group(1), pod)
        m = _BARE_ID.match(part)
        if m and i > 0:
            parent = parts[i - 1]
            if parent == "docker":
                return Container("docker", m.group(1), pod)
            if pod is not None:  # /kubepods/<qos>/pod<uid>/<id>: the CRI runtime is not named
                return Container("kubernetes", m.group(1), pod)
    return None


def matches(container: Container, wanted: str) -> bool:
    """Whether ``wanted`` (a container id or a unique prefix of one, as docker
    accepts, at least 4 digits) names ``container``."""
    wanted = wanted.lower()
    return len(wanted) >= 4 and container.id.startswith(wanted)


def describe(container: Container | None) -> str:
    if container is None:
        return "-"
    text = f"{container.runtime}:{container.short_id}"
    return text + (f" pod {container.pod}" if container.pod else "")
