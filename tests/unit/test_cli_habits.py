"""What a tcpdump user types out of habit, and options that only mean something with
another: accepted with tcpdump's meaning, or refused in one line (exit 2), never ignored
in silence. No root: each is refused before anything is opened."""
from __future__ import annotations

import contextlib
import io

import pytest

from netbpf.cli import build_parser, main
from netbpf.errors import UsageError
from netbpf.tools.dump.cli import MAX_SNAPLEN


def test_dump_snaplen_zero_is_tcpdumps_default() -> None:
    args = build_parser().parse_args(["dump", "-i", "lo", "-s", "0"])
    assert args.snaplen == MAX_SNAPLEN
    assert build_parser().parse_args(["dump", "-i", "lo", "-s", "96"]).snaplen == 96
    with contextlib.redirect_stderr(io.StringIO()), pytest.raises(SystemExit) as e:
        build_parser().parse_args(["dump", "-i", "lo", "-s", "-1"])
    assert e.value.code == 2


def test_dump_without_interface_names_itself_once(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["dump", "icmp"])
    with pytest.raises(UsageError) as e:
        args.func(args)
    assert str(e.value) == "-i IFACE is required (or -r FILE)"
    assert main(["dump", "icmp"]) == 2
    assert capsys.readouterr().err == "netbpf: -i IFACE is required (or -r FILE)\n"


@pytest.mark.parametrize("by", ["remote", "flow"])
def test_tcp_by_needs_summary(by: str) -> None:
    """Without --summary, tcp streams events and --by had nothing to group: it was ignored."""
    args = build_parser().parse_args(["tcp", "--by", by])
    with pytest.raises(UsageError, match=f"--by {by} groups --summary's rows"):
        args.func(args)


@pytest.mark.parametrize("argv", [["-i", "c0", "--json", "list"], ["-i", "c0", "list", "--json"]])
def test_xdp_chain_list_json_either_side(argv: list[str]) -> None:
    assert build_parser().parse_args(["xdp", "chain", *argv]).json is True


def test_xdp_chain_list_without_json() -> None:
    assert build_parser().parse_args(["xdp", "chain", "-i", "c0", "list"]).json is False
    assert build_parser().parse_args(["xdp", "chain", "-i", "c0"]).json is False
