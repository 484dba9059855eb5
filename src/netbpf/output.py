"""Output that other tools can read: columns defined once drive text, JSON and CSV.

A tool declares its columns; the same row (a mapping) prints as an aligned
text line, a JSON object (one per line, for jq) or a CSV record. On a
terminal, tables refresh in place; piped, they print plainly.
"""
from __future__ import annotations

import csv
import io
import json
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO


@dataclass(frozen=True, slots=True)
class Column:
    key: str  # JSON/CSV name
    header: str  # text header
    width: int = 0  # text width; 0: as wide as needed
    align: str = "<"  # "<" or ">"
    text: Callable[[Any], str] = str  # how the value reads in text (JSON keeps the raw value)


class Table:
    def __init__(self, columns: Sequence[Column]) -> None:
        self.columns = list(columns)

    def header(self) -> str:
        return self._join(c.header for c in self.columns)

    def text(self, row: Mapping[str, Any]) -> str:
        return self._join(self._cell(c, row.get(c.key)) for c in self.columns)

    @staticmethod
    def _cell(column: Column, value: Any) -> str:
        return "-" if value is None or value == "" else column.text(value)

    def _join(self, cells: Iterable[str]) -> str:
        parts = []
        for column, cell in zip(self.columns, cells, strict=True):
            parts.append(f"{cell:{column.align}{column.width}}" if column.width else cell)
        return "  ".join(parts).rstrip()

    def json(self, row: Mapping[str, Any]) -> str:
        return json.dumps({c.key: row.get(c.key) for c in self.columns}, default=str)

    def csv(self, row: Mapping[str, Any]) -> str:
        buf = io.StringIO()
        csv.writer(buf).writerow([row.get(c.key, "") for c in self.columns])
        return buf.getvalue().rstrip("\r\n")

    def render(self, rows: Iterable[Mapping[str, Any]], fmt: str = "text") -> str:
        rows = list(rows)
        if fmt == "json":
            return "\n".join(self.json(r) for r in rows)
        if fmt == "csv":
            return "\n".join([",".join(c.key for c in self.columns), *(self.csv(r) for r in rows)])
        # Text: widen columns without a fixed width to their longest cell.
        widths = {c.key: max([len(c.header), *(len(self._cell(c, r.get(c.key))) for r in rows)])
                  for c in self.columns}
        sized = Table([Column(c.key, c.header, c.width or widths[c.key], c.align, c.text)
                       for c in self.columns])
        return "\n".join([sized.header(), *(sized.text(r) for r in rows)])


class LiveView:
    """A block of lines redrawn in place on a terminal, or printed once per refresh when piped."""

    def __init__(self, stream: TextIO | None = None) -> None:
        # sys.stdout when called, not at import: the CLI puts a guard around it (cliutil.guard_stdout).
        self.stream = stream = stream or sys.stdout
        self.tty = stream.isatty()
        self._lines = 0

    def show(self, text: str) -> None:
        if self.tty:
            if self._lines:
                self.stream.write(f"\x1b[{self._lines}F\x1b[J")
            self.stream.write(text + "\n")
            self._lines = text.count("\n") + 1
        else:
            self.stream.write(f"--- {time.strftime('%H:%M:%S')}\n{text}\n")
        self.stream.flush()


def format_since(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
