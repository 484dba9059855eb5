"""Per-backend figures and the answer to the seed's question: is the spread even?

For each server (address:port of the traced transactions): how many
requests, what share, status classes, latency percentiles, and its role
(``roles.py``: a backend, or the gateway's own front end when both legs are
traced). Then one verdict, over the backends only: the largest and smallest
shares and Pearson's chi-square test of the counts against an even spread over
the backends seen (a backend that received nothing is not seen: name it with
``--backends`` to count it). Per value of the tag header: which server(s)
served it.
"""
from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ...output import Column, Table
from .roles import FRONT, Roles
from .tracer import Transaction

TAGS_SHOWN = 50
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


def percentile(sorted_values: array, q: float) -> float | None:  # type: ignore[type-arg]
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return float(sorted_values[rank - 1])


def chi2_sf(x: float, df: int) -> float:
    """P(X >= x) for a chi-square variable with ``df`` degrees of freedom."""
    if df <= 0:
        return 1.0
    if x <= 0:
        return 1.0
    return _gammaincc(df / 2.0, x / 2.0)


def _gammaincc(a: float, x: float) -> float:
    """Regularised upper incomplete gamma Q(a, x): series below a+1, continued fraction above."""
    lg = math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        n = a
        for _ in range(10000):
            n += 1
            term *= x / n
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(-x + a * math.log(x) - lg))
    # Lentz's continued fraction.
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return min(1.0, math.exp(-x + a * math.log(x) - lg) * h)


@dataclass(slots=True)
class BackendStats:
    requests: int = 0
    statuses: dict[str, int] = field(default_factory=dict)  # "2xx"..., "none" when unanswered
    latencies: array = field(default_factory=lambda: array("d"))  # type: ignore[type-arg]
    request_body: int = 0
    response_body: int = 0


@dataclass(frozen=True, slots=True)
class Balance:
    backends: int
    total: int
    max_share: float
    min_share: float
    chi2: float
    p_value: float

    @property
    def even(self) -> bool:
        return self.p_value >= 0.01

    front: tuple[str, ...] = ()  # servers left out: the gateway's own front end
    # What the counts miss, in words ("" when nothing): requests that were never counted
    # (connections not followed and not handed off, frames lost before user space read
    # them, gaps). Any number of requests may hide there, so the verdict holds for the
    # requests counted only, and for all of them it is unknown.
    uncounted: str = ""

    @property
    def known(self) -> bool:
        """Whether the verdict is about every request (nothing uncounted)."""
        return not self.uncounted

    def text(self) -> str:
        return self._text() + (f" (not compared: front end {', '.join(self.front)})" if self.front else "")

    def _text(self) -> str:
        if self.backends < 2:
            return f"balance: {self.backends} backend seen, nothing to compare"
        ratio = f"{self.max_share / self.min_share:.2f}" if self.min_share else "inf"
        p = f"{self.p_value:.3g}" if self.p_value >= 1e-12 else "< 1e-12"
        verdict = ("even: no evidence of a skew" if self.even
                   else "UNEVEN: the gateway does not spread requests evenly")
        if self.uncounted:
            verdict = (f"{'even' if self.even else 'UNEVEN'} among the requests counted; for all requests "
                       f"UNKNOWN: {self.uncounted}, and any number of requests may be there")
        return (f"balance: {self.backends} backends, {self.total} requests, max/min share "
                f"{self.max_share:.1%}/{self.min_share:.1%} = {ratio}; chi-square {self.chi2:.1f} "
                f"(df {self.backends - 1}), p = {p}: {verdict}")

    def row(self) -> dict[str, Any]:
        return {"type": "balance", "backends": self.backends, "requests": self.total,
                "max_share": round(self.max_share, 6), "min_share": round(self.min_share, 6),
                "chi2": round(self.chi2, 3), "p_value": self.p_value,
                "even": self.even if self.known else None, "even_among_counted": self.even,
                "uncounted": self.uncounted or None, "front_ends": list(self.front)}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.2f}"


BACKEND_COLUMNS = [
    Column("backend", "BACKEND"),
    Column("requests", "REQUESTS", align=">"),
    Column("share", "SHARE", align=">", text=lambda v: f"{v:.1%}"),
    *(Column(c, c.upper(), align=">") for c in STATUS_CLASSES[1:]),
    Column("unanswered", "NO-RESP", align=">"),
    Column("unknown", "UNKNOWN", align=">"),
    Column("p50_ms", "P50 ms", align=">", text=lambda v: f"{v:.2f}"),
    Column("p90_ms", "P90 ms", align=">", text=lambda v: f"{v:.2f}"),
    Column("p99_ms", "P99 ms", align=">", text=lambda v: f"{v:.2f}"),
    Column("role", "ROLE"),
]
TAG_COLUMNS = [
    Column("tag", "TAG"),
    Column("requests", "REQUESTS", align=">"),
    Column("backends", "SERVED BY"),
    Column("statuses", "STATUS"),
    Column("p50_ms", "P50 ms", align=">", text=lambda v: f"{v:.2f}"),
]


# NO-RESP ("none"): the connection closed or was reset with the request unanswered.
# Any other incomplete exchange is one the capture cannot tell about (a response lost
# in a capture gap, or not proven to be its own on a connection joined mid-stream, the
# capture ending first...): "unknown", never counted as unanswered.
NO_RESPONSE_ERRORS = frozenset({"no response", "connection reset", "connection closed unanswered"})


def outcome(exchange: Any) -> str:
    """A transaction's status class, "none" (closed unanswered) or "unknown"."""
    response = exchange.response
    if response is not None and not exchange.error:
        return f"{response.status // 100}xx"
    return "none" if exchange.error in NO_RESPONSE_ERRORS else "unknown"


