"""The command line of ``netbpf http``: arguments and configuration checked before any syscall."""
from __future__ import annotations

import argparse

import pytest

from netbpf.cli import build_parser
from netbpf.errors import InterfaceNotFound, UsageError
from netbpf.tools.http.cli import port_list, resolve_interfaces
from netbpf.tools.http.kernel import MAX_PORTS, make_config


def test_port_lists() -> None:
    assert port_list("80") == [80] and port_list("80,8080,443") == [80, 8080, 443]
    for bad in ("0", "65536", "http", "80,", "-1"):
        with pytest.raises(argparse.ArgumentTypeError):
            port_list(bad)


def test_interfaces() -> None:
    assert resolve_interfaces("any") == (0, [])
    index, chosen = resolve_interfaces("lo")
    assert index > 0 and chosen == []
    assert resolve_interfaces("lo,lo") == (0, [index, index])  # several: chosen in the filter
    with pytest.raises(InterfaceNotFound, match="no such interface: nosuch0"):
        resolve_interfaces("lo,nosuch0")
    with pytest.raises(UsageError):
        resolve_interfaces("any,lo")
    with pytest.raises(UsageError):
        resolve_interfaces(",".join(["lo"] * 9))


def test_config_limits() -> None:
    config = make_config([80, 8080, 80], [3, 4], [4789])
    assert list(config.ports[:config.n_ports]) == [80, 8080]  # duplicates folded
    assert list(config.ifindexes[:config.n_ifindexes]) == [3, 4]
    assert config.n_vxlan_ports == 1 and config.vxlan_ports[0] == 4789
    with pytest.raises(UsageError):
        make_config([])
    with pytest.raises(UsageError):
        make_config(range(1, MAX_PORTS + 2))


def test_parser_has_the_shared_flags() -> None:
    args = build_parser().parse_args(["http", "-i", "any", "--port", "8080", "--json", "--summary", "-c", "5",
                                      "--duration", "2", "--metrics", ":9464", "--tag-header", "X-Id"])
    assert (args.port, args.json, args.summary, args.count, args.duration, args.metrics, args.tag_header) == \
        ([8080], True, True, 5, 2.0, ("127.0.0.1", 9464), "X-Id")
    assert args.needs_root and args.buffer_size == 65536 and args.vxlan_port == [4789, 8472]
