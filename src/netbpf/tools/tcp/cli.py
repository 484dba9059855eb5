"""``netbpf tcp``: retransmits, resets, state changes and connection lifetimes."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ... import cliutil
from ...attrib.container import Container, container_of
from ...attrib.procfs import CgroupNames
from ...output import Column, LiveView, Table
from ...run import StopSignals
from ...tracepoints import stream
from ...tracepoints.names import TCP_STATES, Clock, Names, endpoint
from ...tracepoints.scope import add_scope_arguments, scope_netns
from .. import summary
from .kernel import EVENT_KINDS, FlowCounts, FlowKey, Kind, Tcp, TcpOptions, TcpTracer, Total, decode

HELP = summary("tcp")

EXAMPLES = """\
From the kernel's TCP tracepoints (tcp:tcp_retransmit_skb, tcp_retransmit_synack,
tcp_send_reset, tcp_receive_reset, sock:inet_sock_set_state). LOCAL is the
socket's own side; a RST sent for a packet to a closed port has no socket, and
its LOCAL is that packet's destination.

events (--events, default retrans,reset,life):
  retrans   a segment (or SYN-ACK) sent again: the socket's state, segments, its RTT
  reset     a RST sent (with the kernel's reason) or received
  state     every state change, SYN_SENT -> ESTABLISHED -> ... -> CLOSE
  life      one line per connection when it closes (bcc tcplife): who, bytes, duration

examples:
  netbpf tcp                                   retransmits, resets and closed connections
  netbpf --netns nb-client tcp --events state  the state machine of every connection there
  netbpf tcp --summary --by remote             counts per remote endpoint, refreshed in place
  netbpf tcp --port 443 --json | jq .          one JSON object per event
  netbpf tcp --metrics :9465                   Prometheus counters (retransmits, resets...)

  $ sudo netbpf --netns nb-client tcp --events all    (a tc program shot the gateway's ingress for 1.5 s)
  TIME             EVENT      NETNS       PID     COMM       LOCAL               REMOTE              DETAIL
  16:20:09.674475  STATE      nb-client   15923   python     10.0.1.2:0          10.0.1.1:7100       CLOSE -> SYN_SENT
  16:20:09.674595  STATE      nb-client   15923   python     10.0.1.2:36926      10.0.1.1:7100       SYN_SENT -> ESTABLISHED
  16:20:09.684659  RETRANS    nb-client   -       -          10.0.1.2:36926      10.0.1.1:7100       ESTABLISHED segs 1 (total 1) srtt 0.1 ms
  16:20:09.892646  RETRANS    nb-client   -       -          10.0.1.2:36926      10.0.1.1:7100       ESTABLISHED segs 1 (total 2) srtt 0.1 ms
  16:20:10.308642  RETRANS    nb-client   -       -          10.0.1.2:36926      10.0.1.1:7100       ESTABLISHED segs 1 (total 3) srtt 0.1 ms
  16:20:11.140704  RETRANS    nb-client   -       -          10.0.1.2:36926      10.0.1.1:7100       ESTABLISHED segs 1 (total 4) srtt 0.1 ms
  16:20:12.804678  RETRANS    nb-client   -       -          10.0.1.2:36926      10.0.1.1:7100       ESTABLISHED segs 1 (total 5) srtt 0.1 ms
  16:20:12.804773  RETRANS    nb-client   -       -          10.0.1.2:36926      10.0.1.1:7100       ESTABLISHED segs 4 (total 9) srtt 0.2 ms
  16:20:12.806926  STATE      nb-client   15923   python     10.0.1.2:36926      10.0.1.1:7100       ESTABLISHED -> FIN_WAIT1
  16:20:12.814981  STATE      nb-client   15919   python     10.0.1.2:36926      10.0.1.1:7100       FIN_WAIT1 -> FIN_WAIT2
  16:20:12.815000  STATE      nb-client   15919   python     10.0.1.2:36926      10.0.1.1:7100       FIN_WAIT2 -> CLOSE
  16:20:12.815002  CLOSE      nb-client   15923   python     10.0.1.2:36926      10.0.1.1:7100       tx 20002 B rx 2 B 3140.5 ms retrans 11
  ^C
  12 events shown, 0 lost
      (the RTO doubling 0.2, 0.4, 0.8, 1.6 s; "segs 4": one retransmitted skb carried 4 segments,
       counted as the kernel's RetransSegs counts them. PID and COMM are whoever ran when the
       kernel changed the state: the process for connect() and close(), often another task for
       the rest. tx/rx count sequence space, as tcplife does: a SYN and a FIN count one each)
"""

COLUMNS = [
    Column("time", "TIME", 15),
    Column("event", "EVENT", 9),
    Column("netns", "NETNS", 10),
    Column("pid", "PID", 6),
    Column("comm", "COMM", 9),
    Column("container", "CONTAINER", 19),
    Column("local", "LOCAL", 18),
    Column("remote", "REMOTE", 18),
    Column("detail", "DETAIL"),
]

SUMMARY_COLUMNS = [
    Column("retrans_segs", "RETRANS", align=">"),
    Column("retrans_failed", "FAILED", align=">"),
    Column("synack_retrans", "SYNACK_RTX", align=">"),
    Column("resets_sent", "RST_SENT", align=">"),
    Column("resets_received", "RST_RECV", align=">"),
    Column("closed", "CLOSED", align=">"),
    Column("netns", "NETNS"),
    Column("local", "LOCAL"),
    Column("remote", "REMOTE"),
]

EVENT_NAMES = {
    Kind.RETRANS: "RETRANS", Kind.SYNACK_RETRANS: "SYNACK_RTX", Kind.RESET_SENT: "RST_SENT",
    Kind.RESET_RECEIVED: "RST_RECV", Kind.STATE: "STATE", Kind.CLOSE: "CLOSE",
}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = cliutil.add_parser(sub, "tcp", HELP, EXAMPLES, run)
    p.add_argument("--events", default="retrans,reset,life", type=event_list, metavar="LIST",
                   help=f"comma-separated: {', '.join(EVENT_KINDS)} or all (default: retrans,reset,life)")
    add_scope_arguments(p)
    cliutil.add_summary(p, "counts of retransmits, resets and closed connections per flow "
                           "(or per remote endpoint), refreshed every second (with --json: once, at exit)")
    p.add_argument("--by", choices=["flow", "remote"], default=None,
                   help="--summary: one row per flow (default) or per remote endpoint")
    p.add_argument("--interval", type=cliutil.interval, default=1.0, metavar="S",
                   help="--summary: seconds between refreshes (default 1)")
    cliutil.add_json(p)
    cliutil.add_count(p, "events")
    cliutil.add_duration(p)
    cliutil.add_metrics(p)
    cliutil.add_privileges(p)


def event_list(text: str) -> frozenset[Kind]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == ["all"]:
        names = list(EVENT_KINDS)
    unknown = [n for n in names if n not in EVENT_KINDS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown event {', '.join(unknown) or text!r} "
                                         f"(choose from {', '.join(EVENT_KINDS)}, all)")
    return frozenset(k for n in names for k in EVENT_KINDS[n])


class TcpFormatter:
    def __init__(self, names: Names | None = None) -> None:
        self.names = names or Names()
        self.clock = Clock()
        self.table = Table(COLUMNS)
        self.rst_reasons = _rst_reasons()
        self._cgroups: CgroupNames | None = None

    def cgroup(self, cgroup_id: int) -> str | None:
        """The cgroup v2 path of an id (None: removed, or no cgroup v2 here)."""
        if self._cgroups is None:
            from ...bpf.fs import cgroup2_root
            from ...errors import NotSupported

            try:
                self._cgroups = CgroupNames(cgroup2_root())
            except NotSupported:
                return None
        return self._cgroups.path(cgroup_id) if cgroup_id else None

    def container(self, t: Tcp) -> Container | None:
        path = self.cgroup(t.cgroup_id)
        return container_of(path) if path else None

    def rst_reason(self, value: int) -> str:
        """enum sk_rst_reason by name, from the running kernel's BTF (it changes too)."""
        return self.rst_reasons.get(value, str(value))

    def detail(self, t: Tcp) -> str:
        state = TCP_STATES.get(t.newstate, str(t.newstate))
        if t.kind == Kind.RETRANS:
            text = f"{state} segs {t.segs} (total {t.total_retrans}) srtt {t.srtt_us / 1000:.1f} ms"
            return text + (f" failed: error {t.err}" if t.err else "")
        if t.kind == Kind.SYNACK_RETRANS:
            return "SYN-ACK"
        if t.kind == Kind.RESET_SENT:
            return f"reason {self.rst_reason(t.reason)}" + (f" state {state}" if t.skaddr else "")
        if t.kind == Kind.RESET_RECEIVED:
            return state
        if t.kind == Kind.STATE:
            return f"{TCP_STATES.get(t.oldstate, t.oldstate)} -> {state}"
        return (f"tx {t.tx_bytes} B rx {t.rx_bytes} B {t.duration_ns / 1e6:.1f} ms "
                f"retrans {t.total_retrans}")

    def row(self, t: Tcp) -> dict[str, Any]:
        in_process = t.kind in (Kind.STATE, Kind.CLOSE)
        return {
            "time": self.clock.text(t.ts_ns), "event": EVENT_NAMES[t.kind],
            "netns": self.names.netns(t.netns), "pid": t.pid if in_process else None,
            "comm": t.comm if in_process else None,
            "container": _short(self.container(t)) if in_process else None,
            "local": endpoint(t.laddr, t.lport), "remote": endpoint(t.raddr, t.rport),
            "detail": self.detail(t),
        }

    def text(self, raw: bytes) -> str:
        return self.table.text(self.row(decode(raw)))

    def json_object(self, raw: bytes) -> dict[str, Any]:
        t = decode(raw)
        obj: dict[str, Any] = {
            "time": round(self.clock.epoch(t.ts_ns), 6), "event": EVENT_NAMES[t.kind].lower(),
            "netns": self.names.netns(t.netns), "netns_inode": t.netns,
            "local": endpoint(t.laddr, 0, False), "lport": t.lport,
            "remote": endpoint(t.raddr, 0, False), "rport": t.rport,
            "state": TCP_STATES.get(t.newstate, t.newstate),
        }
        if t.kind in (Kind.STATE, Kind.CLOSE):
            c = self.container(t)
            obj.update(cgroup=self.cgroup(t.cgroup_id), container=c.id if c else None,
                       container_runtime=c.runtime if c else None, pod=c.pod if c else None)
        if t.kind == Kind.STATE:
            obj.update(oldstate=TCP_STATES.get(t.oldstate, t.oldstate), pid=t.pid, comm=t.comm)
        elif t.kind == Kind.RETRANS:
            obj.update(segs=t.segs, err=t.err, total_retrans=t.total_retrans, srtt_us=t.srtt_us)
        elif t.kind == Kind.RESET_SENT:
            obj.update(reason=self.rst_reason(t.reason), has_socket=bool(t.skaddr))
            if not t.skaddr:
                obj["state"] = None
        elif t.kind == Kind.CLOSE:
            obj.update(pid=t.pid, comm=t.comm, tx_bytes=t.tx_bytes, rx_bytes=t.rx_bytes,
                       duration_ms=round(t.duration_ns / 1e6, 3), total_retrans=t.total_retrans,
                       srtt_us=t.srtt_us)
        return obj

    def summary_row(self, key: FlowKey, counts: FlowCounts) -> dict[str, Any]:
        return {
            "retrans_segs": counts.retrans_segs, "retrans_failed": counts.retrans_failed,
            "synack_retrans": counts.synack_retrans, "resets_sent": counts.resets_sent,
            "resets_received": counts.resets_received, "closed": counts.closed,
            "netns": self.names.netns(key.netns), "netns_inode": key.netns,
            "local": endpoint(key.laddr, key.lport) if key.laddr else None,
            "remote": endpoint(key.raddr, key.rport),
        }


def _short(c: Container | None) -> str | None:
    """RUNTIME:ID12, the table's container (JSON has the full id and the pod)."""
    return f"{c.runtime}:{c.short_id}" if c else None


def _rst_reasons() -> dict[int, str]:
    from ...bpf.btf import vmlinux
    from ...errors import NotSupported

    try:
        values = vmlinux().enum_values("sk_rst_reason")
    except (KeyError, NotSupported):
        return {}
    return {v: n.removeprefix("SK_RST_REASON_") for n, v in values.items()}


def run(args: argparse.Namespace) -> int:
    cliutil.require(not (args.count and args.summary), "-c counts streamed events; use --duration with --summary")
    # Streamed events have no rows to group: --by alone would be silently ignored.
    cliutil.require(args.by is None or args.summary, f"--by {args.by} groups --summary's rows: add --summary")
    options = TcpOptions(kinds=args.events, stream=not args.summary, summary=args.summary,
                         by_remote=args.by == "remote", netns=scope_netns(args), network=args.host,
                         port=args.port, count_all=bool(args.metrics))
    formatter = TcpFormatter()
    tracer = TcpTracer(options).start()
    where = f"in {formatter.names.netns(options.netns)}" if options.netns else "in every network namespace"
    cliutil.stderr(f"netbpf: watching TCP {where}; Ctrl-C to stop")
    shown = [0]
    try:
        if args.metrics:
            from ... import metrics
            from .metrics import tcp_families

            metrics.export(args.metrics, lambda: tcp_families(tracer))
        formatter.names.prime()  # entering other namespaces to name interfaces needs root
        cliutil.relinquish(args)  # tracepoint links: closing them detaches
        if args.summary:
            return _summary_loop(args, tracer, formatter)
        return _stream_loop(args, tracer, formatter, shown)
    finally:
        lost = tracer.lost
        full = tracer.total(Total.SUMMARY_FULL) if args.summary else 0
        tracer.close()
        if not args.summary:
            cliutil.stderr(f"{shown[0]} event{'' if shown[0] == 1 else 's'} shown, {lost} lost")
        if full:
            cliutil.stderr(f"netbpf: {full} events not counted: the summary table was full")


def _stream_loop(args: argparse.Namespace, tracer: TcpTracer, formatter: TcpFormatter,
                 shown: list[int]) -> int:
    if not args.json:
        print(formatter.table.header(), flush=True)
    render = (lambda raw: json.dumps(formatter.json_object(raw))) if args.json else formatter.text
    stream.run(tracer, render, sys.stdout, args.count or 0, cliutil.Deadline(args.duration), shown)
    return 0


def _summary_loop(args: argparse.Namespace, tracer: TcpTracer, formatter: TcpFormatter) -> int:
    columns = SUMMARY_COLUMNS if args.by != "remote" else [c for c in SUMMARY_COLUMNS if c.key != "local"]
    table = Table(columns)
    view = LiveView()
    deadline = cliutil.Deadline(args.duration)

    def rows() -> list[dict[str, Any]]:
        out = [formatter.summary_row(k, c) for k, c in tracer.summary()]
        out.sort(key=lambda r: (-(r["retrans_segs"] + r["resets_sent"] + r["resets_received"]),
                                -r["closed"], r["remote"]))
        return out

    def render(current: list[dict[str, Any]]) -> str:
        head = (f"retransmitted segments {tracer.total(Total.RETRANS_SEGS)}, resets sent "
                f"{tracer.total(Total.RESETS_SENT)}, received {tracer.total(Total.RESETS_RECEIVED)}, "
                f"connections closed {tracer.total(Total.CLOSED)}")
        return head + "\n" + (table.render(current) if current else "(nothing yet)")

    with StopSignals() as stop:
        for _ in stop.rounds(deadline, args.interval, sleep=True):
            if not args.json:
                view.show(render(rows()))
    final = rows()
    if args.json:
        for row in final:
            print(json.dumps(row))
    else:
        view.show(render(final))
    return 0
