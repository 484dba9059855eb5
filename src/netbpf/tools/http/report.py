"""How a transaction reads: one set of columns for text lines, JSON and CSV.

Secrets never leave unless asked: the tracer redacts them as it parses
(``netbpf.packet.redact``: Authorization, Cookie, ... and headers named like
token/secret/key/password, kept apart by a keyed hash). The report applies the
same redaction again (a no-op on marks) to what reaches it by another way.
"""
from __future__ import annotations

import json
import time
from typing import Any

from ...output import Column, Table
from ...packet.http import Headers
from ...packet.redact import is_secret, redact
from .tracer import Transaction

_dumps = json.JSONEncoder(default=str).encode
_str = json.encoder.encode_basestring_ascii  # what json.dumps uses
PATH_WIDTH = 32


_second: list[Any] = [None, ""]  # the last second formatted, and how it read


def _clock(ts: float) -> str:
    second = int(ts)
    if second != _second[0]:
        _second[0], _second[1] = second, time.strftime("%H:%M:%S", time.localtime(second))
    return f"{_second[1]}.{int((ts - second) * 1e6):06d}"


def _size(n: int | None) -> int | None:
    """A size, or None where it is not known (-1: a kernel record's wire sizes)."""
    return None if n is None or n < 0 else n


def _size_json(n: int) -> str:
    return "null" if n < 0 else str(n)


def _path(path: str) -> str:
    return path if len(path) <= PATH_WIDTH else path[:PATH_WIDTH - 1] + "~"


COLUMNS = [
    Column("ts", "TIME", 15, text=_clock),
    Column("client", "CLIENT", 21),
    Column("backend", "BACKEND", 21),
    Column("method", "METHOD", 7),
    Column("path", "PATH", PATH_WIDTH, text=_path),
    Column("host", "HOST"),
    Column("status", "STATUS", 6, ">"),
    Column("request_body", "REQ", 8, ">"),
    Column("response_body", "RESP", 8, ">"),
    Column("request_bytes", "REQ-WIRE", 8, ">"),
    Column("response_bytes", "RESP-WIRE", 9, ">"),
    Column("latency_ms", "LAT ms", 8, ">", text=lambda v: f"{v:.2f}"),
    Column("ttfb_ms", "TTFB ms", 8, ">", text=lambda v: f"{v:.2f}"),
    Column("interim", "1XX", text=lambda v: ",".join(map(str, v))),
    Column("tag", "TAG", 12),
    Column("tunnel", "TUNNEL"),
    Column("error", "ERROR"),
    Column("request_headers", "REQUEST HEADERS"),
    Column("response_headers", "RESPONSE HEADERS"),
]
TEXT_KEYS = ["ts", "client", "backend", "method", "path", "status", "request_body", "response_body",
             "latency_ms", "ttfb_ms", "tag", "tunnel", "error"]


