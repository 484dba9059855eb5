"""What the kernel counted (``count.h``): per-backend figures read from maps.

With ``--summary`` and ``--metrics`` nothing per transaction crosses into user
space: the filter counts requests, status classes, body bytes and a latency
histogram per backend in a per-CPU hash, and this module sums the CPUs and
turns the histogram into percentiles. Buckets are exact below 32 ns, then 32
per power of two: a percentile read at a bucket's middle is within 1/64 (1.6%)
of the exact value.

What the kernel did not follow is counted beside: requests outstanding when a
connection stopped being followed (UNPAIRED), and connections not followed
from some point on or at all (NOT-FOLLOWED). With hand-off their frames go to
the user-space path, whose transactions are merged here (``add``).
"""
from __future__ import annotations

import ctypes
import ipaddress
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ...bpf import BpfObject
from ...bpf.maps import possible_cpus
from ...output import Column, Table
from .kernel import BPF_OBJECT as BPF_OBJECT  # test_layouts checks the shared structs against it
from .kernel import Counter
from .roles import FRONT, Roles
from .summary import BACKEND_COLUMNS, STATUS_CLASSES, TAG_COLUMNS, Balance, Summary, balance_of
from .tracer import Transaction

FIFO = 64
HEAD_MAX = 2048
SUB_BITS = 5
MAX_LOG = 42
BUCKETS = (MAX_LOG - SUB_BITS + 2) << SUB_BITS

LOST_REASONS = {
    Counter.K_LOST_GAP: "sequence gap or reordering",
    Counter.K_LOST_HEAD_SPLIT: "head split over segments",
    Counter.K_LOST_HEAD_LONG: f"head over {HEAD_MAX} bytes",
    Counter.K_LOST_NOT_HTTP: "not HTTP/1.x",
    Counter.K_LOST_LENGTH: "body length unknown",
    Counter.K_LOST_CHUNK: "chunk line split or trailers",
    Counter.K_LOST_PIPELINE: f"over {FIFO} pipelined",
    Counter.K_LOST_STEPS: "too many messages in a segment",
    Counter.K_LOST_UNSYNCED: "handshake not seen",
}


class BackendKey(ctypes.Structure):
    """``struct http_backend_key``."""

    _c_name_ = "http_backend_key"
    _fields_ = [("addr", ctypes.c_uint8 * 16), ("port", ctypes.c_uint16), ("family", ctypes.c_uint8),
                ("pad", ctypes.c_uint8)]


class BackendStats(ctypes.Structure):
    """``struct http_backend_stats``."""

    _c_name_ = "http_backend_stats"
    _fields_ = [("requests", ctypes.c_uint64), ("status", ctypes.c_uint64 * 5),
                ("no_response", ctypes.c_uint64), ("unpaired", ctypes.c_uint64),
                ("connections", ctypes.c_uint64), ("lost_connections", ctypes.c_uint64),
                ("midstream", ctypes.c_uint64), ("handed_off", ctypes.c_uint64),
                ("request_body", ctypes.c_uint64),
                ("response_body", ctypes.c_uint64), ("latency_unknown", ctypes.c_uint64),
                ("latency_sum_ns", ctypes.c_uint64), ("latency", ctypes.c_uint64 * BUCKETS),
                ("client_sample", ctypes.c_uint8 * 16), ("records_lost", ctypes.c_uint64)]


SHARED_STRUCTS = (BackendKey, BackendStats)
_SCALARS = [f[0] for f in BackendStats._fields_ if f[0] not in ("status", "latency", "client_sample")]


def bucket_of(ns: int) -> int:
    """``latency_bucket()`` of count.h."""
    if ns < 1 << SUB_BITS:
        return max(ns, 0)
    log = ns.bit_length() - 1
    if log > MAX_LOG:
        return BUCKETS - 1
    return ((log - SUB_BITS + 1) << SUB_BITS) + ((ns >> (log - SUB_BITS)) & ((1 << SUB_BITS) - 1))


