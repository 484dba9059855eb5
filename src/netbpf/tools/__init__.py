"""One package per tool: its BPF C, its shared header, its Python, its CLI.

``TOOLS`` is the registry: each tool's command, in the order of ``netbpf --help``, with the
line that introduces it there. A tool lives in ``netbpf/tools/<command>/``: ``cli.py`` has
``register(subparsers)``, and ``demo.py``, if there is one, ``scene(demo)`` for ``netbpf lab
demo``. Tools never import one another; what two of them share sits a floor below.

Only the tool that runs is imported (``netbpf dump -r F`` loads nothing of the others): the
rest are listed by name and line, which is all ``netbpf --help`` shows of them.
"""
from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (13 ms), as mypy reads it

if TYPE_CHECKING:  # not imported to run: `netbpf dump -r F` imports this package first (dump.file_lines)
    import argparse
    from collections.abc import Collection
    from types import ModuleType

TOOLS: dict[str, str] = {
    "dump": "capture packets at XDP or tc with a tcpdump filter (pcap, tcpdump lines, JSON)",
    "http": "trace HTTP through a load-balancing gateway: which backend served each request, "
            "the spread over backends",
    "fault": "mangle, drop or duplicate chosen packets, to reproduce network bugs",
    "drops": "why the kernel dropped packets: reason, kernel function, interface, namespace, flow",
    "tcp": "what TCP is doing: retransmits, resets, state changes, connection lifetimes",
    "accel": "bypass the TCP/IP stack for local TCP connections (sockops + sk_msg)",
    "xdp": "XDP helpers: chain several XDP programs on one interface",
}


def summary(command: str) -> str:
    """The line that introduces a tool in ``netbpf --help`` (its parser's help)."""
    return TOOLS[command]


def module(command: str, role: str = "cli") -> ModuleType:
    """A tool's module by role: ``cli`` (every tool has one) or ``demo``."""
    return importlib.import_module(f"{__name__}.{command}.{role}")


def register(sub: argparse._SubParsersAction, full: Collection[str]) -> None:  # type: ignore[type-arg]
    """Add every tool's command: in full for those in ``full`` (importing them), the others
    by name and line alone (enough for ``netbpf --help``, never parsed)."""
    for command, line in TOOLS.items():
        if command in full:
            module(command).register(sub)
        else:
            sub.add_parser(command, help=line)
