"""Container and pod ids from cgroup paths, as Docker, containerd, CRI-O, Podman and Kubernetes write them."""
from __future__ import annotations

import pytest

from netbpf.attrib.container import Container, container_of, describe, matches, pod_of

ID = "3f4e8c1b2a7d9e0f" * 4
UID = "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"


@pytest.mark.parametrize(("path", "expected"), [
    (f"/system.slice/docker-{ID}.scope", Container("docker", ID)),
    (f"/docker/{ID}", Container("docker", ID)),
    (f"/system.slice/docker-{ID}.scope/init.scope", Container("docker", ID)),  # systemd inside
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID.replace('-', '_')}.slice/"
     f"cri-containerd-{ID}.scope", Container("containerd", ID, UID)),
    (f"/kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice/crio-{ID}.scope",
     Container("cri-o", ID, UID)),
    (f"/kubepods/besteffort/pod{UID}/{ID}", Container("kubernetes", ID, UID)),
    (f"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope",
     Container("podman", ID)),
    (f"/machine.slice/libpod-{ID}.scope/container", Container("podman", ID)),
])
def test_runtimes(path: str, expected: Container) -> None:
    assert container_of(path) == expected


@pytest.mark.parametrize("path", [
    "/", "", "/user.slice/user-1000.slice/session-3.scope", "/system.slice/nginx.service",
    f"/system.slice/docker-{ID[:-1]}.scope",  # 63 digits: not an id
    f"/{ID}",  # a bare id under no runtime folder and no pod: nothing says it is a container
    f"/system.slice/libpod-conmon-{ID}.scope",  # podman's monitor, not the container
    f"/system.slice/crio-conmon-{ID}.scope",
    f"/system.slice/docker-{ID.upper()}.scope",
])
def test_not_containers(path: str) -> None:
    assert container_of(path) is None


def test_pod_without_container_is_no_container() -> None:
    path = f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID.replace('-', '_')}.slice"
    assert pod_of(path) == UID
    assert container_of(path) is None


def test_innermost_wins() -> None:
    other = "ab" * 32
    assert container_of(f"/system.slice/docker-{ID}.scope/docker/{other}") == Container("docker", other)


def test_matches_prefix_and_describe() -> None:
    c = Container("docker", ID)
    assert matches(c, ID[:12]) and matches(c, ID.upper()) and matches(c, ID)
    assert not matches(c, ID[:3]) and not matches(c, "ffff")
    assert describe(c) == f"docker:{ID[:12]}"
    assert describe(Container("containerd", ID, UID)) == f"containerd:{ID[:12]} pod {UID}"
    assert describe(None) == "-"
