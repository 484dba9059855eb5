"""``netbpf accel bench``: local TCP without acceleration, with netbpf accel,
and with the seed's program, in the same run.

Everything happens in a sandbox of the benchmark's own (a network namespace
with only ``lo``, and child cgroups): ``plain`` has no program, ``netbpf``
has netbpf accel as ``enable`` sets it up (default options), ``seed`` has the
seed's sockops + sk_msg program (``seed_accel.bpf.c``: every message
redirected, IPv4 loopback only). Both ends of each test run in the same
cgroup; every server listens on 127.0.0.1 only (see clients.py). Each round
runs every cell in the three modes, the order rotating from round to round,
and each figure is the median over the rounds, so that the noise of a shared
machine hits all sides.

The clients are C programs from Debian (clients.py): sockperf ping-pong at
64 B, 1 KiB and 16 KiB; iperf3 streams of 1 KiB and 64 KiB writes; nginx
serving a 1 KiB file to wrk. netbpf's runs read its BPF counters before and
after: the share of bytes really redirected is printed with the result. The
seed counts nothing, so its share is unknown; a seed run that fails is
reported as such (its column says why) instead of stopping the bench.
"""
from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...bpf import fs
from ...errors import BuildMissing, NetbpfError, UsageError
from ...output import Column
from . import accel, clients
from .sandbox import Sandbox
from .seed import SeedAccel

MODES = ("plain", "netbpf", "seed")


class BenchError(NetbpfError):
    pass


@dataclass(frozen=True, slots=True)
class Measure:
    key: str
    cell: str  # the run that yields it
    field: str  # which of the run's figures
    label: str
    unit: str
    higher_is_better: bool
    target: str = ""
    target_ratio: float | None = None  # the ratio the target asks for (>= or <=)


@dataclass(frozen=True, slots=True)
class Cell:
    key: str
    kind: str  # pp, stream, web
    size: int = 0  # bytes per message or write


CELLS = [Cell("pp64", "pp", 64), Cell("pp1k", "pp", 1024), Cell("pp16k", "pp", 16384),
         Cell("stream1k", "stream", 1024), Cell("stream64k", "stream", 65536), Cell("web", "web")]


def _pp(cell: str, size: str, rate: tuple[str, float | None] = ("", None),
        p99: tuple[str, float | None] = ("", None)) -> list[Measure]:
    return [Measure(f"{cell}_rate", cell, "rate", f"sockperf ping-pong {size}, round trips", "/s", True,
                    *rate),
            Measure(f"{cell}_p50", cell, "p50", f"sockperf ping-pong {size}, p50 round trip", "µs", False),
            Measure(f"{cell}_p99", cell, "p99", f"sockperf ping-pong {size}, p99 round trip", "µs", False,
                    *p99)]


MEASURES = [
    *_pp("pp64", "64 B"),
    *_pp("pp1k", "1 KiB", rate=("≥ 1.3×", 1.3), p99=("≤ 0.75×", 0.75)),
    *_pp("pp16k", "16 KiB"),
    Measure("stream1k", "stream1k", "rate", "iperf3 stream, 1 KiB writes", "Gbit/s", True,
            "≥ 1.0× (aim)", 1.0),
    Measure("stream64k", "stream64k", "rate", "iperf3 stream, 64 KiB writes", "Gbit/s", True,
            "≥ 1.5×", 1.5),
    Measure("web", "web", "rate", "nginx 1 KiB file to wrk (8 connections)", "requests/s", True,
            "≥ 1.15×", 1.15),
]

COLUMNS = [
    Column("measure", "measure"),
    Column("unit", "unit"),
    Column("plain", "plain", align=">", text=lambda v: _num(v)),
    Column("netbpf", "netbpf", align=">", text=lambda v: _num(v)),
    Column("ratio", "netbpf/plain", align=">", text=lambda v: f"{v:.2f}×"),
    Column("ratio_rounds", "per round", align=">", text=lambda v: _span(v)),
    Column("redirected", "bytes redirected", align=">", text=lambda v: f"{v:.0%}"),
    Column("seed", "seed", align=">", text=lambda v: v if isinstance(v, str) else _num(v)),
    Column("seed_ratio", "seed/plain", align=">", text=lambda v: f"{v:.2f}×"),
    Column("vs_seed", "netbpf/seed", align=">", text=lambda v: f"{v:.2f}×"),
    Column("vs_seed_rounds", "per round", align=">", text=lambda v: _span(v)),
    Column("target", "target"),
    Column("verdict", "verdict"),
]


def _span(v: tuple[float, float]) -> str:
    return f"{v[0]:.2f}–{v[1]:.2f}×"


def _num(v: float) -> str:
    if v >= 1000:
        return f"{v:,.0f}"
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


