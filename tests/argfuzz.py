"""Random command lines for every netbpf subcommand, read off the argparse tree.

The subcommands and their options come from ``netbpf.cli.build_parser()``
(nothing listed by hand, so a new option is fuzzed the day it is added); each
value is either plausible (a choice, a number in range, an interface of the
test's namespace) or hostile (empty, NUL, huge, NaN, negative, unicode, a
path to /dev/full or a missing directory).

``Limits`` keeps a run from touching anything outside the test: commands that
change the host (``lab up``, ``accel enable``, ``cleanup`` without
``--this-netns``, ``fault stop`` without ``-i``, ``--pin``...) are never made,
and every running tool gets a short ``--duration``.
"""
from __future__ import annotations

import argparse
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

HOSTILE_TEXT = ["", " ", "-", "--", "nan", "inf", "-inf", "-1", "0", "-0", "1e309", "10**30",
                str(10 ** 30), str(2 ** 64), str(2 ** 64 - 1), str(2 ** 32), "0x", "0x1p3", "1_0",
                "９", "²", "١٢", "é", "💥", "\u202e", "a" * 300, "../../etc", "/", "%s%n",
                "$(id)", "'", "\"", "\\", ",", ",,", ":", "[::]", "[", "]:1"]
HOSTILE_PATHS = ["/dev/full", "/nonexistent-dir/x.pcap", "/", "/proc/version", "/dev/null",
                 "/proc/self/status", "/sys/fs/bpf"]
IN_PROCESS_ONLY = ["a\0b", "\0", "\udcff"]  # exec() cannot pass these; argparse can be given them


@dataclass
class Limits:
    """How a command line may touch the machine (a subprocess run, as root)."""

    netns: str | None = None  # always run with --netns NAME
    interfaces: list[str] = field(default_factory=lambda: ["lo"])
    scratch: str = "/tmp"  # a directory of the test's own, for -w FILE
    in_process: bool = False  # NUL and lone surrogates too (argparse only)


# Never generated: they change the machine beyond the test's namespace (or are slow).
FORBIDDEN_COMMANDS = {("lab", ), ("accel", "enable"), ("accel", "disable"), ("accel", "bench")}
FORBIDDEN_OPTIONS = {"--pin", "--pin-dir", "-h", "--help", "-V", "--version", "--netns",
                     "--list-reasons", "-v", "--verbose"}
DURATION = "--duration"