def bucket_value(b: int) -> float:
    """The middle of bucket ``b``, in ns."""
    if b < 1 << SUB_BITS:
        return float(b)
    log = (b >> SUB_BITS) + SUB_BITS - 1
    sub = b & ((1 << SUB_BITS) - 1)
    width = 1 << (log - SUB_BITS)
    return ((1 << SUB_BITS) + sub) * width + (width - 1) / 2


def hist_percentile(hist: list[int], q: float) -> float | None:
    """Nearest-rank percentile (ns) of a histogram, at its bucket's middle."""
    total = sum(hist)
    if not total:
        return None
    rank = max(1, math.ceil(q / 100 * total))
    seen = 0
    for b, n in enumerate(hist):
        seen += n
        if seen >= rank:
            return bucket_value(b)
    return None  # pragma: no cover: seen reaches total


@dataclass(slots=True)
class KernelBackend:
    requests: int = 0
    status: list[int] = field(default_factory=lambda: [0] * 5)
    no_response: int = 0
    unpaired: int = 0
    connections: int = 0
    lost_connections: int = 0
    midstream: int = 0
    handed_off: int = 0
    request_body: int = 0
    response_body: int = 0
    latency_unknown: int = 0
    latency_sum_ns: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    unknown: int = 0  # user-space path: exchanges the capture cannot tell about (summary.outcome)
    records_lost: int = 0  # paired, but no line: the record ring was full (or the request evicted)
    clients: set[bytes] = field(default_factory=set)  # sampled client addresses, one per CPU
    family: int = 4

    def add_raw(self, raw: bytes) -> None:
        s = BackendStats.from_buffer_copy(raw[:ctypes.sizeof(BackendStats)])
        sample = bytes(s.client_sample)
        if any(sample):
            self.clients.add(sample)
        for name in _SCALARS:
            setattr(self, name, getattr(self, name) + getattr(s, name))
        for i in range(5):
            self.status[i] += s.status[i]
        hist = self.latency
        for i, n in enumerate(s.latency):
            if n:
                hist[i] += n

    @property
    def not_followed(self) -> int:
        return self.lost_connections


def format_backend(key: BackendKey) -> str:
    raw = bytes(key.addr)
    if key.family == 4:
        return f"{ipaddress.IPv4Address(raw[:4])}:{key.port}"
    return f"[{ipaddress.IPv6Address(raw)}]:{key.port}"


def format_client(sample: bytes, family: int) -> str:
    """A sampled client address, as Roles takes it (no port: only the address counts)."""
    if family == 4:
        return f"{ipaddress.IPv4Address(sample[:4])}:0"
    return f"[{ipaddress.IPv6Address(sample)}]:0"


def read_backends(obj: BpfObject) -> dict[str, KernelBackend]:
    """Each backend of ``backend_index``, its slot of the per-CPU array ``backends``,
    CPUs summed."""
    m = obj.map("backends")
    out: dict[str, KernelBackend] = {}
    for key, slot in obj.map("backend_index").items():
        k = BackendKey.from_buffer_copy(key)
        b = out.setdefault(format_backend(k), KernelBackend())
        for value in m.lookup_percpu(slot):
            b.add_raw(value)
        b.family = k.family
    return out


def clear_backends(obj: BpfObject) -> None:
    """Forget every backend and its figures (tests replaying case after case)."""
    index, stats, nxt = obj.map("backend_index"), obj.map("backends"), obj.map("backend_next")
    zero = bytes(((stats.value_size + 7) & ~7) * possible_cpus())
    for slot in range(1, min(int.from_bytes(nxt.lookup(0) or bytes(4), "little") + 1, stats.max_entries)):
        stats.update(slot, zero)
    index.clear()
    nxt.update(0, bytes(4))


def _ms(ns: float | None) -> float | None:
    return None if ns is None else round(ns / 1e6, 3)


