"""The flood's chooser (NETBPF_FLOOD) and its frames, without root: the probe's answer is given."""
from __future__ import annotations

import errno
import socket
import struct

import pytest

from netbpf.bpf import features
from netbpf.errors import NotSupported, UsageError
from netbpf.tools.dump import flood


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The live-frames probe answers the errno the test puts in here (0: allowed)."""
    answers = [0]
    monkeypatch.setattr(features, "xdp_live_frames_errno", lambda: answers[0])
    return answers


@pytest.mark.parametrize("env,allowed,expected", [
    ("", True, flood.LIVE), ("auto", True, flood.LIVE), ("AUTO", False, flood.SOCKET),
    (" auto ", False, flood.SOCKET), ("live", True, flood.LIVE), ("socket", True, flood.SOCKET),
])
def test_choice(monkeypatch: pytest.MonkeyPatch, probe: list[int], env: str, allowed: bool,
                expected: str) -> None:
    monkeypatch.setenv(flood.ENV, env)
    probe[0] = 0 if allowed else errno.EPERM
    assert flood.choose() == expected


def test_forced_socket_never_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> int:
        raise AssertionError("probed")

    monkeypatch.setattr(features, "xdp_live_frames_errno", boom)
    assert flood.choose("socket") == flood.SOCKET


@pytest.mark.parametrize("err,name", [(errno.EPERM, "EPERM"), (errno.EINVAL, "EINVAL")])
def test_forced_live_where_refused_names_the_feature(monkeypatch: pytest.MonkeyPatch, probe: list[int],
                                                     err: int, name: str) -> None:
    probe[0] = err
    with pytest.raises(NotSupported) as info:
        flood.choose("live")
    assert info.value.feature == features.XDP_LIVE_FRAMES
    assert str(info.value).count("\n") == 0 and name in str(info.value)


def test_bad_choice_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(flood.ENV, "fast")
    with pytest.raises(UsageError, match="NETBPF_FLOOD='fast': expected one of auto, live, socket"):
        flood.choose()
    with pytest.raises(UsageError, match="no such flood generator"):
        flood.open_flood("lo", "pktgen")


def test_udp_frame_as_the_kernel_would_read_it() -> None:
    frame = flood.udp_frame(bytes.fromhex("020000000001"), bytes.fromhex("020000000002"), "10.0.0.1",
                            "10.0.0.2", 1234, 9, size=60, payload=b"x")
    assert len(frame) == 60 and frame[12:14] == b"\x08\x00"
    ip = frame[14:34]
    assert sum(struct.unpack("!10H", ip)) % 0xFFFF == 0  # the header checksum verifies
    assert (socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])) == ("10.0.0.1", "10.0.0.2")
    assert struct.unpack("!H", ip[2:4])[0] == 29  # IP length: the padding is Ethernet's, not UDP's
    assert struct.unpack("!HHH", frame[34:40]) == (1234, 9, 9) and frame[42:43] == b"x"
