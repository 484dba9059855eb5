"""``netbpf fault ACTION -i IFACE [selection] [EXPRESSION]`` and ``netbpf fault stop``."""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from typing import Any

from ... import cliutil, netdev, privilege
from ...errors import NetbpfError, UsageError
from ...output import Column, LiveView, Table
from ...run import StopSignals
from .. import summary
from .kernel import (
    ACTIONS,
    DEFAULT_FLOWS,
    MAX_CORRUPT_BYTES,
    Action,
    ActiveFault,
    Counts,
    Fault,
    Hook,
    Selection,
    check_pin_free,
    parse_tcp_flags,
    stop,
)

HELP = summary("fault")

EXAMPLES = """\
examples:
  netbpf fault ttl -i eth0 icmp                     received ICMP gets a random TTL in 1..TTL
  netbpf fault tcp-flags --set PSH --ratio 10 -i eth0 --direction egress tcp port 5201
                                                    the seed's bug: PSH on 1 in 10 sent segments
                                                    (SYN/FIN/RST/PSH segments are left alone)
  netbpf fault tcp-flags --set PSH --first-per-flow -i eth0 --direction egress tcp
                                                    only the first eligible segment of each connection
  netbpf fault drop --probability 0.3 -i eth0 udp   30% loss on received UDP
  netbpf fault corrupt --limit 5 -i eth0 'tcp port 80'
                                                    5 segments with a flipped payload byte and a bad checksum
  netbpf fault duplicate -i eth0 --direction egress icmp
  netbpf fault rst --first-per-flow -i eth0 'tcp port 6379 and tcp[tcpflags] & tcp-push != 0'
  netbpf fault drop --pin -i eth0 'udp port 53'     stays after exit ...
  netbpf fault stop -i eth0                         ... until stopped (or netbpf cleanup)

On the lab (netbpf lab up), PSH on 1 in 10 segments the gateway sends to a backend:

  $ sudo netbpf --netns nb-gw fault tcp-flags --set PSH --ratio 10 -i b1 --direction egress tcp dst port 5201
  netbpf fault: tcp-flags --set PSH (skipping FIN,SYN,RST segments), on 1 in 10 packets matching 'tcp dst port 5201' on b1 egress (tcx)
  netbpf fault: Ctrl-C to stop
  ACTION     WHERE                       SEEN      MATCHED       HIT   SKIPPED   ERRORS    TIME
  tcp-flags  b1 egress (tcx)           322581       314647     31550      7933        0    3.6s
  ^C
  netbpf fault: tcp-flags on b1 egress (tcx): 322581 seen, 314647 matched, 31550 hit (10.0% of matched), 7933 skipped, 0 errors in 3.6 s; detached

SEEN: packets at the hook; MATCHED: the expression matched and the action
applies; SKIPPED: the expression matched but the action had nothing to do
(here: segments that already carry PSH); HIT: acted on. The table refreshes
in place on a terminal; --json prints one object per refresh and a last one
with "final": true.

Selection: EXPRESSION (tcpdump syntax) chooses the packets; the action must
apply (tcp-flags and rst need TCP, corrupt a payload, ttl IP); then --ratio N,
--probability P, --every N or --first-per-flow pick which of those are hit,
and --limit COUNT stops after COUNT hits.

Hooks: egress runs in tc. Ingress runs in XDP where the driver runs XDP
natively, else in tc ingress (on a veth, XDP turns off the peer's GSO; see
the README); duplicate needs tc. XDP acts before tcpdump on that interface
sees the packet, tc ingress after, tc egress before. Nothing stays attached
after exit, Ctrl-C or SIGTERM unless --pin.
"""

COLUMNS = [
    Column("action", "ACTION"),
    Column("where", "WHERE", 20),
    Column("seen", "SEEN", 10, ">"),
    Column("matched", "MATCHED", 11, ">"),
    Column("hit", "HIT", 8, ">"),
    Column("skipped", "SKIPPED", 8, ">"),
    Column("errors", "ERRORS", 7, ">"),
    Column("elapsed", "TIME", 6, ">", text=lambda s: f"{s:.1f}s"),
]

ACTION_HELP = {
    "ttl": "set the IPv4 TTL / IPv6 hop limit (random in 1..current, or --value)",
    "tcp-flags": "set or clear TCP flags (FIN SYN RST PSH ACK URG ECE CWR)",
    "drop": "drop the packets",
    "corrupt": "flip payload bytes (bad checksum unless --keep-checksum)",
    "duplicate": "send each packet twice (tc only)",
    "rst": "turn TCP segments into resets",
}


# The kernel hits a packet when bpf_get_prandom_u32() is below P * 2**32: a P
# smaller than 2**-32 (or a ratio above 2**32) would hit nothing.
MAX_RATIO = 1 << 32
MAX_FLOWS = 1 << 22  # an LRU hash of 4M connections is already ~400 MiB of kernel memory


def probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 / MAX_RATIO <= value <= 1.0:  # NaN fails both
        raise argparse.ArgumentTypeError(f"must be above 0 (at least 2**-32) and at most 1: {text}")
    return value


def ttl_value(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text}") from None
    if not 0 <= value <= 255:
        raise argparse.ArgumentTypeError(f"must be 0..255: {text}")
    return value


def corrupt_bytes(text: str) -> int:
    value = cliutil.positive_int(text)
    if value > MAX_CORRUPT_BYTES:
        raise argparse.ArgumentTypeError(f"at most {MAX_CORRUPT_BYTES}")
    return value


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    cliutil.add_interface(common)
    where = common.add_argument_group("where")
    where.add_argument("--direction", choices=["ingress", "egress"], default="ingress",
                       help="received (default) or sent packets")
    where.add_argument("--hook", choices=["auto", "xdp", "tc"], default="auto",
                       help="auto: tc for egress and duplicate; for ingress XDP where the driver "
                            "runs it natively, else tc (veths)")
    where.add_argument("--xdp-mode", choices=["auto", "skb", "drv"], default="auto")
    where.add_argument("--tc-mode", choices=["auto", "tcx", "cls_bpf"], default="auto")
    which = common.add_argument_group("which packets (after EXPRESSION)")
    sel = which.add_mutually_exclusive_group()
    sel.add_argument("--ratio", type=cliutil.int_in(1, MAX_RATIO, "1 in 2**32"), metavar="N",
                     help="hit each matched packet with probability 1/N")
    sel.add_argument("--probability", type=probability, metavar="P",
                     help="hit each matched packet with probability P")
    sel.add_argument("--every", type=cliutil.positive_int, metavar="N",
                     help="hit every Nth matched packet")
    sel.add_argument("--first-per-flow", action="store_true",
                     help="hit only the first matched packet of each connection")
    which.add_argument("--limit", type=cliutil.positive_int, metavar="COUNT",
                       help="stop after COUNT hits (and exit)")
    which.add_argument("--flows", type=cliutil.int_in(1, MAX_FLOWS), metavar="N", default=DEFAULT_FLOWS,
                       help=f"--first-per-flow: connections remembered (LRU, default {DEFAULT_FLOWS})")
    cliutil.add_duration(common)
    run = common.add_argument_group("running")
    run.add_argument("--pin", action="store_true",
                     help="keep the fault after exit, until `netbpf fault stop` or `netbpf cleanup`")
    run.add_argument("--interval", type=cliutil.interval, metavar="S", default=1.0,
                     help="refresh the counters every S seconds (default 1)")
    cliutil.add_json(common)
    cliutil.add_metrics(common)
    cliutil.add_privileges(common)
    common.add_argument("expression", nargs="*", metavar="EXPRESSION",
                        help="tcpdump filter expression (default: every packet)")
    return common


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = cliutil.add_parser(sub, "fault", HELP, EXAMPLES, run)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    common = _common_options()

    def action_parser(name: str, examples: str = "") -> argparse.ArgumentParser:
        return actions.add_parser(name, parents=[common], help=ACTION_HELP[name],
                                  description=ACTION_HELP[name], epilog=examples or EXAMPLES,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)

    p = action_parser("ttl")
    p.add_argument("--value", type=ttl_value, metavar="V", help="set this TTL instead of a random one")
    p = action_parser("tcp-flags")
    p.add_argument("--set", metavar="FLAGS", default="", help="flags to set, e.g. PSH or psh,ack")
    p.add_argument("--clear", metavar="FLAGS", default="", help="flags to clear")
    p.add_argument("--skip", metavar="FLAGS",
                   help="leave segments carrying any of these alone (default: SYN,FIN,RST unless "
                        "--set/--clear names one of them; 'none' for no skipping)")
    action_parser("drop")
    p = action_parser("corrupt")
    p.add_argument("--bytes", type=corrupt_bytes, default=1, metavar="N",
                   help="consecutive payload bytes to flip, at a random place (default 1)")
    p.add_argument("--keep-checksum", action="store_true",
                   help="fix the checksum so that the receiver accepts the damaged payload")
    action_parser("duplicate")
    action_parser("rst")

    s = actions.add_parser("stop", help="remove pinned faults (all, or those on -i IFACE)",
                           description="remove faults left in place with --pin")
    cliutil.add_interface(s, required=False)
    s.add_argument("--direction", choices=["ingress", "egress"])
    s.set_defaults(func=run_stop)