# summary's backend table, with what only the kernel's counting knows before the percentiles.
_FIRST_PERCENTILE = next(i for i, c in enumerate(BACKEND_COLUMNS) if c.key == "p50_ms")
KERNEL_COLUMNS = [
    *BACKEND_COLUMNS[:_FIRST_PERCENTILE],
    Column("unpaired", "UNPAIRED", align=">"),
    Column("not_followed", "NOT-FOLLOWED", align=">"),
    *BACKEND_COLUMNS[_FIRST_PERCENTILE:],
]

RECORDS_LOST_COLUMN = Column("records_lost", "NO-LINE", align=">")


class KernelSummary(Summary):
    """The per-backend table from the kernel's maps, plus what user space
    traced of the connections handed to it; the same rows as :class:`Summary`
    with two columns of loss: UNPAIRED and NOT-FOLLOWED."""

    def __init__(self, obj: BpfObject, expected_backends: Iterable[str] = (), roles: Roles | None = None,
                 records: bool = False, hand_off: bool = True, uncounted: Callable[[], str] | None = None) -> None:
        """``hand_off``: the connections the kernel stops following go on in user space
        (the socket filter); without it (tc) their later requests are never counted."""
        super().__init__(expected_backends, roles, uncounted)
        self.hand_off = hand_off
        self.obj = obj
        self.records = records  # lines from kernel records: their loss gets a column
        self.kernel: dict[str, KernelBackend] = {}
        self.user_transactions = 0

    def add(self, tx: Transaction) -> None:
        self.user_transactions += 1
        super().add(tx)

    def refresh(self) -> None:
        self.kernel = read_backends(self.obj)
        for name, backend in self.kernel.items():
            for client in backend.clients:
                self.roles.add(name, format_client(client, backend.family))  # a remote one is kept

    def merged(self) -> dict[str, KernelBackend]:
        """The kernel's figures plus the user-space path's (handed-off connections)."""
        merged = dict(self.kernel)
        for name, us in self.backends.items():
            k = merged.get(name, KernelBackend())
            b = merged[name] = KernelBackend(**{f: getattr(k, f) for f in _SCALARS})
            b.status, b.latency = list(k.status), list(k.latency)
            b.unknown = k.unknown + us.statuses.get("unknown", 0)
            b.requests += us.requests
            for i, c in enumerate(STATUS_CLASSES):
                b.status[i] += us.statuses.get(c, 0)
            b.no_response += us.statuses.get("none", 0)
            b.request_body += us.request_body
            b.response_body += us.response_body
            for seconds in us.latencies:
                b.latency[bucket_of(int(seconds * 1e9))] += 1
                b.latency_sum_ns += int(seconds * 1e9)
        return merged

    def _rows(self) -> list[tuple[str, KernelBackend]]:
        return sorted(self.merged().items(), key=lambda kv: (-kv[1].requests, kv[0]))

    def _roles(self, items: list[tuple[str, KernelBackend]]) -> dict[str, str]:
        """The kernel sees no client addresses: a local server is the front end only
        by --front-port, else "backend?" (roles.py)."""
        for name, _ in items:
            self.roles.see(name)
        return {name: self.role(name) for name, _ in items}

    def backend_rows(self) -> list[dict[str, Any]]:
        rows = []
        items = self._rows()
        roles = self._roles(items)
        items.sort(key=lambda kv: roles[kv[0]] == FRONT)  # backends first, as Summary
        total = sum(b.requests for name, b in items if roles[name] != FRONT)
        for name, b in items:
            front = roles[name] == FRONT
            row: dict[str, Any] = {"type": "front" if front else "backend", "backend": name,
                                   "requests": b.requests,
                                   "share": None if front else b.requests / total if total else 0.0}
            for i, c in enumerate(STATUS_CLASSES):
                row[c] = b.status[i]
            # Neither answered, nor closed unanswered, nor lost track of: in flight.
            row["unanswered"] = b.no_response
            row["unknown"] = b.unknown
            row["in_flight"] = max(0, b.requests - sum(b.status) - b.no_response - b.unknown - b.unpaired)
            row["unpaired"] = b.unpaired
            row["not_followed"] = b.not_followed
            for q in (50, 90, 99):
                row[f"p{q}_ms"] = _ms(hist_percentile(b.latency, q))
            row["latency_unknown"] = b.latency_unknown
            row["request_body"], row["response_body"] = b.request_body, b.response_body
            row["connections"] = b.connections
            if self.records:
                row["records_lost"] = b.records_lost
            row["role"] = roles[name]
            rows.append(row)
        return rows

    def balance(self) -> Balance:
        items = self._rows()
        roles = self._roles(items)
        front = tuple(sorted(name for name, _ in items if roles[name] == FRONT))
        missed = [self.uncounted()]
        if not self.hand_off:
            lost = {name: b.lost_connections for name, b in items if name not in front and b.lost_connections}
            if lost:
                n = sum(lost.values())
                names = ", ".join(sorted(lost)[:3]) + (f" and {len(lost) - 3} more" if len(lost) > 3 else "")
                missed.insert(0, f"{n} connection{'s' if n > 1 else ''} to {names} not followed from some "
                                 "point on (--hook tc hands nothing to user space), their later requests "
                                 "not counted")
        return balance_of([b.requests for name, b in items if name not in front], front,
                          "; ".join(m for m in missed if m))

    def text(self) -> str:
        self.refresh()
        rows = self.backend_rows()
        balance = self.balance().text()
        unpaired = sum(r["unpaired"] for r in rows)
        lost = sum(r["not_followed"] for r in rows)
        records_lost = sum(r.get("records_lost", 0) for r in rows)
        if records_lost:
            balance += (f"\nloss: {records_lost} transactions counted above have no line (the kernel's "
                        "record ring was full): the counts are whole, the lines are not")
        if unpaired or lost:
            # Never hidden: how much of the traffic the verdict may not have seen.
            balance += (f"\nloss: {lost} connections not followed (their requests after that point are "
                        f"counted only as far as the user-space path could), {unpaired} requests unpaired: the verdict is about what was "
                        "counted and may change if the loss was uneven")
        columns = [*KERNEL_COLUMNS[:-1], RECORDS_LOST_COLUMN, KERNEL_COLUMNS[-1]] if self.records else KERNEL_COLUMNS
        parts = [Table(columns).render(rows) if rows else "no HTTP transaction traced", balance]
        tags = self.tag_rows()
        if tags:
            parts.append(Table(TAG_COLUMNS).render(tags))
        return "\n\n".join(parts)

    def json_rows(self) -> list[dict[str, Any]]:
        self.refresh()
        return [*self.backend_rows(), self.balance().row(), *self.tag_rows()]