@dataclass
class Samples:
    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # measure -> mode -> values
    rounds: dict[str, dict[int, dict[str, float]]] = field(default_factory=dict)  # measure -> round -> mode
    redirected: dict[str, list[float]] = field(default_factory=dict)  # cell -> netbpf's share of bytes
    failed: dict[str, str] = field(default_factory=dict)  # cell -> why the seed failed there

    def add(self, measure: str, mode: str, value: float, round_: int = 0) -> None:
        self.values.setdefault(measure, {}).setdefault(mode, []).append(value)
        self.rounds.setdefault(measure, {}).setdefault(round_, {})[mode] = value

    def per_round(self, measure: str, mode: str, anchor: str) -> tuple[float, float] | None:
        """The lowest and highest mode/anchor ratio of the rounds that ran both:
        the spread a shared machine puts around the median's ratio."""
        ratios = [r[mode] / r[anchor] for r in self.rounds.get(measure, {}).values()
                  if mode in r and r.get(anchor)]
        return (min(ratios), max(ratios)) if ratios else None

    def median(self, measure: str, mode: str) -> float | None:
        values = self.values.get(measure, {}).get(mode)
        return statistics.median(values) if values else None


class Bench:
    def __init__(self, seconds: float, rounds: int, progress: Callable[[str], None],
                 cells: list[Cell] | None = None) -> None:
        self.seconds, self.rounds, self.progress = seconds, rounds, progress
        self.cells = cells or CELLS
        tag = f"b{os.getpid()}"
        self.sandbox = Sandbox(tag, MODES)
        self.pin = fs.PIN_ROOT / f"accel-bench-{tag}"
        self.seed = SeedAccel(self.sandbox.cgroups["seed"])
        self.samples = Samples()
        self.port = 20000  # a new port per run: no TIME_WAIT or leftover listener in the way

    # -- set-up ------------------------------------------------------------------------
    def __enter__(self) -> Bench:
        missing = clients.missing_tools()
        if missing:
            raise BuildMissing(f"not installed: {', '.join(missing)} (apt-get install {' '.join(missing)}"
                               ", or scripts/install-deps)")
        self.sandbox.up()
        try:
            accel.enable(accel.Options(cgroup=self.sandbox.cgroups["netbpf"]), self.pin)
            self.seed.__enter__()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.sandbox.down()  # the sockets close first, so the disable below frees everything
        finally:
            try:
                self.seed.__exit__()
            finally:
                accel.disable(self.pin)

    # -- one run -----------------------------------------------------------------------
    def _counters(self, mode: str) -> dict[str, int]:
        return accel.read_status(self.pin).counters if mode == "netbpf" else {}

    def measure(self, cell: Cell, mode: str) -> dict[str, float]:
        self.port += 1
        s = self.sandbox
        if cell.kind == "pp":
            return clients.ping_pong(s, mode, self.port, cell.size, self.seconds)
        if cell.kind == "stream":
            return {"rate": clients.stream(s, mode, self.port, f"{cell.size // 1024}K", self.seconds)}
        return clients.web(s, mode, self.port, self.seconds)

    def _redirected_share(self, before: dict[str, int]) -> float:
        after = self._counters("netbpf")
        redirected = after["bytes_redirected"] - before["bytes_redirected"]
        tcp = after["bytes_tcp"] - before["bytes_tcp"]
        return redirected / (redirected + tcp) if redirected + tcp else 0.0

    # -- the whole run -------------------------------------------------------------------
    def run(self) -> Samples:
        s = self.samples
        for r in range(self.rounds):
            order = [*MODES[r % len(MODES):], *MODES[:r % len(MODES)]]
            for cell in self.cells:
                for mode in order:
                    if mode == "seed" and cell.key in s.failed:
                        continue
                    before = self._counters(mode)
                    try:
                        result = self.measure(cell, mode)
                    except clients.ClientError as e:
                        if mode != "seed":
                            raise BenchError(f"{cell.key} in cgroup {mode}: {e}") from e
                        s.failed[cell.key] = str(e)
                        self.progress(f"round {r + 1}/{self.rounds}: {cell.key}, seed: fails: {e}")
                        continue
                    for m in MEASURES:
                        if m.cell == cell.key:
                            s.add(m.key, mode, result[m.field], r)
                    extra = ""
                    if mode == "netbpf":
                        share = self._redirected_share(before)
                        s.redirected.setdefault(cell.key, []).append(share)
                        extra = f" ({share:.0%} of bytes redirected)"
                    shown = ", ".join(f"{k} {_num(v)}" for k, v in result.items() if k != "requests")
                    self.progress(f"round {r + 1}/{self.rounds}: {cell.key}, {mode}: {shown}{extra}")
        return s