class Report:
    def __init__(self, tag: bool, headers: bool, show_secrets: bool, tag_header: str | None) -> None:
        self.headers = headers
        self.show_secrets = show_secrets
        self.tag_header = tag_header or ""
        self.tag_is_secret = bool(tag_header) and is_secret(self.tag_header)
        keys = [k for k in TEXT_KEYS if tag or k != "tag"]
        by_key = {c.key: c for c in COLUMNS}
        self.text_table = Table([by_key[k] for k in keys])
        self.tag = tag
        # The text line as one format string, from the columns' widths and alignment.
        self._text_format = "  ".join(f"{{:{c.align}{c.width}}}" if c.width else "{}"
                                      for c in self.text_table.columns)
        self._text_of = [None if c.text is str else c.text for c in self.text_table.columns]
        self.json_table = Table([c for c in COLUMNS if headers or not c.key.endswith("_headers")])

    def row(self, tx: Transaction) -> dict[str, Any]:
        ex = tx.exchange
        req, resp = ex.request, ex.response
        latency, ttfb = ex.latency, ex.ttfb
        tag = req.tag
        if tag is not None and self.tag_is_secret and not self.show_secrets:
            tag = redact(self.tag_header, tag)
        row: dict[str, Any] = {
            "ts": round(req.first_ts, 6), "client": tx.client, "backend": tx.backend,
            "method": req.method, "path": req.target, "host": req.host,
            "status": resp.status if resp else None,
            "request_body": _size(req.body_size), "response_body": _size(resp.body_size) if resp else None,
            "request_bytes": _size(req.wire_size), "response_bytes": _size(resp.wire_size) if resp else None,
            "latency_ms": None if latency is None else round(latency * 1000, 3),
            "ttfb_ms": None if ttfb is None else round(ttfb * 1000, 3),
            "interim": list(resp.interim) if resp and resp.interim else None,
            "tag": tag, "tunnel": str(tx.tunnel) if tx.tunnel else None, "error": ex.error or None,
        }
        if self.headers:
            row["request_headers"] = self._headers(req.headers)
            row["response_headers"] = self._headers(resp.headers) if resp else None
        return row

    def _headers(self, headers: Headers) -> dict[str, str | list[str]]:
        out: dict[str, str | list[str]] = {}
        for name, value in headers:
            if not self.show_secrets:
                value = redact(name, value)
            if name in out:
                previous = out[name]
                out[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
            else:
                out[name] = value
        return out

    def header_line(self) -> str:
        return self.text_table.header()

    def text(self, tx: Transaction) -> str:
        if not self.headers:
            return self._text_format.format(*self._cells(tx)).rstrip()
        row = self.row(tx)
        line = self.text_table.text(row)
        if self.headers:
            extra = [f"    > {k}: {v}" for k, vs in (row["request_headers"] or {}).items()
                     for v in (vs if isinstance(vs, list) else [vs])]
            extra += [f"    < {k}: {v}" for k, vs in (row["response_headers"] or {}).items()
                      for v in (vs if isinstance(vs, list) else [vs])]
            line = "\n".join([line, *extra])
        return line

    def _cells(self, tx: Transaction) -> list[str]:
        """The text columns' cells, as Table.text would write them from row()."""
        ex = tx.exchange
        req, resp = ex.request, ex.response
        if resp is None:
            status = response_body = latency = ttfb = None
        else:
            status, response_body = resp.status, resp.body_size
            latency = round((resp.last_ts - req.first_ts) * 1000, 3)
            ttfb = round((resp.first_ts - req.first_ts) * 1000, 3)
        tag = req.tag
        if tag is not None and self.tag_is_secret and not self.show_secrets:
            tag = redact(self.tag_header, tag)
        values: list[Any] = [round(req.first_ts, 6), tx.client, tx.backend, req.method, req.target, status,
                             _size(req.body_size), response_body, latency, ttfb]
        if self.tag:
            values.append(tag)
        values += [str(tx.tunnel) if tx.tunnel else None, ex.error or None]
        return ["-" if v is None or v == "" else (str(v) if text is None else text(v))
                for v, text in zip(values, self._text_of, strict=True)]

    def json(self, tx: Transaction) -> str:
        """The JSON object of row(), written out directly: this runs once per
        transaction at tens of thousands per second (a unit test checks that it
        is exactly json.dumps(row()))."""
        if self.headers:
            return _dumps(self.row(tx))
        ex = tx.exchange
        req, resp = ex.request, ex.response
        tag = req.tag
        if tag is not None:
            tag = _str(redact(self.tag_header, tag) if self.tag_is_secret and not self.show_secrets else tag)
        if resp is None:
            status = response_body = response_bytes = latency = ttfb = interim = "null"
        else:
            status, response_body, response_bytes = (str(resp.status), _size_json(resp.body_size),
                                                     _size_json(resp.wire_size))
            latency = repr(round((resp.last_ts - req.first_ts) * 1000, 3))
            ttfb = repr(round((resp.first_ts - req.first_ts) * 1000, 3))
            interim = _dumps(list(resp.interim)) if resp.interim else "null"
        return (f'{{"ts": {round(req.first_ts, 6)!r}, "client": "{tx.client}", "backend": "{tx.backend}", '
                f'"method": {_str(req.method)}, "path": {_str(req.target)}, "host": {_str(req.host)}, '
                f'"status": {status}, "request_body": {_size_json(req.body_size)}, "response_body": {response_body}, '
                f'"request_bytes": {_size_json(req.wire_size)}, "response_bytes": {response_bytes}, '
                f'"latency_ms": {latency}, "ttfb_ms": {ttfb}, "interim": {interim}, '
                f'"tag": {tag or "null"}, "tunnel": {_str(str(tx.tunnel)) if tx.tunnel else "null"}, '
                f'"error": {_str(ex.error) if ex.error else "null"}}}')
