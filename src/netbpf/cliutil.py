"""Flags and habits every tool shares, so that the tools look alike.

tcpdump's letters where tcpdump has them (-i -w -c -s -n), ``--json`` for one
object per line, ``--summary`` for an aggregated table, ``--duration``, and
``--metrics HOST:PORT`` for Prometheus. Examples go in the epilog.

Every number a user types has stated bounds, checked while the arguments are
parsed, before anything is allocated or attached: a count must fit the kernel
counter it is compared with (u64), a duration must be finite (a NaN deadline
never passes), a size must be one the tool can allocate.
"""
from __future__ import annotations

import argparse
import io
import math
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

from .errors import OutputError, UsageError

U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1
MAX_DURATION = 365 * 86400.0  # --duration: a year (a deadline must be a number that passes)
MAX_INTERVAL = 3600.0  # refresh intervals: an hour


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the usage is one --help away)."""

    _command_line = False  # the top parser; the commands' parsers are made by add_subparsers

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {text} (see {self.prog} --help)\n")

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
        self._command_line = True
        return super().parse_args(args, namespace)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        """A command's parser names its own unknown flags: argparse hands them up to the
        top parser, whose error would point at `netbpf --help`, not the command's."""
        parsed, extras = super().parse_known_args(args, namespace)
        if extras and not self._command_line:  # nothing after a command is the top's to take
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def add_parser(sub: argparse._SubParsersAction, name: str, help: str, examples: str,  # type: ignore[type-arg]
               func: Callable[[argparse.Namespace], int], needs_root: bool = True) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help, description=help, epilog=examples,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(func=func, needs_root=needs_root)
    return parser


def interface_name(text: str) -> str:
    """A name the kernel could have given an interface (dev_valid_name): else no lookup
    can find it, and the user should hear why."""
    if (not text or text in (".", "..") or len(text.encode(errors="surrogateescape")) > 15
            or any(c in text for c in "/:\0") or any(c.isspace() for c in text)):
        raise argparse.ArgumentTypeError(f"not an interface name: {text!r}")
    return text


def add_interface(parser: argparse.ArgumentParser, required: bool = True, allow_any: bool = False) -> None:
    parser.add_argument("-i", "--interface", required=required, metavar="IFACE", type=interface_name,
                        help="interface to attach to" + (" (any: all interfaces)" if allow_any else ""))


def add_count(parser: argparse.ArgumentParser, what: str = "events") -> None:
    parser.add_argument("-c", "--count", type=positive_int, metavar="N", help=f"exit after N {what}")


def add_old_spelling(parser: argparse.ArgumentParser, old: str, dest: str, **kwargs: Any) -> None:
    """A flag's former name, still accepted (a user's script may say it) and shown nowhere:
    each flag name means one thing across the tools (README's table of shared flags)."""
    parser.add_argument(old, dest=dest, help=argparse.SUPPRESS, default=argparse.SUPPRESS, **kwargs)


def add_duration(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=duration, metavar="S", help="exit after S seconds")


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object per line (for jq)")


def add_summary(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--summary", action="store_true", help=what)


def add_metrics(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metrics", metavar="HOST:PORT", type=host_port,
                        help="serve Prometheus metrics on HOST:PORT (:PORT is 127.0.0.1:PORT; "
                             "0.0.0.0:PORT or [::]:PORT for every address)")


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


def int_in(low: int, high: int, why: str = "") -> Callable[[str], int]:
    """An argparse type: an integer (decimal, or 0x...) in low..high."""

    def parse(text: str) -> int:
        try:
            value = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(("must be positive" if low == 1 else f"must be at least {low}")
                                             + f": {text}")
        if value > high:
            raise argparse.ArgumentTypeError(f"at most {high}" + (f" ({why})" if why else "") + f": {text}")
        return value

    return parse


def float_in(low: float, high: float, why: str = "", low_inclusive: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number in (low, high] (or [low, high])."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number: {text}")
        if value < low or (value == low and not low_inclusive):
            raise argparse.ArgumentTypeError(("must be positive" if low == 0 and not low_inclusive
                                              else f"must be {'at least' if low_inclusive else 'above'} {low:g}")
                                             + f": {text}")
        if value > high:
            raise argparse.ArgumentTypeError(f"at most {high:.15g}" + (f" ({why})" if why else "") + f": {text}")
        return value

    return parse


# Counts are compared with the kernel's u64 counters.
positive_int = int_in(1, U64_MAX, "a 64-bit counter")
duration = float_in(0.0, MAX_DURATION, "a year")
interval = float_in(0.0, MAX_INTERVAL, "an hour")
positive_float = duration  # seconds: finite, positive, at most a year


def host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT`` or ``:PORT``; an empty HOST is loopback, since what
    netbpf exports (request paths, flows) is nobody else's business unless the user says so."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT or :PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host and not _is_ipv6(host):
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, [IPV6]:PORT or :PORT, got {text!r}")
    if "\0" in host or not host.isprintable():
        raise argparse.ArgumentTypeError(f"not a host name or address: {host!r}")
    return host or "127.0.0.1", int(port)


def _is_ipv6(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def check_memory(option: str, total_bytes: int) -> None:
    """Refuse, before allocating it, a buffer larger than half the memory available now:
    the kernel would take it page by page, deaf to Ctrl-C, and squeeze everything else."""
    try:
        with open("/proc/meminfo") as f:
            available = next(int(line.split()[1]) << 10 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return  # no way to tell: the kernel will refuse what it cannot give
    require(total_bytes <= available // 2,
            f"{option}: {total_bytes / (1 << 20):.0f} MiB in all, more than half of the memory "
            f"available ({available / (1 << 20):.0f} MiB)")


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


class _StdoutWriter(io.RawIOBase):
    """fd 1 for ``sys.stdout``, where a failed write (a full disk, /dev/full) is an
    OutputError, one line, rather than an OSError from deep inside a tool or a
    message at interpreter exit. After a failure fd 1 points to /dev/null, so that
    the flushes on the way out (finally blocks, exit) do not fail again."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd = fd

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.fd

    def isatty(self) -> bool:
        return os.isatty(self.fd)

    def write(self, data: bytes) -> int:  # type: ignore[override]
        try:
            return os.write(self.fd, data)
        except BrokenPipeError:
            raise  # `| head`: main() makes that a quiet exit
        except OSError as e:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.fd)
            os.close(devnull)
            raise OutputError("standard output", e) from e


def guard_stdout() -> None:
    """Route ``sys.stdout`` through _StdoutWriter (only the real one: tests capture theirs)."""
    out = sys.stdout
    if out is not sys.__stdout__ or not isinstance(out, io.TextIOWrapper):
        return
    try:
        fd = out.fileno()
    except (OSError, ValueError):
        return
    out.flush()
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(_StdoutWriter(fd)), encoding=out.encoding,
                                  errors=out.errors, line_buffering=out.line_buffering)