def _verdict(m: Measure, ratio: float, vs_seed: float | None, spread: tuple[float, float] | None,
             seed_spread: tuple[float, float] | None) -> str:
    def worse(r: float) -> bool:
        return r < 1.0 if m.higher_is_better else r > 1.0

    def every_round(span: tuple[float, float] | None) -> str:
        # The median says worse; say so only as strongly as the rounds do.
        return "" if span is None or (worse(span[0]) and worse(span[1])) else " (not in every round)"

    words = []
    if m.target_ratio is not None:
        ok = ratio >= m.target_ratio if m.higher_is_better else ratio <= m.target_ratio
        words.append("holds" if ok else "below target")
    if worse(ratio):
        words.append("slower with netbpf" + every_round(spread))
    if vs_seed is not None and worse(vs_seed):
        words.append("behind the seed" + every_round(seed_spread))
    return ", ".join(words) or "-"


def rows(samples: Samples) -> list[dict[str, Any]]:
    out = []
    for m in MEASURES:
        plain, netbpf, seed = (samples.median(m.key, mode) for mode in MODES)
        if plain is None or netbpf is None:
            continue
        ratio = netbpf / plain if plain else 0.0
        seed_cell: Any = seed
        seed_ratio = vs_seed = None
        if seed is None:
            seed_cell = "fails" if m.cell in samples.failed else "-"
        else:
            seed_ratio = seed / plain if plain else None
            vs_seed = netbpf / seed if seed else None
        shares = samples.redirected.get(m.cell, [])
        spread = samples.per_round(m.key, "netbpf", "plain")
        seed_spread = samples.per_round(m.key, "netbpf", "seed")
        out.append({"measure": m.label, "unit": m.unit, "plain": plain, "netbpf": netbpf,
                    "ratio": ratio, "ratio_rounds": spread,
                    "redirected": statistics.median(shares) if shares else None,
                    "seed": seed_cell, "seed_ratio": seed_ratio, "vs_seed": vs_seed,
                    "vs_seed_rounds": seed_spread, "target": m.target or "-",
                    "verdict": _verdict(m, ratio, vs_seed, spread, seed_spread), "key": m.key})
    return out


def markdown(table_rows: list[dict[str, Any]]) -> str:
    def cell(column: Column, row: dict[str, Any]) -> str:
        return "-" if row.get(column.key) in (None, "") else column.text(row[column.key])

    header = ["| " + " | ".join(c.header for c in COLUMNS) + " |",
              "|" + "|".join("---:" if c.align == ">" else "---" for c in COLUMNS) + "|"]
    body = ["| " + " | ".join(cell(c, row) for c in COLUMNS) + " |" for row in table_rows]
    return "\n".join(header + body)


def summary(table_rows: list[dict[str, Any]], samples_failed: dict[str, str], seconds: float,
            rounds: int) -> str:
    lines = [f"Medians of {rounds} rounds of {seconds:g} s per cell, plain/netbpf/seed rotating (\"per "
             "round\": the lowest and highest of the ratios taken round by round, the machine's noise); both "
             "ends in one cgroup, in a network namespace of the benchmark's own, servers on 127.0.0.1 "
             "only; sockperf ping-pong (round trip = 2 × sockperf's latency), iperf3, nginx + wrk. "
             "The seed counts nothing: its share of bytes redirected is unknown."]
    slower = [r for r in table_rows if "slower with netbpf" in r["verdict"]]
    behind = [r for r in table_rows if "behind the seed" in r["verdict"]]
    def noisy(row: dict[str, Any], what: str) -> str:
        return ", not in every round" if f"{what} (not in every round)" in row["verdict"] else ""

    lines.append("Slower with netbpf than plain: " + ("; ".join(
        f"{r['measure']} ({r['ratio']:.2f}×{noisy(r, 'slower with netbpf')})" for r in slower)
        if slower else "nothing") + ".")
    lines.append("netbpf behind the seed: " + ("; ".join(
        f"{r['measure']} ({r['vs_seed']:.2f}× the seed{noisy(r, 'behind the seed')})" for r in behind)
        if behind else "nowhere") + ".")
    for cell, why in samples_failed.items():
        lines.append(f"The seed fails at {cell}: {why}")
    return "\n".join(lines)


def select_cells(text: str) -> list[Cell]:
    """``--cells pp1k,web`` -> those cells, in the bench's order."""
    wanted = {w.strip() for w in text.split(",") if w.strip()}
    unknown = wanted - {c.key for c in CELLS}
    if unknown or not wanted:
        raise UsageError(f"--cells: unknown cell {', '.join(sorted(unknown)) or '(none)'}; "
                         f"choose from {','.join(c.key for c in CELLS)}")
    return [c for c in CELLS if c.key in wanted]


def run(seconds: float, rounds: int, progress: Callable[[str], None],
        cells: list[Cell] | None = None) -> tuple[list[dict[str, Any]], dict[str, str]]:
    with Bench(seconds, rounds, progress, cells) as bench:
        samples = bench.run()
        return rows(samples), samples.failed
