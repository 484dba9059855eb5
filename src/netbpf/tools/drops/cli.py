"""``netbpf drops`` (why packets are dropped) and ``netbpf tcp`` (what TCP is doing)."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from ... import cliutil
from ...errors import NotPermitted
from ...output import LiveView, Table
from ...run import Run, StopSignals
from ...tracepoints import stream
from ...tracepoints.names import parse_protocol
from ...tracepoints.scope import add_scope_arguments, interface_index, scope_netns
from .. import summary
from .kallsyms import Kallsyms
from .kernel import (
    STAT_FILTERED,
    STAT_STACK_LOST,
    STAT_SUMMARY_FULL,
    DropEvent,
    DropFilter,
    DropOptions,
    DropTracer,
)
from .reasons import NOT_LOSS, DropReasons
from .reasons import load as load_reasons
from .report import FLOW_COLUMNS, SUMMARY_COLUMNS, DropFormatter

HELP = summary("drops")

EXAMPLES = """\
Every packet the kernel frees as a drop (tracepoint skb:kfree_skb) with its
reason, the kernel function that dropped it, where (namespace, interface) and
the flow read from the packet. Filters run in the kernel. Frees that are not
packet loss (QUEUE_PURGE: every closed connection's unread FIN...) are counted
on the last line and shown with --all.

examples:
  netbpf drops                                 every drop on the host, as it happens
  netbpf --netns nb-gw drops -i c0             drops in namespace nb-gw on c0
  netbpf drops --reason NO_SOCKET --port 81    connection attempts to a closed port 81
  netbpf drops --summary                       counts by reason and location, refreshed in place
  netbpf drops --summary --by-flow --duration 10 --json | jq .
  netbpf drops --stack -c 1                    one drop and the kernel stack that made it
  netbpf drops --all                           also the frees that are not packet loss (see --all)
  netbpf drops --list-reasons                  the drop reasons this kernel knows

  $ sudo netbpf --netns nb-gw drops
  TIME             REASON            LOCATION                            NETNS       IFACE    PROTO    LEN  FLOW
  16:07:16.969966  NO_SOCKET         tcp_v4_rcv+0x99                     nb-gw       c0       tcp       60  10.0.1.2:50324 > 10.0.1.1:81 [S]
  16:07:17.414456  NO_SOCKET         __udp4_lib_rcv+0x4bc                nb-gw       c0       udp       29  10.0.1.2:40383 > 10.0.1.1:9
  16:07:17.922929  NETFILTER_DROP    nft_do_chain+0x46f                  nb-gw       c0       udp       29  10.0.1.2:55006 > 10.0.1.1:5555
  16:07:18.438278  TC_INGRESS        __netif_receive_skb_core.constprop.0+0x4dc  nb-gw       c0       udp       29  10.0.1.2:41321 > 10.0.1.1:9
  16:07:18.807645  SOCKET_RCVBUFF    udp_queue_rcv_one_skb+0x437         nb-gw       c0       udp     1028  10.0.1.2:34941 > 10.0.1.1:7000
  ^C
  5 drops shown, 0 lost
      (a SYN to a closed port; UDP to a closed port; an nftables `drop` rule;
       a tc program returning TC_ACT_SHOT; a UDP socket whose receive buffer is full)

  $ sudo netbpf --netns nb-gw drops --summary --by-flow -p udp
  341 drops, 2 rows, filtered out 0
  COUNT  PER_S  BYTES  REASON          LOCATION              NETNS  IFACE  PROTO  FLOW
    300     39  38400  NETFILTER_DROP  nft_do_chain+0x46f    nb-gw  c0     udp    10.0.1.2:45446 > 10.0.1.1:5555
     41     41   5248  NO_SOCKET       __udp4_lib_rcv+0x4bc  nb-gw  c0     udp    10.0.1.2:36997 > 10.0.1.1:9
      (counted in the kernel; "filtered out": drops elsewhere that the filters left out)

What it cannot see: packets that never became an skb. An XDP program on a
NIC driver (native mode) drops frames before the kernel allocates an skb, so
kfree_skb never fires: use `netbpf dump` on that interface, which captures at
XDP. On veth, and in generic (skb) mode, XDP drops do reach kfree_skb, as
NOT_SPECIFIED at veth_xdp_rcv_skb or do_xdp_generic (this kernel does not use
the XDP reason for them). Drops in NIC hardware or rings are counters only:
`ip -s link`, `ethtool -S`.
"""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = cliutil.add_parser(sub, "drops", HELP, EXAMPLES, run, needs_root=False)
    p.add_argument("-i", "--interface", metavar="IFACE",
                   help="only drops on this interface (of the namespace watched, else of this one)")
    p.add_argument("--reason", nargs="+", metavar="NAME", action="extend",
                   help="only these drop reasons (names as this kernel has them: NO_SOCKET, "
                        "NETFILTER_DROP, TC_INGRESS...)")
    p.add_argument("-p", "--proto", metavar="PROTO",
                   help="only this IP protocol: tcp, udp, icmp, icmp6, sctp or a number")
    add_scope_arguments(p)
    cliutil.add_summary(p, "counts aggregated in the kernel by reason and location, "
                           "a table refreshed every second (with --json: once, at exit)")
    p.add_argument("--by-flow", action="store_true",
                   help="--summary: one row per flow too (protocol, addresses, ports)")
    p.add_argument("--interval", type=cliutil.interval, default=1.0, metavar="S",
                   help="--summary: seconds between refreshes (default 1)")
    p.add_argument("--stack", action="store_true", help="the kernel stack of each drop, symbolised")
    p.add_argument("--process", action="store_true",
                   help="the process, cgroup and container of the dropped packet's socket, when it had one")
    p.add_argument("--all", action="store_true",
                   help="also the frees that are not packet loss (hidden by default, and counted): "
                        + "; ".join(f"{name}: {why}" for name, why in NOT_LOSS.items()))
    cliutil.add_json(p)
    cliutil.add_count(p, "drops")
    cliutil.add_duration(p)
    cliutil.add_metrics(p)
    cliutil.add_privileges(p)
    tracepoint_kinds = ["auto", "tp_btf", "tracepoint"]
    p.add_argument("--attach", dest="hook", choices=tracepoint_kinds, default="auto",
                   help="attach to kfree_skb as tp_btf (typed, default where the kernel has BTF) or as "
                        "the classic tracepoint skb/kfree_skb")
    cliutil.add_old_spelling(p, "--hook", "hook", choices=tracepoint_kinds)  # --hook is a place elsewhere
    p.add_argument("--list-reasons", action="store_true",
                   help="print the drop reasons of the running kernel and exit")


def build_filter(args: argparse.Namespace, reasons: DropReasons) -> DropFilter:
    inode = scope_netns(args)
    ifindex = 0
    if args.interface:
        if not inode:
            from ... import netns

            inode = netns.current_inode()  # an interface index means something in one namespace
        ifindex = interface_index(args.interface, inode)
    wanted = tuple(reasons.value(r) for r in (args.reason or ()))
    for value in wanted:
        cliutil.require(value not in reasons.not_drops,
                        f"{reasons.name(value)} is not a drop (a normal free): nothing would match")
    return DropFilter(
        netns=inode, ifindex=ifindex,
        reasons=wanted,
        protocol=parse_protocol(args.proto) if args.proto else None,
        network=args.host, port=args.port,
    )


def run(args: argparse.Namespace) -> int:
    reasons = load_reasons()
    if args.list_reasons:
        for value, name in sorted(reasons.by_value.items()):
            note = ("  (not a drop)" if value in reasons.not_drops else
                    "  (not packet loss: hidden unless --all)" if value in reasons.not_loss else "")
            print(f"{value:5d}  {name}{note}")
        print(f"(from the kernel's {'BTF' if reasons.source == 'btf' else 'tracefs format'})",
              file=sys.stderr)
        return 0
    if os.geteuid() != 0:
        raise NotPermitted("drops")
    cliutil.require(not args.by_flow or args.summary, "--by-flow goes with --summary")
    cliutil.require(not (args.count and args.summary), "-c counts streamed drops; use --duration with --summary")
    drop_filter = build_filter(args, reasons)
    options = DropOptions(filter=drop_filter, stream=not args.summary,
                          summary=args.summary or bool(args.metrics),
                          summary_flows=args.by_flow, stack=args.stack, hook=args.hook)
    kallsyms = Kallsyms.load()
    if not kallsyms.usable:
        cliutil.stderr("netbpf: /proc/kallsyms hides addresses (kernel.kptr_restrict): "
                       "locations print as addresses")
    tracer = DropTracer(options, reasons)
    formatter = DropFormatter(reasons, kallsyms)
    hidden = Hidden(reasons, () if args.all else
                    tuple(v for v in reasons.not_loss if v not in drop_filter.reasons))
    run = Run()
    with run.starting():
        if args.process:
            cliutil.require(not args.summary, "--process names each streamed drop's owner: not with --summary")
            from ...attrib.tracker import SocketOwners, Tracker

            tracker = run.enter(Tracker())  # started now, before the drops: a socket made meanwhile is known
            formatter.socket_owner = SocketOwners(tracker).owner
        run.enter(tracer)  # loads and attaches; closed before the tracker
    if args.stack:
        kallsyms.note_programs()  # as root, with the tracer's own program loaded
    cliutil.stderr(f"netbpf: watching drops ({tracer.hook} kfree_skb) {_scope_text(drop_filter, formatter)}; "
                   "Ctrl-C to stop")
    shown = [0]
    try:
        if args.metrics:
            from ... import metrics
            from .metrics import drop_families

            metrics.export(args.metrics, lambda: drop_families(tracer, formatter))
        formatter.names.prime()  # entering other namespaces to name interfaces needs root
        cliutil.relinquish(args)  # tracepoint links: closing them detaches
        if args.summary:
            return _summary_loop(args, tracer, formatter, hidden)
        return _stream_loop(args, tracer, formatter, shown, hidden)
    finally:
        lost = tracer.lost
        stack_lost = tracer.stat(STAT_STACK_LOST) if args.stack else 0
        full = tracer.stat(STAT_SUMMARY_FULL) if options.summary else 0
        run.close()
        if not args.summary:
            cliutil.stderr(f"{shown[0]} drop{'' if shown[0] == 1 else 's'} shown, {lost} lost"
                           + hidden.text("; "))
        if full:
            cliutil.stderr(f"netbpf: {full} drops not counted: the summary table was full")
        if stack_lost:
            cliutil.stderr(f"netbpf: {stack_lost} stacks not recorded")

REASON_AT = DropEvent.reason.offset  # where a streamed record keeps its reason (drops.h)


class Hidden:
    """The frees that are not packet loss (reasons.NOT_LOSS): left out of what is shown,
    counted by reason, so the summary says what was left out."""

    def __init__(self, reasons: DropReasons, values: tuple[int, ...]) -> None:
        self.reasons = reasons
        self.values = frozenset(values)
        self._keys = {v.to_bytes(4, "little"): v for v in values}
        self._at = slice(REASON_AT, REASON_AT + 4)
        self.counts: Counter[int] = Counter()

    def raw(self, raw: bytes) -> bool:
        """For the stream: whether to hide this event (counted if so)."""
        value = self._keys.get(raw[self._at])
        if value is None:
            return False
        self.counts[value] += 1
        return True

    def rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """For the summary: the rows to show; the others' counts replace the last ones."""
        self.counts.clear()
        kept = []
        for row in rows:
            if row["reason_code"] in self.values:
                self.counts[row["reason_code"]] += row["count"]
            else:
                kept.append(row)
        return kept

    def text(self, lead: str) -> str:
        total = sum(self.counts.values())
        if not total:
            return ""
        each = ", ".join(f"{self.reasons.name(v)} {n}" for v, n in self.counts.most_common())
        return f"{lead}{total} not packet loss hidden ({each}; --all shows them)"


def _scope_text(f: DropFilter, formatter: DropFormatter) -> str:
    if not f.netns:
        return "in every network namespace"
    where = f"in {formatter.names.netns(f.netns)}"
    if f.ifindex:
        where += f" on {formatter.names.interface(f.netns, f.ifindex)}"
    return where


def _stream_loop(args: argparse.Namespace, tracer: DropTracer, formatter: DropFormatter,
                 shown: list[int], hidden: Hidden) -> int:
    """Print drops as they come; ``shown[0]`` counts them (read at exit, even on ^C)."""
    if not args.json:
        print(formatter.table.header(), flush=True)
    hide: Callable[[bytes], bool] | None = hidden.raw if hidden.values else None
    stream.run(tracer, formatter.json_line if args.json else formatter.text, sys.stdout,
               args.count or 0, cliutil.Deadline(args.duration), shown, hide)
    return 0


def _summary_rows(tracer: DropTracer, formatter: DropFormatter, previous: dict[Any, int],
                  elapsed: float, stacks: bool) -> list[dict[str, Any]]:
    rows = []
    for key, packets, nbytes in tracer.summary():
        rate = (packets - previous.get(key, 0)) / elapsed if elapsed > 0 else 0.0
        previous[key] = packets
        stack = tracer.stack(key.stack_id) if stacks else ()
        rows.append(formatter.summary_row(key, packets, nbytes, rate, stack))
    rows.sort(key=lambda r: (-r["count"], r["reason"], r["location"]))
    return rows


def _summary_loop(args: argparse.Namespace, tracer: DropTracer, formatter: DropFormatter,
                  hidden: Hidden) -> int:
    """Redraw the in-kernel counts every interval; the last table (or JSON) at exit."""
    table = Table(SUMMARY_COLUMNS + (FLOW_COLUMNS if args.by_flow else []))
    view = LiveView()
    deadline = cliutil.Deadline(args.duration)
    previous: dict[Any, int] = {}
    last = time.monotonic()

    def read() -> list[dict[str, Any]]:
        nonlocal last
        now = time.monotonic()
        rows = hidden.rows(_summary_rows(tracer, formatter, previous, now - last, args.stack))
        last = now
        return rows

    with StopSignals() as stop:
        for _ in stop.rounds(deadline, args.interval, sleep=True):
            if not args.json:
                view.show(_render_summary(table, read(), tracer, args.stack, hidden))
    rows = read()
    if args.json:
        for row in rows:
            print(json.dumps(row))
        if hidden.counts:
            cliutil.stderr("netbpf:" + hidden.text(" "))
    else:
        view.show(_render_summary(table, rows, tracer, args.stack, hidden))
    return 0


def _render_summary(table: Table, rows: list[dict[str, Any]], tracer: DropTracer, stacks: bool,
                    hidden: Hidden) -> str:
    total = sum(r["count"] for r in rows)
    head = f"{total} drops, {len(rows)} rows, filtered out {tracer.stat(STAT_FILTERED)}" + hidden.text(", ")
    if not rows:
        return head + "\n(no drops yet)"
    text = table.render(rows)
    if stacks:
        lines = text.splitlines()
        out = [lines[0]]
        for line, row in zip(lines[1:], rows, strict=True):
            out.append(line)
            out.extend(f"        {frame}" for frame in row.get("stack", []))
        text = "\n".join(out)
    return head + "\n" + text
