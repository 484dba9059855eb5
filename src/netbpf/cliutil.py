"""Flags and habits every tool shares, so that the tools look alike.

tcpdump's letters where tcpdump has them (-i -w -c -s -n), ``--json`` for one
object per line, ``--summary`` for an aggregated table, ``--duration``, and
``--metrics HOST:PORT`` for Prometheus. Examples go in the epilog.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable

from .bpf.errors import UsageError


def add_parser(sub: argparse._SubParsersAction, name: str, help: str, examples: str,  # type: ignore[type-arg]
               func: Callable[[argparse.Namespace], int], needs_root: bool = True) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help, description=help, epilog=examples,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(func=func, needs_root=needs_root)
    return parser


def add_interface(parser: argparse.ArgumentParser, required: bool = True, allow_any: bool = False) -> None:
    parser.add_argument("-i", "--interface", required=required, metavar="IFACE",
                        help="interface to attach to" + (" (any: all interfaces)" if allow_any else ""))


def add_count(parser: argparse.ArgumentParser, what: str = "events") -> None:
    parser.add_argument("-c", "--count", type=positive_int, metavar="N", help=f"exit after N {what}")


def add_duration(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=positive_float, metavar="S", help="exit after S seconds")


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object per line (for jq)")


def add_summary(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--summary", action="store_true", help=what)


def add_metrics(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metrics", metavar="HOST:PORT", type=host_port,
                        help="serve Prometheus metrics on HOST:PORT (e.g. :9464)")


def add_privileges(parser: argparse.ArgumentParser) -> None:
    """``-Z USER``, as tcpdump: who the tool runs as once attached."""
    from . import privilege

    privilege.add_option(parser)


def relinquish(args: argparse.Namespace, keep: Iterable[int] = (), on_demand: Iterable[int] = ()) -> None:
    """Once attached, before the first packet is parsed: become ``-Z USER``
    keeping only ``keep`` (and ``on_demand``, raised when used) (privilege.py)."""
    import logging

    from . import privilege

    dropped = privilege.drop(getattr(args, "user", None), keep, on_demand)
    logging.getLogger("netbpf.privilege").info(dropped.describe())


def positive_int(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT or :PORT, got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


class Deadline:
    """``--duration`` as an object: how long is left, and whether it has passed."""

    def __init__(self, seconds: float | None) -> None:
        self.end = time.monotonic() + seconds if seconds else None

    def expired(self) -> bool:
        return self.end is not None and time.monotonic() >= self.end

    def remaining(self, cap: float) -> float:
        if self.end is None:
            return cap
        return max(0.0, min(cap, self.end - time.monotonic()))


def stderr(line: str) -> None:
    """A status line on stderr (stdout stays clean for pipes: -w -, --json)."""
    print(line, file=sys.stderr, flush=True)


def require(condition: bool, message: str) -> None:
    if not condition:
        raise UsageError(message)