def leaf_parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
                 ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """(command path, parser) for every subcommand that takes no further subcommand."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    seen: set[int] = set()
    for name, child in subs[0].choices.items():
        if id(child) in seen:  # aliases
            continue
        seen.add(id(child))
        if subs[0].required is False:
            yield path, parser  # e.g. `xdp chain` alone lists
        yield from leaf_parsers(child, (*path, name))


def _type_name(action: argparse.Action) -> str:
    t = action.type
    return getattr(t, "__qualname__", getattr(t, "__name__", "")) if t else ""


def plausible(action: argparse.Action, rng: random.Random, limits: Limits) -> str:
    """A value the option could well accept."""
    if action.choices:
        return str(rng.choice(list(action.choices)))
    opts = set(action.option_strings)
    name = _type_name(action)
    if opts & {"-i", "--interface"}:
        return rng.choice([*limits.interfaces, "any", ",".join(limits.interfaces), "nosuch0"])
    if "--metrics" in opts:
        return rng.choice([":9464", f":{rng.randint(1024, 65535)}", "127.0.0.1:9465", "[::1]:9466",
                           "10.255.255.1:9464", "localhost:9467"])
    if opts & {"-w", "-r"}:
        return rng.choice([f"{limits.scratch}/x.pcap", f"{limits.scratch}/x.pcapng", "-"])
    if opts & {"--duration", "--interval", "--seconds"}:
        return rng.choice(["0.3", "0.5", "1", "1e-3"])
    if opts & {"--port", "--vxlan-port"} or "port" in name:
        return rng.choice(["80", "8080", "4789", "80,8080", "65535"])
    if "--backends" in opts:
        return rng.choice(["10.0.0.2:80", "[fd00::2]:80,10.0.0.3:80"])
    if "--host" in opts:
        return rng.choice(["10.0.0.0/8", "::1", "10.9.0.1"])
    if "--in-netns" in opts:
        return rng.choice(["all", ".", "host", str(rng.randint(1, 2 ** 32))])
    if action.dest == "expression":
        return rng.choice(["icmp", "tcp port 80", "udp", "tcp[tcpflags] & tcp-syn != 0", "tcp port"])
    if action.type is float or "float" in name or "probability" in name:
        return rng.choice(["0.5", "1", "1e-9"])
    if action.type is int or "int" in name or opts & {"-c", "--count", "-B", "-s"}:
        return str(rng.choice([1, 2, 10, 64, 4096, 2 ** 16]))
    return rng.choice(["PSH", "psh,ack", "NO_SOCKET", "tcp", "X-Test-Id", "all", "retrans,reset",
                       "1", "a"])


def hostile(rng: random.Random, limits: Limits) -> str:
    pool = HOSTILE_TEXT + HOSTILE_PATHS + (IN_PROCESS_ONLY if limits.in_process else [])
    return rng.choice(pool)


def value(action: argparse.Action, rng: random.Random, limits: Limits) -> str:
    return plausible(action, rng, limits) if rng.random() < 0.6 else hostile(rng, limits)


def _forbidden(path: tuple[str, ...]) -> bool:
    return any(path[:len(f)] == f for f in FORBIDDEN_COMMANDS)


def commands(parser: argparse.ArgumentParser) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    return [(path, p) for path, p in leaf_parsers(parser) if path and not _forbidden(path)]


def vector(rng: random.Random, parser: argparse.ArgumentParser, limits: Limits) -> list[str]:
    """One command line (without the program name)."""
    path, leaf = rng.choice(commands(parser))
    argv: list[str] = []
    if limits.netns is not None:
        argv += ["--netns", limits.netns]
    argv += list(path)
    optionals = [a for a in leaf._actions if a.option_strings
                 and not set(a.option_strings) & FORBIDDEN_OPTIONS]
    positionals = [a for a in leaf._actions if not a.option_strings
                   and not isinstance(a, argparse._SubParsersAction)]
    has_duration = any(DURATION in a.option_strings for a in optionals)
    chosen = rng.sample(optionals, k=min(len(optionals), rng.randint(0, 5)))
    interface = [a for a in optionals if "-i" in a.option_strings]
    if interface and interface[0] not in chosen and rng.random() < 0.85:
        chosen.append(interface[0])  # most runs should get as far as the kernel
    for action in chosen:
        flag = rng.choice(action.option_strings)
        if DURATION in action.option_strings:
            continue  # added below, always short
        if action.nargs == 0:
            argv.append(flag)
            continue
        argv += [flag, value(action, rng, limits)]
    if path[-1:] == ("stop",) and "-i" not in argv and "--interface" not in argv:
        argv += ["-i", rng.choice(limits.interfaces)]  # never everyone's faults
    if path[:2] == ("xdp", "chain"):  # -i belongs to `chain`, before its action
        at = argv.index("chain") + 1
        argv[at:at] = ["-i", rng.choice([*limits.interfaces, hostile(rng, limits)])]
    if path == ("cleanup",):
        argv.append("--this-netns")  # only what is in the test's namespace
    if path[-1:] == ("add",):
        # Regular files that are no BPF object too (/proc/version, /etc/passwd): a failed
        # add must leave the hook and the pin tree as they were.
        argv.append(rng.choice(["/dev/full", "/nonexistent-dir/x.o", "/", "/dev/null", "/sys/fs/bpf",
                                "/nonexistent.o:prog", "", "/proc/version", "/etc/passwd",
                                "/etc/passwd:prog"]))
    elif path[-1:] == ("remove",):
        argv.append(rng.choice(["0", "-1", "99", "x", str(2 ** 64)]))
    else:
        for action in positionals:
            if action.nargs in ("*", "?") and rng.random() < 0.5:
                continue
            argv.append(value(action, rng, limits))
    if has_duration:
        # The one way out for a tool with nothing to count: short, or refused.
        short = rng.choice(["0.5", "1"])
        argv += [DURATION, short if rng.random() < 0.7 else
                 rng.choice(["nan", "inf", "-1", "0", "1e400", "", "1e30", "-nan", "1e-400"])]
    return argv