def accounting(k: dict[Counter, int], user_transactions: int, user_incomplete: int, user_connections: int,
               backends: dict[str, KernelBackend], records_read: int | None = None) -> str:
    """The exit line's account of the kernel path: what went where (``records_read``: the
    kernel's transaction records read, None when there are none: --summary)."""
    lost = {why: k[c] for c, why in LOST_REASONS.items() if k[c]}
    unpaired = sum(b.unpaired for b in backends.values())
    reasons = "; ".join(f"{n} {why}" for why, n in lost.items()) or "none"
    text = (f"kernel path: {k[Counter.K_REQUESTS]} requests, {k[Counter.K_RESPONSES]} responses paired, "
            f"{k[Counter.K_CONNECTIONS]} connections followed from their SYN"
            f"{'' if records_read is None else records_text(k, records_read)}; user-space path: "
            f"{user_transactions} transactions ({user_incomplete} incomplete) on {user_connections} "
            f"connections handed off ({k[Counter.K_HANDED_OFF]} frames); "
            f"not followed: {k[Counter.K_MIDSTREAM]} connections joined after their SYN, "
            f"{sum(lost.values())} lost track of ({reasons}), {unpaired} requests unpaired; "
            f"{k[Counter.K_ORPHANS]} responses without their request in the kernel path, "
            f"{k[Counter.K_RETRANSMITTED]} segments seen twice or retransmitted, "
            f"{k[Counter.K_TUNNELS]} upgraded/CONNECT")
    if k[Counter.K_BACKENDS_FULL]:  # rare: more backends than the table's slots (kernel.backend_slots)
        text += (f"; {k[Counter.K_BACKENDS_FULL]} connections to backends beyond the per-backend table "
                 "(their requests are in the kernel path's totals only)")
    return text  # what is not HTTP/1.x is said once, with the user-space path's (cli.py)


