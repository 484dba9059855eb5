"""``netbpf accel enable|disable|status|bench``."""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from ... import cliutil
from ...errors import UsageError
from ...output import Column, Table, human_bytes
from .. import summary
from . import accel

EXAMPLES = """\
examples:
  netbpf accel enable                      every local TCP connection (cgroup v2 root)
  netbpf accel enable --ports 6379,8080    only connections from or to these ports
  netbpf accel enable --cgroup system.slice/app.service
                                           only sockets of processes in that cgroup
  netbpf accel status                      is it on, where, what it redirected
  netbpf accel status --connections        every accelerated socket, and how it sends now
  netbpf accel status --metrics :9464      Prometheus counters, read from the pins at each scrape
  netbpf accel disable                     back to plain TCP, nothing left (idempotent)
  netbpf accel bench                       measure it here: plain, netbpf, the seed's program, same run

What it does: a sock_ops program stores each new local TCP socket (both ends
on this host: a loopback address, or a host talking to its own address; each
network namespace apart) in a sockhash; an sk_msg program hands every send
straight to the peer socket, so the data never crosses the loopback TCP/IP
stack: a capture on lo sees the handshake and the teardown, no data. It never
breaks a connection: sockets opened before `enable` are left alone, a socket
whose peer is not in the map (outside the cgroup) uses TCP, and a socket goes
back to TCP for good when it streams small writes (64 in a row below 16 KiB,
nothing coming back: TCP is faster there) or when its reader leaves more than
--max-queued bytes unread (a redirect has no flow control; TCP's holds the
writer back).

  $ sudo netbpf accel enable --cgroup app --ports 5201,8080
  accel enabled on /sys/fs/cgroup/unified/app: local connections from or to ports 5201,8080
    pinned at /sys/fs/bpf/netbpf/accel: it stays on after this command; `netbpf accel disable` removes it
  $ sudo netbpf accel status             # after iperf3 -c 127.0.0.1 -b 4G, curl to [::1]:8080
  accel                             on
  cgroup                            /sys/fs/cgroup/unified/app
  scope                             local connections from or to ports 5201,8080
  sockets in the map                2                     # open accelerated sockets now
  redirected                        7,199 messages  897.9 MiB   # straight into the peer socket
  through TCP                       167 messages  20.9 MiB      # sent by sockets back on TCP
  sockets added                     6
  sockets refused                   0                     # sockhash full
  sockets on TCP, peer not in map   0                     # peer outside the cgroup: plain TCP
  sockets on TCP, small writes      0                     # streams of small writes: TCP is faster
  sockets on TCP, reader behind     1                     # iperf3's reader fell 36 MiB behind
  small writes                      below 16384 bytes, 64 in a row move a socket to TCP
  unread limit                      36.0 MiB redirected and unread, then the sender moves to TCP
  pinned at                         /sys/fs/bpf/netbpf/accel (programs 12399, 12401; sk_msg by link)
  $ sudo netbpf accel status --connections
  NETNS  LOCAL        REMOTE       SENDS     SMALL RUN
  accx   [::1]:8080   [::1]:46608  redirect          0
  accx   [::1]:46608  [::1]:8080   redirect          0
  $ sudo netbpf accel disable
  accel disabled on /sys/fs/cgroup/unified/app: detached and unpinned
    2 accelerated sockets are still open: data already handed to them is read first, their new
    data takes TCP; the kernel frees the programs when they close
"""

STATUS_FIELDS = [
    Column("enabled", "accel", text=lambda v: "on" if v else "off"),
    Column("cgroup", "cgroup"),
    Column("scope", "scope"),
    Column("sockets", "sockets in the map", text=lambda v: f"{v:,}"),
    Column("redirected", "redirected"),
    Column("tcp", "through TCP"),
    Column("sockets_added", "sockets added", text=lambda v: f"{v:,}"),
    Column("sockets_failed", "sockets refused", text=lambda v: f"{v:,}  (sockhash full?)" if v else "0"),
    Column("sockets_tcp_no_peer", "sockets on TCP, peer not in map", text=lambda v: f"{v:,}"),
    Column("sockets_tcp_small_writes", "sockets on TCP, small writes", text=lambda v: f"{v:,}"),
    Column("sockets_tcp_backlog", "sockets on TCP, reader behind", text=lambda v: f"{v:,}"),
    Column("small_writes", "small writes"),
    Column("queue_limit", "unread limit"),
    Column("max_unread", "most left unread", text=lambda v: f"{human_bytes(v)} at one reader"),
    Column("pinned", "pinned at"),
    Column("draining", "draining"),
]