class Summary:
    def __init__(self, expected_backends: Iterable[str] = (), roles: Roles | None = None,
                 uncounted: Callable[[], str] | None = None) -> None:
        """``uncounted``: asked at each verdict what the capture missed so far, in words
        ("" when nothing): frames lost before user space read them, reassembly gaps."""
        self.uncounted = uncounted or (lambda: "")
        self.backends: dict[str, BackendStats] = {b: BackendStats() for b in expected_backends}
        self.expected = frozenset(self.backends)
        self.roles = roles if roles is not None else Roles()
        self.tags: dict[str, dict[str, Any]] = {}
        self.total = 0

    def add(self, tx: Transaction) -> None:
        backend = tx.backend
        stats = self.backends.get(backend)
        if stats is None:
            stats = self.backends[backend] = BackendStats()
        self.roles.add(backend, tx.client)
        stats.requests += 1
        self.total += 1
        exchange = tx.exchange
        response = exchange.response
        status_class = outcome(exchange)
        stats.statuses[status_class] = stats.statuses.get(status_class, 0) + 1
        stats.request_body += exchange.request.body_size
        if response is not None and not exchange.error:
            stats.latencies.append(response.last_ts - exchange.request.first_ts)
            stats.response_body += response.body_size
        self.add_tag(tx)

    def add_tag(self, tx: Transaction) -> None:
        """The per-tag table's part of a transaction (alone: for a kernel record, whose
        backend figures the kernel counted itself)."""
        backend, exchange = tx.backend, tx.exchange
        response = exchange.response
        tag = exchange.request.tag
        if tag is not None:
            entry = self.tags.get(tag)
            if entry is None:
                entry = self.tags[tag] = {"requests": 0, "backends": {}, "statuses": {}, "latencies": []}
            entry["requests"] += 1
            entry["backends"][backend] = entry["backends"].get(backend, 0) + 1
            status = str(response.status) if response is not None else outcome(exchange)
            entry["statuses"][status] = entry["statuses"].get(status, 0) + 1
            if response is not None and not exchange.error:
                entry["latencies"].append(response.last_ts - exchange.request.first_ts)

    def role(self, server: str) -> str:
        return "backend" if server in self.expected else self.roles.role(server)

    def backend_rows(self) -> list[dict[str, Any]]:
        """One row per server: backends first (share among backends), then front ends."""
        rows = []
        roles = {server: self.role(server) for server in self.backends}
        compared = sum(s.requests for b, s in self.backends.items() if roles[b] != FRONT)
        for backend, stats in sorted(self.backends.items(),
                                     key=lambda kv: (roles[kv[0]] == FRONT, -kv[1].requests, kv[0])):
            ordered = array("d", sorted(stats.latencies))
            front = roles[backend] == FRONT
            row: dict[str, Any] = {"type": "front" if front else "backend", "backend": backend,
                                   "requests": stats.requests,
                                   "share": None if front else stats.requests / compared if compared else 0.0}
            for c in STATUS_CLASSES:
                row[c] = stats.statuses.get(c, 0)
            row["unanswered"] = stats.statuses.get("none", 0)
            row["unknown"] = stats.statuses.get("unknown", 0)
            for q in (50, 90, 99):
                value = percentile(ordered, q)
                row[f"p{q}_ms"] = None if value is None else round(value * 1000, 3)
            row["request_body"], row["response_body"] = stats.request_body, stats.response_body
            row["role"] = roles[backend]
            rows.append(row)
        return rows

    def balance(self) -> Balance:
        """The verdict over the backends: a front end is not one of them."""
        front = tuple(sorted(b for b in self.backends if self.role(b) == FRONT))
        return balance_of([s.requests for b, s in self.backends.items() if b not in front], front,
                          self.uncounted())

    def tag_rows(self) -> list[dict[str, Any]]:
        rows = []
        for tag, entry in sorted(self.tags.items()):
            lat = array("d", sorted(entry["latencies"]))
            p50 = percentile(lat, 50)
            rows.append({"type": "tag", "tag": tag, "requests": entry["requests"],
                         "backends": ", ".join(f"{b} x{n}" if n > 1 else b
                                               for b, n in sorted(entry["backends"].items())),
                         "statuses": ", ".join(f"{s} x{n}" if n > 1 else s
                                               for s, n in sorted(entry["statuses"].items())),
                         "p50_ms": None if p50 is None else round(p50 * 1000, 3)})
        return rows

    def text(self) -> str:
        parts = [Table(BACKEND_COLUMNS).render(self.backend_rows()) if self.backends
                 else "no HTTP transaction traced", self.balance().text()]
        tags = self.tag_rows()
        if tags:
            shown = Table(TAG_COLUMNS).render(tags[:TAGS_SHOWN])
            if len(tags) > TAGS_SHOWN:
                shown += f"\n... {len(tags) - TAGS_SHOWN} more tags (--json --summary lists them all)"
            parts.append(shown)
        return "\n\n".join(parts)

    def json_rows(self) -> list[dict[str, Any]]:
        return [*self.backend_rows(), self.balance().row(), *self.tag_rows()]


def balance_of(counts: list[int], front: tuple[str, ...] = (), uncounted: str = "") -> Balance:
    """Chi-square of the backends' request counts against an even spread (``uncounted``:
    what the counts miss, in words; see Balance)."""
    total, k = sum(counts), len(counts)
    if k < 2 or not total:
        return Balance(k, total, 1.0 if k else 0.0, 1.0 if k else 0.0, 0.0, 1.0, front, uncounted)
    expected = total / k
    chi2 = sum((c - expected) ** 2 / expected for c in counts)
    return Balance(k, total, max(counts) / total, min(counts) / total, chi2, chi2_sf(chi2, k - 1), front,
                   uncounted)
