"""``netbpf xdp chain``: several XDP programs on one interface, each XDP_PASS going on to the next."""
from __future__ import annotations

import argparse
import stat
from pathlib import Path

from ... import cliutil
from ...errors import NetbpfError, UsageError, path_is
from ...output import Column, Table, format_since
from .. import summary

EXAMPLES = """\
examples:
  netbpf xdp chain -i c0 add ./ratelimit.bpf.o            append a program (its SEC("xdp") one)
  netbpf xdp chain -i c0 add ./fw.bpf.o:fw_main --pos 0   NAME picks one of several; --pos inserts
  netbpf xdp chain -i c0 list
  POS  SLOT   ID  PROGRAM   FROM                  SINCE
  0       2  912  fw_main   ./fw.bpf.o:fw_main    2026-11-23 17:10:02
  1       1  905  ratelim   ./ratelimit.bpf.o     2026-11-23 17:09:40
  then: XDP program id 871 (the interface's program before the chain), else XDP_PASS
  netbpf xdp chain -i c0 remove 0                         the last removal takes the chain down

Each program runs behind a small netbpf wrapper: XDP_PASS tail-calls the next
one, any other verdict ends the chain. The program that was on the interface
before comes last. The chain is pinned under /sys/fs/bpf/netbpf/xdp/ and keeps
working after this command exits; `netbpf cleanup` takes it down and puts the
original program back. (libxdp's freplace dispatcher needs fentry/freplace,
which this kernel refuses: tail calls work everywhere.)
"""

COLUMNS = [
    Column("position", "POS"),
    Column("slot", "SLOT", align=">"),
    Column("prog_id", "ID", align=">"),
    Column("name", "PROGRAM"),
    Column("source", "FROM"),
    Column("added", "SINCE", text=format_since),
]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    xdp = sub.add_parser("xdp", help=summary("xdp"),
                         description="XDP helpers")
    xdp_sub = xdp.add_subparsers(dest="xdp_command", metavar="COMMAND", required=True)
    p = cliutil.add_parser(xdp_sub, "chain", "a tail-call chain of XDP programs on one interface",
                           EXAMPLES, run)
    cliutil.add_interface(p)
    p.add_argument("--xdp-mode", dest="mode", choices=("auto", "skb", "drv"), default="auto",
                   help="XDP mode for a new chain on an empty hook (else the current program's mode)")
    cliutil.add_old_spelling(p, "--mode", "mode", choices=("auto", "skb", "drv"))
    cliutil.add_json(p)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    listing = actions.add_parser("list", help="the chain, in order (the default)")
    # `list --json` as well as `--json list`: SUPPRESS keeps the chain-level flag when absent here.
    listing.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                         help="one JSON object per line (for jq)")
    add = actions.add_parser("add", help="load OBJ's SEC(\"xdp\") program into the chain")
    add.add_argument("object", metavar="OBJ[:NAME]", help="a BPF object file; NAME: program or section")
    position = cliutil.int_in(0, 255, "a chain's slots")  # kernel.py refuses past its length
    add.add_argument("--pos", type=position, metavar="N", help="insert at position N (default: at the end)")
    remove = actions.add_parser("remove", help="take the program at position N out")
    remove.add_argument("position", type=position, metavar="N")


def run(args: argparse.Namespace) -> int:
    from ...run import Run
    from .kernel import Chain
    from .wrap import check_program

    action = args.action or "list"
    chain, note = Chain.find_attached(args.interface)
    if note:
        cliutil.stderr(f"netbpf: {note}")
    if action == "list":
        return _list(chain, args)
    if action == "add":
        path_text, _, section = args.object.partition(":")
        path = Path(path_text)
        if not path_is(path, stat.S_ISREG, f"object file {path_text}"):
            raise NetbpfError(f"no such object file: {path_text}")
        # Everything that can be checked is, before the hook is touched.
        check_program(path, section or None)
        length = len(chain.links()) if chain is not None else 0
        if args.pos is not None and not 0 <= args.pos <= length:
            raise UsageError(f"--pos must be 0..{length} (the chain has {length} programs)")
        if chain is not None:
            link = chain.add(path, section or None, args.pos)
        else:
            undo = Run()
            with undo.starting():  # a failure undoes it all, in reverse: off the hook if it got there, then the pins
                chain = Chain.build(args.interface)
                undo.callback(chain.discard)
                link = chain.add(path, section or None, args.pos)
                chain.attach(args.mode)
            print(f"chain created on {args.interface}: dispatcher id {chain.dispatcher.id}"
                  + (f", then XDP program id {chain.original()}" if chain.original() else ""))
        print(f"added {link.name} (id {link.prog_id}) at position {link.position} on {args.interface}")
        return 0
    if chain is None:
        raise NetbpfError(f"no chain on {args.interface}")
    link = chain.remove(args.position)
    print(f"removed {link.name} (id {link.prog_id}) from position {args.position} on {args.interface}")
    if not chain.links():
        print(f"chain empty: {chain.take_down()}")
    return 0


def _list(chain: object, args: argparse.Namespace) -> int:
    from .kernel import Chain

    if chain is None:
        if not args.json:
            print(f"no chain on {args.interface}")
        return 0
    assert isinstance(chain, Chain)
    links = chain.links()
    table = Table(COLUMNS)
    rows = [{"position": link.position, "slot": link.slot, "prog_id": link.prog_id, "name": link.name,
             "source": link.source, "added": link.added} for link in links]
    if args.json:
        for row in rows:
            print(table.json(row))
        return 0
    print(table.render(rows) if rows else "the chain is empty")
    original = chain.original()
    then = (f"XDP program id {original} (the interface's program before the chain)" if original
            else "XDP_PASS")
    print(f"then: {then}")
    if not chain.on_hook():
        print(f"note: another program stands in front of the chain's dispatcher (id {chain.dispatcher.id})")
    return 0
