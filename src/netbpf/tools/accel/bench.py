"""``netbpf accel bench``: local TCP with and without acceleration, in the same run.

Everything happens in a sandbox of the benchmark's own (a network namespace
with only ``lo``, and child cgroups): ``plain`` has no program, ``accel`` has
netbpf accel as ``enable`` sets it up, ``every`` has it with ``--no-demote``
and ``--max-queued 0`` (every message redirected, as in the seed), ``unlimited`` with
``--max-queued 0``. Both ends of each test run in the
same cgroup. Rounds alternate the order of the modes, and each figure is the
median over the rounds, so that the noise of a shared machine hits both sides.

- streams: iperf3 (its default dual-stack server, a client on 127.0.0.1),
  64 KiB and 1 KiB writes, received Gbit/s; ``unlimited`` has no limit on
  unread redirected data (``--max-queued 0``), to show what the limit costs;
- request/response: netbpf's echo load (``loadgen``), 1 KiB each way on one
  connection, round trips per second, p50 and p99 latency.

Each accelerated run reads the BPF counters before and after: the share of
bytes that were really redirected is printed with the result.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...bpf import fs
from ...bpf.errors import BuildMissing, NetbpfError
from ...lab import stop_process
from ...output import Column
from . import accel
from .sandbox import Sandbox

IPERF_PORT, ECHO_PORT = 5201, 7007


class BenchError(NetbpfError):
    pass


@dataclass(frozen=True, slots=True)
class Measure:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    target: str = ""
    target_ratio: float | None = None  # the ratio the target asks for (>= or <=)
    baseline: str = ""  # the measure whose "without" this one is compared with (default: itself)


MEASURES = [
    Measure("stream_64k", "64 KiB writes, stream", "Gbit/s", True, "≥ 1.5×", 1.5),
    Measure("stream_64k_unlimited", "64 KiB writes, stream, no unread limit (`--max-queued 0`)",
            "Gbit/s", True, baseline="stream_64k"),
    Measure("stream_1k", "1 KiB writes, stream", "Gbit/s", True, "≥ 1.0× (aim)", 1.0),
    Measure("stream_1k_every", "1 KiB writes, stream, every message redirected as in the seed "
            "(`--no-demote --max-queued 0`)",
            "Gbit/s", True, baseline="stream_1k"),
    Measure("rr_rate", "1 KiB request/response, one connection", "round trips/s", True, "≥ 1.2×", 1.2),
    Measure("rr_p50", "1 KiB request/response, p50 latency", "µs", False),
    Measure("rr_p99", "1 KiB request/response, p99 latency", "µs", False, "≤ 0.8×", 0.8),
]

COLUMNS = [
    Column("measure", "measure"),
    Column("unit", "unit"),
    Column("without", "without", align=">", text=lambda v: _num(v)),
    Column("with", "with accel", align=">", text=lambda v: _num(v)),
    Column("ratio", "ratio", align=">", text=lambda v: f"{v:.2f}×"),
    Column("redirected", "bytes redirected", align=">", text=lambda v: f"{v:.0%}"),
    Column("target", "target"),
    Column("verdict", "verdict"),
]


def _num(v: float) -> str:
    if v >= 1000:
        return f"{v:,.0f}"
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


@dataclass
class Samples:
    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # measure -> mode -> values
    redirected: dict[str, list[float]] = field(default_factory=dict)  # measure -> share of bytes

    def add(self, measure: str, mode: str, value: float) -> None:
        self.values.setdefault(measure, {}).setdefault(mode, []).append(value)

    def median(self, measure: str, mode: str) -> float:
        return statistics.median(self.values[measure][mode])


class Bench:
    def __init__(self, seconds: float, rounds: int, progress: Callable[[str], None]) -> None:
        self.seconds, self.rounds, self.progress = seconds, rounds, progress
        tag = f"b{os.getpid()}"
        self.sandbox = Sandbox(tag, ("plain", "accel", "every", "unlimited"))
        self.pins = {"accel": fs.PIN_ROOT / f"accel-bench-{tag}",
                     "every": fs.PIN_ROOT / f"accel-bench-{tag}-every",
                     "unlimited": fs.PIN_ROOT / f"accel-bench-{tag}-unlimited"}
        self.samples = Samples()

    # -- set-up ------------------------------------------------------------------------
    def __enter__(self) -> Bench:
        for tool in ("iperf3",):
            if subprocess.run(["which", tool], capture_output=True).returncode != 0:
                raise BuildMissing(f"{tool} is not installed (apt-get install {tool})")
        self.sandbox.up()
        try:
            accel.enable(accel.Options(cgroup=self.sandbox.cgroups["accel"]), self.pins["accel"])
            accel.enable(accel.Options(cgroup=self.sandbox.cgroups["every"], demote_after=0,
                                       max_queued=0), self.pins["every"])
            accel.enable(accel.Options(cgroup=self.sandbox.cgroups["unlimited"], max_queued=0),
                         self.pins["unlimited"])
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.sandbox.down()  # the sockets close first, so the disable below frees everything
        finally:
            for pin in self.pins.values():
                accel.disable(pin)

    # -- one run -----------------------------------------------------------------------
    def _counters(self, mode: str) -> dict[str, int]:
        if mode not in self.pins:
            return {}
        return accel.read_status(self.pins[mode]).counters

    def stream(self, mode: str, length: str) -> tuple[float, float]:
        """Received Gbit/s with iperf3, and the share of bytes redirected."""
        before = self._counters(mode)
        server = self.sandbox.popen(["iperf3", "-s", "-1", "-p", str(IPERF_PORT)], mode,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 5
            while True:
                out = self.sandbox.run(["iperf3", "-c", "127.0.0.1", "-p", str(IPERF_PORT), "-J",
                                        "-t", str(self.seconds), "-l", length], mode,
                                       timeout=self.seconds + 30)
                report = json.loads(out.stdout or "{}")
                error = report.get("error", "")
                if "refused" in error and time.monotonic() < deadline:
                    time.sleep(0.05)  # the server is not listening yet
                    continue
                break
            if error or out.returncode != 0:
                raise BenchError(f"iperf3 -l {length} in cgroup {mode}: {error or out.stderr.strip()}")
            received = report["end"]["sum_received"]
            if received["bytes"] <= 0:
                raise BenchError(f"iperf3 -l {length} in cgroup {mode}: nothing received")
            gbits = float(received["bits_per_second"]) / 1e9
        finally:
            stop_process(server, timeout=5)
        return gbits, self._redirected_share(mode, before)

    def request_response(self, mode: str) -> tuple[dict[str, float], float]:
        before = self._counters(mode)
        loadgen = [sys.executable, "-m", "netbpf.tools.accel.loadgen"]
        env = dict(os.environ, PYTHONPATH=_package_root())
        server = self.sandbox.popen([*loadgen, "echo", "--port", str(ECHO_PORT)], mode,
                                    stdout=subprocess.PIPE, text=True, env=env)
        try:
            assert server.stdout is not None
            if server.stdout.readline().strip() != "listening":
                raise BenchError(f"echo server in cgroup {mode} did not start")
            out = self.sandbox.run([*loadgen, "rr", "--port", str(ECHO_PORT),
                                    "--seconds", str(self.seconds)], mode,
                                   timeout=self.seconds + 30, env=env)
            result = json.loads(out.stdout or "{}")
            if out.returncode != 0 or "error" in result:
                raise BenchError(f"request/response in cgroup {mode}: "
                                 f"{result.get('error') or out.stderr.strip()}")
        finally:
            stop_process(server, timeout=5)
        return result, self._redirected_share(mode, before)

    def _redirected_share(self, mode: str, before: dict[str, int]) -> float:
        if mode not in self.pins:
            return 0.0
        after = self._counters(mode)
        redirected = after["bytes_redirected"] - before["bytes_redirected"]
        tcp = after["bytes_tcp"] - before["bytes_tcp"]
        return redirected / (redirected + tcp) if redirected + tcp else 0.0

    # -- the whole run -------------------------------------------------------------------
    def run(self) -> Samples:
        s = self.samples
        for r in range(self.rounds):
            order = ["plain", "accel"] if r % 2 == 0 else ["accel", "plain"]
            for mode in [*order, "unlimited"]:
                gbits, share = self.stream(mode, "64K")
                measure = "stream_64k_unlimited" if mode == "unlimited" else "stream_64k"
                s.add(measure, "plain" if mode == "plain" else "accel", gbits)
                self._note(r, "64 KiB stream", mode, f"{gbits:.2f} Gbit/s", share)
                if mode != "plain":
                    s.redirected.setdefault(measure, []).append(share)
            for mode in [*order, "every"]:
                gbits, share = self.stream(mode, "1K")
                measure = "stream_1k_every" if mode == "every" else "stream_1k"
                s.add(measure, "accel" if mode == "every" else mode, gbits)
                if mode != "plain":
                    s.redirected.setdefault(measure, []).append(share)
                self._note(r, "1 KiB stream", mode, f"{gbits:.2f} Gbit/s", share)
            for mode in order:
                result, share = self.request_response(mode)
                s.add("rr_rate", mode, result["round_trips_per_s"])
                s.add("rr_p50", mode, result["p50_us"])
                s.add("rr_p99", mode, result["p99_us"])
                if mode == "accel":
                    for m in ("rr_rate", "rr_p50", "rr_p99"):
                        s.redirected.setdefault(m, []).append(share)
                self._note(r, "1 KiB request/response", mode,
                           f"{result['round_trips_per_s']:,.0f}/s p99 {result['p99_us']:.1f} µs", share)
        return s

    def _note(self, r: int, what: str, mode: str, value: str, share: float) -> None:
        extra = f" ({share:.0%} of bytes redirected)" if mode != "plain" else ""
        self.progress(f"round {r + 1}/{self.rounds}: {what}, {mode}: {value}{extra}")


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[3])


def rows(samples: Samples) -> list[dict[str, Any]]:
    out = []
    for m in MEASURES:
        without = samples.median(m.baseline or m.key, "plain")
        with_ = samples.median(m.key, "accel")
        ratio = with_ / without if without else 0.0
        if m.target_ratio is None:
            verdict = ""
        elif m.higher_is_better:
            verdict = "holds" if ratio >= m.target_ratio else "below target"
        else:
            verdict = "holds" if ratio <= m.target_ratio else "below target"
        slower = (ratio < 1.0) if m.higher_is_better else (ratio > 1.0)
        if slower:
            verdict = (verdict + ", " if verdict else "") + "slower with acceleration"
        shares = samples.redirected.get(m.key, [])
        out.append({"measure": m.label, "unit": m.unit, "without": without, "with": with_,
                    "ratio": ratio, "redirected": statistics.median(shares) if shares else 0.0,
                    "target": m.target or "-", "verdict": verdict or "-", "key": m.key})
    return out


def markdown(table_rows: list[dict[str, Any]]) -> str:
    def cell(column: Column, row: dict[str, Any]) -> str:
        return "-" if row.get(column.key) in (None, "") else column.text(row[column.key])

    header = ["| " + " | ".join(c.header for c in COLUMNS) + " |",
              "|" + "|".join("---:" if c.align == ">" else "---" for c in COLUMNS) + "|"]
    body = ["| " + " | ".join(cell(c, row) for c in COLUMNS) + " |" for row in table_rows]
    return "\n".join(header + body)


def summary(table_rows: list[dict[str, Any]], seconds: float, rounds: int) -> str:
    slower = [r for r in table_rows if "slower" in r["verdict"]]
    lines = [f"Medians of {rounds} rounds of {seconds:g} s each, modes alternating; both ends in one "
             "cgroup, in a network namespace of the benchmark's own; iperf3 for streams, "
             "netbpf's echo (Python) for request/response."]
    if slower:
        lines.append("Slower with acceleration: " + "; ".join(
            f"{r['measure']} ({r['ratio']:.2f}×)" for r in slower) + ".")
    else:
        lines.append("Nothing measured here was slower with acceleration.")
    return "\n".join(lines)


def run(seconds: float, rounds: int, progress: Callable[[str], None]) -> list[dict[str, Any]]:
    with Bench(seconds, rounds, progress) as bench:
        return rows(bench.run())