def fault_from_args(args: argparse.Namespace) -> Fault:
    action = ACTIONS[args.action]
    if args.first_per_flow:
        selection = Selection("first-per-flow", limit=args.limit or 0, flows=args.flows)
    elif args.ratio:
        selection = Selection("sample", probability=1 / args.ratio, limit=args.limit or 0)
    elif args.probability is not None:
        selection = Selection("sample", probability=args.probability, limit=args.limit or 0)
    elif args.every:
        selection = Selection("every", every=args.every, limit=args.limit or 0)
    else:
        selection = Selection("all", limit=args.limit or 0)
    options: dict[str, Any] = {}
    if action == Action.TTL:
        options["ttl"] = args.value
    elif action == Action.TCP_FLAGS:
        options["set_flags"] = parse_tcp_flags(args.set) if args.set else 0
        options["clear_flags"] = parse_tcp_flags(args.clear) if args.clear else 0
        if args.skip is not None:
            options["skip_flags"] = parse_tcp_flags(args.skip)
    elif action == Action.CORRUPT:
        options["corrupt_bytes"] = args.bytes
        options["keep_checksum"] = args.keep_checksum
    return Fault(action, " ".join(args.expression).strip(), selection, **options)


def run(args: argparse.Namespace) -> int:
    fault = fault_from_args(args)
    hook = Hook(args.interface, args.direction, args.hook, args.xdp_mode, args.tc_mode)
    if args.pin:
        return _run_pinned(fault, hook, args)
    active = ActiveFault.start(fault, hook)
    started = time.monotonic()
    try:
        cliutil.stderr(f"netbpf fault: {fault.describe()} on {active.where}")
        if active.note:
            cliutil.stderr(f"netbpf fault: note: {active.note}")
        if args.metrics:
            from ... import metrics
            from .metrics import families

            metrics.export(args.metrics, lambda: families(active))
        cliutil.relinquish(args, keep=privilege.to_detach(active.attachment))
        cliutil.stderr("netbpf fault: Ctrl-C to stop" + (f" (or after {args.duration:g} s)" if args.duration else ""))
        _watch(active, args, started)
    finally:
        # A second Ctrl-C or SIGTERM must not cut the detach short: the process ends
        # right after this, and blocked signals die with it.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        counts = active.counts()
        active.close()
        elapsed = time.monotonic() - started
        if args.json:
            print(json.dumps({**_row(active, counts, elapsed), "final": True}), flush=True)
        cliutil.stderr(f"netbpf fault: {fault.action.cli_name} on {active.where}: {counts.summary()} "
                       f"in {elapsed:.1f} s; detached")
    if not active.interface_present():
        raise NetbpfError(f"{hook.interface} was deleted while the fault ran: stopped, nothing of netbpf left on it")
    return 0


def _run_pinned(fault: Fault, hook: Hook, args: argparse.Namespace) -> int:
    if args.duration:
        raise UsageError("--duration ends the fault with this process; a --pin fault lasts until "
                         "`netbpf fault stop` (use one or the other)")
    if args.metrics:
        raise UsageError("--metrics serves this process's counters; a --pin fault outlives it "
                         "(use one or the other)")
    check_pin_free(hook.interface, hook.direction)
    with ActiveFault.start(fault, hook) as active:
        path = active.pin()
        cliutil.stderr(f"netbpf fault: {fault.describe()} on {active.where}")
        if active.note:
            cliutil.stderr(f"netbpf fault: note: {active.note}")
        cliutil.stderr(f"netbpf fault: pinned at {path}: it stays after this command; "
                       f"`netbpf fault stop -i {hook.interface}` (or `netbpf cleanup`) removes it")
    return 0


def _row(active: ActiveFault, counts: Counts, elapsed: float) -> dict[str, Any]:
    return {"action": active.fault.action.cli_name, "where": active.where,
            "interface": active.hook.interface, "direction": active.hook.direction,
            "hook": active.kind, **counts.as_dict(), "elapsed": round(elapsed, 3)}


def _watch(active: ActiveFault, args: argparse.Namespace, started: float) -> None:
    table = Table(COLUMNS)
    view = None if args.json else LiveView(sys.stdout)
    deadline = cliutil.Deadline(args.duration)
    limit = active.fault.selection.limit
    next_refresh = started + args.interval
    with StopSignals() as stop:  # Ctrl-C, SIGTERM: the caller prints the last counts
        while not stop.stopped.wait(deadline.remaining(min(0.1, args.interval))):
            now = time.monotonic()
            counts = active.counts()
            done = (deadline.expired() or bool(limit and counts.hit + counts.errors >= limit)
                    or not active.interface_present())
            if now >= next_refresh or done:
                next_refresh = now + args.interval
                row = _row(active, counts, now - started)
                if view is None:
                    print(json.dumps({k: row[k] for k in row}), flush=True)
                else:
                    view.show(table.render([row]))
            if done:
                return


def run_stop(args: argparse.Namespace) -> int:
    stopped = stop(args.interface, args.direction)
    for p, counts in stopped:
        print(f"stopped the fault on {p.where}: {counts.summary()}")
    if not stopped:
        if args.interface is not None:
            netdev.ifindex(args.interface)  # a typo is an error, not "nothing to stop"
        where = f" on {args.interface}" if args.interface else ""
        print(f"no pinned fault{where}")
    return 0