def records_text(k: dict[Counter, int], read: int) -> str:
    lost = k[Counter.K_RECORDS_LOST] + k[Counter.K_RECORDS_MISSING]
    return (f", {read} transaction records read, {lost} transactions without a record "
            f"({k[Counter.K_RECORDS_LOST]} lost in the record ring: full, "
            f"{k[Counter.K_RECORDS_MISSING]} whose request's part was evicted)")


def prometheus_buckets(hist: list[int], bounds: Iterable[float]) -> list[tuple[str, float]]:
    """Cumulative counts at Prometheus' bounds (seconds) from the kernel's buckets:
    a kernel bucket counts below a bound when its middle is (within 1/64)."""
    out: list[tuple[str, float]] = []
    cumulative, b, n = 0, 0, len(hist)
    for bound in bounds:
        limit = bound * 1e9
        while b < n and bucket_value(b) <= limit:
            cumulative += hist[b]
            b += 1
        out.append((repr(bound), float(cumulative)))
    out.append(("+Inf", float(sum(hist))))
    return out


class KernelCollector:
    """Prometheus metrics from the kernel's maps, read at scrape time: nothing
    per transaction is kept in user space. The same families as the user-space
    path, with status classes for statuses (the kernel keeps classes) and the
    kernel path's own account."""

    def __init__(self, summary: KernelSummary, snapshot: Any) -> None:
        self.summary = summary
        self.snapshot = snapshot

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        from .metrics import BUCKETS as BOUNDS

        self.summary.refresh()
        backends = self.summary.merged()
        requests = CounterMetricFamily("netbpf_http_requests", "HTTP requests traced, by backend and "
                                       "response status class (none: closed unanswered; unknown: not told by the "
                                       "capture (user-space path); unpaired: "
                                       "its response not followed; pending: not answered yet)",
                                       labels=["backend", "status"])
        latency = HistogramMetricFamily("netbpf_http_request_duration_seconds",
                                        "First request byte to last response byte", labels=["backend"])
        lost = CounterMetricFamily("netbpf_http_connections_not_followed",
                                   "Connections the kernel stopped following after counting part of them",
                                   labels=["backend"])
        for name, b in backends.items():
            for i, c in enumerate(STATUS_CLASSES):
                requests.add_metric([name, c], b.status[i])
            requests.add_metric([name, "none"], b.no_response)
            requests.add_metric([name, "unknown"], b.unknown)
            requests.add_metric([name, "unpaired"], b.unpaired)
            requests.add_metric([name, "pending"],
                                max(0, b.requests - sum(b.status) - b.no_response - b.unknown - b.unpaired))
            latency.add_metric([name], prometheus_buckets(b.latency, BOUNDS), b.latency_sum_ns / 1e9)
            lost.add_metric([name], b.lost_connections)
        yield requests
        yield latency
        yield lost
        if self.summary.records:
            no_line = CounterMetricFamily("netbpf_http_records_lost",
                                          "Transactions counted but not shown: their record did not "
                                          "reach user space (record ring full)", labels=["backend"])
            for name, b in backends.items():
                no_line.add_metric([name], b.records_lost)
            yield no_line
        from .metrics import HttpCollector, TransactionCounts

        # Frames, ring and reassembly counters: as the user-space path exports them.
        for family in HttpCollector(TransactionCounts(), self.snapshot).collect():
            if family.name not in ("netbpf_http_requests", "netbpf_http_request_duration_seconds"):
                yield family
        k = self.snapshot()["kernel"]
        paths = CounterMetricFamily("netbpf_http_kernel", "What the kernel's HTTP parser did",
                                    labels=["what"])
        for counter in Counter:
            if counter.name.startswith("K_"):
                paths.add_metric([counter.name[2:].lower()], k[counter])
        yield paths