SOCKET_COLUMNS = [
    Column("netns", "NETNS"),
    Column("local", "LOCAL"),
    Column("remote", "REMOTE"),
    Column("sends", "SENDS"),
    Column("small_run", "SMALL RUN", align=">"),
]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = cliutil.add_parser(sub, "accel", summary("accel"), EXAMPLES, _no_action)
    actions = parser.add_subparsers(dest="accel_command", metavar="ACTION", required=True)

    e = actions.add_parser("enable", help="load, attach and pin the acceleration (it stays on)",
                           description="Load, attach and pin; acceleration outlives the command.",
                           epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("--cgroup", metavar="PATH",
                   help="cgroup v2 whose sockets are accelerated, absolute or relative to the "
                        "cgroup v2 mount (default: the root: every process)")
    e.add_argument("--ports", metavar="P,...", type=_ports,
                   help="only connections from or to these ports (ranges allowed: 8000-8010)")
    e.add_argument("--no-demote", action="store_true",
                   help="redirect every message, even on sockets that stream small writes "
                        "(slower for those: see `netbpf accel bench`)")
    e.add_argument("--small-bytes", type=cliutil.int_in(1, cliutil.U32_MAX), default=accel.SMALL_BYTES,
                   metavar="N", help="a write below N bytes is small (default %(default)s)")
    e.add_argument("--demote-after", type=cliutil.int_in(1, cliutil.U32_MAX), default=accel.DEMOTE_AFTER,
                   metavar="N", help="small writes in a row, with nothing received, that move a "
                                     "socket back to TCP (default %(default)s)")
    e.add_argument("--max-queued", type=_size, default=None, metavar="BYTES",
                   help="redirected bytes a reader may leave unread before its peer moves to TCP "
                        "and TCP's flow control (default: as much as TCP lets a connection hold, "
                        "tcp_rmem max + tcp_wmem max; 0: no limit, memory is then unbounded)")
    _pin_dir(e)
    e.set_defaults(func=run_enable, needs_root=True)

    d = actions.add_parser("disable", help="stop accelerating; detach and unpin everything (idempotent)",
                           description="Stop redirecting, detach and unpin. Data already handed to "
                                       "a peer socket is still read in order; new data takes TCP.")
    _pin_dir(d)
    d.set_defaults(func=run_disable, needs_root=True)

    s = actions.add_parser("status", help="whether it is on, where, sockets and counters",
                           description="Read the pins: where acceleration is on, how many sockets "
                                       "are in the map, what was redirected.")
    cliutil.add_json(s)
    s.add_argument("--connections", action="store_true",
                   help="list every socket in the map and how it sends now")
    cliutil.add_metrics(s)
    cliutil.add_duration(s)
    _pin_dir(s)
    s.set_defaults(func=run_status, needs_root=True)

    b = actions.add_parser("bench", help="measure local TCP with and without acceleration, same run",
                           description="sockperf ping-pong (64 B, 1 KiB, 16 KiB), iperf3 streams "
                                       "(1 KiB and 64 KiB writes) and nginx serving a small file "
                                       "to wrk: plain, with netbpf accel and with the seed's "
                                       "program, in a namespace and cgroups of the benchmark's "
                                       "own; prints a markdown table of medians and ratios.")
    run_length = cliutil.float_in(0.0, 3600.0, "an hour")
    b.add_argument("--duration", dest="seconds", type=run_length, default=2.0, metavar="S",
                   help="how long each measured run lasts, in seconds (default %(default)s)")
    cliutil.add_old_spelling(b, "--seconds", "seconds", type=run_length, metavar="S")
    b.add_argument("--rounds", type=cliutil.int_in(1, 1000), default=3, metavar="N",
                   help="rounds, rotating the order of the modes (default %(default)s)")
    b.add_argument("--cells", metavar="LIST", default="",
                   help="only these runs, comma-separated: pp64,pp1k,pp16k,stream1k,stream64k,web "
                        "(default: all)")
    cliutil.add_json(b)
    b.set_defaults(func=run_bench, needs_root=True)


def _no_action(args: argparse.Namespace) -> int:
    raise UsageError("netbpf accel: say enable, disable, status or bench")


def _ports(text: str) -> tuple[int, ...]:
    try:
        return accel.parse_ports(text)
    except UsageError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--ports: ")) from None


def _size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    factor = units.get(t[-1:], 1)
    try:
        value = int(t[:-1] if factor > 1 else t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (bytes, or with K, M, G)") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text}")
    if value * factor > cliutil.U64_MAX:  # the kernel's queue_limit is a u64
        raise argparse.ArgumentTypeError(f"at most {cliutil.U64_MAX} bytes: {text}")
    return value * factor


def _pin_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pin-dir", metavar="DIR", type=Path, default=None,
                        help=f"where the pins live (default {accel.default_pin_dir()}); "
                             "another directory makes an independent instance, for tests")


def _resolve_pin_dir(args: argparse.Namespace) -> Path:
    return accel.check_pin_dir(args.pin_dir) if args.pin_dir else accel.default_pin_dir()


# -- enable / disable -----------------------------------------------------------------------

