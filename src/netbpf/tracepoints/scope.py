"""Command-line filters both ``netbpf drops`` and ``netbpf tcp`` take, turned into kernel values.

The tracepoints these tools use fire for every network namespace of the
host; the namespace filter (``--in-netns``) is what makes a container's, or
a test's, drops countable exactly. ``netbpf --netns NAME drops`` watches that
namespace only, as ``ip -n NAME`` would show only its things.
"""
from __future__ import annotations

import argparse
import ipaddress
import os

from .. import netns
from ..errors import NetbpfError, UsageError
from ..netdev import ifindex as _ifindex

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def add_scope_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--in-netns", metavar="NS",
        help="only this network namespace: an `ip netns` name, `host`, `.` (the one netbpf runs "
             "in), an inode number, or `all` (default: all, or NAME with `netbpf --netns NAME`)")
    parser.add_argument("--host", metavar="ADDR[/LEN]", type=network,
                        help="only packets from or to this address or network (IPv4 or IPv6)")
    parser.add_argument("--port", type=port, metavar="PORT", help="only packets from or to this port")


def network(text: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address or network: {text!r}") from None


def port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"not a port (1-65535): {text!r}")
    return int(text)


def scope_rodata(inode: int, network: IPNetwork | None, port: int | None) -> dict[str, object]:
    """The values of scope.h's globals (``BpfObject.set_rodata``) for these filters."""
    values: dict[str, object] = {"filter_netns": inode}
    if network is not None:
        values.update(filter_family=network.version, filter_prefix=network.prefixlen,
                      filter_addr=network.network_address.packed.ljust(16, b"\0"))
    if port is not None:
        values.update(filter_port=1, port_value=port)
    return values


def netns_inode(text: str) -> int:
    """The inode of the namespace a user named; 0 for all."""
    if text == "all":
        return 0
    if text in (".", "this"):
        return netns.current_inode()
    if text == "host":
        try:
            return os.stat("/proc/1/ns/net").st_ino
        except OSError:
            raise UsageError("cannot read the host's network namespace (/proc/1/ns/net)") from None
    if text.isascii() and text.isdigit():
        if not 0 < int(text) < 1 << 32:  # an inode number (the kernel's are 32-bit, proc_inum)
            raise UsageError(f"not a network namespace inode: {text}")
        return int(text)
    if text.startswith("/"):
        try:
            return os.stat(text).st_ino
        except OSError as e:
            raise NetbpfError(f"no network namespace at {text}: {e.strerror}") from None
    if not text or "/" in text or text == ".." or "\0" in text:  # '' would be /run/netns itself
        raise UsageError(f"not a network namespace: {text!r} (a name, host, ., all, an inode or a path)")
    try:
        return netns.inode_of(text)
    except OSError:
        raise NetbpfError(f"no such network namespace: {text} (ip netns list)") from None


def scope_netns(args: argparse.Namespace) -> int:
    """The namespace filter the arguments ask for (0: all)."""
    if args.in_netns is not None:
        return netns_inode(args.in_netns)
    if getattr(args, "netns", None):
        return netns.current_inode()  # main() entered it already
    return 0


def interface_index(name: str, inode: int) -> int:
    """The index of an interface in the namespace of the filter (or this one)."""
    if inode in (0, netns.current_inode()):
        return _ifindex(name)
    for path_inode, path in netns.all_namespaces().items():
        if path_inode == inode:
            return netns.run_in(path, lambda: _ifindex(name))
    raise UsageError(f"network namespace {inode} has no process or name to look {name} up in")
