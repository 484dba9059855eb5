"""``netbpf status`` and ``netbpf cleanup``."""
from __future__ import annotations

import argparse
import json
import sys

from . import netns
from .output import Column, Table, format_since
from .status import cleanup, collect

COLUMNS = [
    Column("kind", "KIND"),
    Column("program", "PROGRAM"),
    Column("prog_id", "ID", align=">"),
    Column("target", "WHERE"),
    Column("netns", "NETNS"),
    Column("since", "SINCE", text=format_since),
    Column("holders", "HELD BY", text=lambda h: ", ".join(h)),
    Column("pinned", "PINNED AT"),
]

STATUS_EXAMPLES = """\
examples:
  netbpf status                 everything netbpf has attached, loaded or pinned
  netbpf status --json | jq .   one JSON object per line

  KIND         PROGRAM          ID  WHERE              NETNS  SINCE                HELD BY
  xdp-netlink  netbpf_dump     412  veth0              nb-gw  2026-11-23 15:02:11  pid 9071 (netbpf)
  tcx          netbpf_fault    415  eth0 egress        host   2026-11-23 15:03:40  pid 9102 (netbpf)
"""

CLEANUP_EXAMPLES = """\
examples:
  netbpf cleanup                remove all of it, everywhere (idempotent)
  netbpf --netns nb-gw cleanup --this-netns
                                only what sits in that namespace's interfaces
A netbpf XDP program that stood in front of another one (netbpf dump) is
replaced by that original program again, atomically, rather than detached;
through a stack of them (two dumps, a dump in front of a chain) in one pass.
Only what netbpf provably made is touched (its record of every object it
loaded); a program named netbpf_* or a pin it did not make is "left alone",
and so is what a netbpf process still running holds (it detaches at exit).
"""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("status", help="list what netbpf has attached, loaded or pinned",
                       epilog=STATUS_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=run_status, needs_root=True)

    c = sub.add_parser("cleanup", help="detach and unpin everything netbpf left behind",
                       epilog=CLEANUP_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("--this-netns", action="store_true",
                   help="only what belongs to the current network namespace: its attachments (with their pins), and pins "
                        "left for its interfaces that nothing uses (deleted interface, killed tool); "
                        "other pins stay")
    c.set_defaults(func=run_cleanup, needs_root=True)


def run_status(args: argparse.Namespace) -> int:
    entries = collect()
    rows = [e.as_dict() | {"holders": e.holders, "since": e.since} for e in entries]
    if args.json:
        for e in entries:
            print(json.dumps(e.as_dict()))
        return 0
    if not entries:
        print("netbpf has nothing attached, loaded or pinned")
        return 0
    print(Table(COLUMNS).render(rows))
    return 0


def run_cleanup(args: argparse.Namespace) -> int:
    done, failed, left = cleanup(only_netns=netns.current_inode() if args.this_netns else None)
    for line in done + left:
        print(line)
    for line in failed:
        print(f"netbpf: {line}", file=sys.stderr)
    if not done and not failed:
        print("nothing else to clean up" if left else "nothing to clean up")
    return 1 if failed else 0