def run_enable(args: argparse.Namespace) -> int:
    options = accel.Options(cgroup=args.cgroup, ports=args.ports or (),
                            small_bytes=args.small_bytes,
                            demote_after=0 if args.no_demote else args.demote_after,
                            max_queued=args.max_queued)
    pin_dir = _resolve_pin_dir(args)
    status, already = accel.enable(options, pin_dir)
    verb = "already enabled" if already else "enabled"
    print(f"accel {verb} on {status.cgroup}: {accel.describe_scope(status.ports)}")
    print(f"  pinned at {pin_dir}: it stays on after this command; `netbpf accel disable` removes it")
    return 0


def run_disable(args: argparse.Namespace) -> int:
    result = accel.disable(_resolve_pin_dir(args))
    if not result.was_enabled:
        print("accel is not enabled: nothing to remove")
    else:
        print(f"accel disabled on {result.cgroup or 'its cgroup'}: detached and unpinned")
        if result.draining_sockets:
            n = result.draining_sockets
            print(f"  {n} accelerated socket{'s are' if n > 1 else ' is'} still open: data already "
                  "handed to them is read first, their new\n  data takes TCP; the kernel frees the "
                  "programs when they close")
    return 0


# -- status -------------------------------------------------------------------------------

def status_row(status: accel.Status) -> dict[str, Any]:
    c = status.counters
    row: dict[str, Any] = {"enabled": status.enabled}
    if status.enabled:
        row |= {
            "cgroup": status.cgroup,
            "scope": accel.describe_scope(status.ports),
            "sockets": status.sockets,
            "redirected": f"{c['messages_redirected']:,} messages  {human_bytes(c['bytes_redirected'])}",
            "tcp": f"{c['messages_tcp']:,} messages  {human_bytes(c['bytes_tcp'])}",
            "sockets_added": c["sockets_added"],
            "sockets_failed": c["sockets_failed"],
            "sockets_tcp_no_peer": c["sockets_tcp_no_peer"],
            "sockets_tcp_small_writes": c["sockets_tcp_small_writes"],
            "sockets_tcp_backlog": c["sockets_tcp_backlog"],
            "max_unread": c["max_unread_bytes"],
            "queue_limit": (f"{human_bytes(status.queue_limit)} redirected and unread, then the "
                            "sender moves to TCP" if status.queue_limit else "none (--max-queued 0)"),
            "small_writes": (f"below {status.small_bytes} bytes, {status.demote_after} in a row "
                             "move a socket to TCP" if status.demote_after else
                             "never moved to TCP (--no-demote)"),
            "pinned": f"{status.pin_dir} (programs {', '.join(map(str, status.programs.values()))}; "
                      f"sk_msg by {status.sk_msg_attach})",
        }
    if status.draining:
        row["draining"] = "; ".join(f"{d.sockets} sockets of a disabled instance "
                                    f"(sk_msg prog id {d.prog_id})" for d in status.draining)
    return row


def render_status(status: accel.Status) -> str:
    row = status_row(status)
    width = max(len(c.header) for c in STATUS_FIELDS) + 2
    return "\n".join(f"{c.header:<{width}} {c.text(row[c.key])}" for c in STATUS_FIELDS if c.key in row)


def run_status(args: argparse.Namespace) -> int:
    pin_dir = _resolve_pin_dir(args)
    if args.metrics:
        return _serve_metrics(args, pin_dir)
    if args.connections:
        table = Table(SOCKET_COLUMNS)
        socks = [dataclasses.asdict(s) for s in accel.sockets(pin_dir)]
        if args.json:
            for s in socks:
                print(table.json(s))
        elif socks:
            print(table.render(socks))
        else:
            status = accel.read_status(pin_dir)
            if not status.enabled:
                print("accel is not enabled")
            else:
                # The counters add up since enable; the map holds open sockets only.
                added = status.counters.get("sockets_added", 0)
                print(f"no socket in the map now: the {added:,} added since enable have all closed"
                      if added else "no socket in the map: none was added since enable")
        return 0
    status = accel.read_status(pin_dir)
    if args.json:
        print(json.dumps(status.as_dict()))
    else:
        print(render_status(status))
    return 0


def _serve_metrics(args: argparse.Namespace, pin_dir: Path) -> int:
    from ... import metrics
    from ...run import StopSignals
    from .metrics import families

    metrics.export(args.metrics, lambda: families(pin_dir))
    cliutil.stderr("netbpf accel: Ctrl-C to stop")  # metrics.serve() said where
    with StopSignals() as stop:
        for _ in stop.rounds(cliutil.Deadline(args.duration), 1.0, sleep=True):
            pass  # the exporter's thread answers scrapes
    return 0


# -- bench --------------------------------------------------------------------------------

def run_bench(args: argparse.Namespace) -> int:
    from . import bench

    cells = bench.select_cells(args.cells) if args.cells else None
    rows, failed = bench.run(args.seconds, args.rounds, cliutil.stderr, cells)
    if args.json:
        table = Table([*bench.COLUMNS, Column("key", "key")])
        for row in rows:
            print(table.json(row))
        return 0
    print(bench.markdown(rows))
    print()
    print(bench.summary(rows, failed, args.seconds, args.rounds))
    return 0
