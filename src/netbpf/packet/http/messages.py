"""What HTTP/1.x framing and pairing produce and share: requests, responses,
exchanges, limits, statistics, the cache of parsed header blocks, and what a
connection speaks when it is not HTTP/1.x.

No I/O.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..redact import SECRET_HEADERS

__all__ = ["SECRET_HEADERS"]  # re-exported: the headers redacted as they are parsed

# What a connection may speak instead of HTTP/1.x, told by its first bytes
# (sniff) or by an upgrade; such connections are counted, never parsed.
H2_PREFACE, H2C_UPGRADE, TLS_HANDSHAKE = "HTTP/2 preface", "HTTP/2 upgrade (h2c)", "TLS handshake"
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def sniff(first: bytes) -> str | None:
    """What the first bytes of a connection say it speaks: a protocol above, "" for
    HTTP/1.x (or anything else: the parser decides), None when more bytes are needed."""
    if first[0] == 0x16:  # TLS record: handshake, version 3.x (SSL 3.0 to TLS 1.3)
        if len(first) < 3:
            return None if len(first) < 2 or first[1] == 3 else ""
        return TLS_HANDSHAKE if first[1] == 3 and first[2] <= 4 else ""
    n = min(len(first), len(_PREFACE))
    if first[:n] != _PREFACE[:n]:
        return ""
    return H2_PREFACE if n == len(_PREFACE) else None


Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Limits:
    max_header_bytes: int = 64 << 10  # a longer header block makes the stream unparseable
    header_cache: int = 4096  # parsed header blocks remembered (per direction), then forgotten
    max_waiting_bytes: int = 1 << 20  # response bytes held while their request is not seen yet
    max_in_flight: int = 1024  # pipelined requests waiting for responses


DEFAULT_LIMITS = Limits()


class Request(NamedTuple):
    method: str
    target: str
    version: str
    host: str
    headers: Headers  # empty unless asked for (keep_headers)
    body_size: int  # decoded: chunked framing not counted
    wire_size: int  # start line, headers and body as sent
    chunked: bool
    first_ts: float
    last_ts: float
    tag: str | None = None


class Response(NamedTuple):
    status: int
    reason: str
    version: str
    headers: Headers
    body_size: int
    wire_size: int
    chunked: bool
    first_ts: float
    last_ts: float
    interim: tuple[int, ...] = ()  # 1xx responses before this one
    until_close: bool = False  # the body ran to the end of the connection


class Exchange(NamedTuple):
    request: Request
    response: Response | None
    error: str = ""  # why the exchange is incomplete; "" when it is whole

    @property
    def latency(self) -> float | None:
        """First request byte to last response byte, in seconds."""
        return self.response.last_ts - self.request.first_ts if self.response else None

    @property
    def ttfb(self) -> float | None:
        """First request byte to first response byte, in seconds."""
        return self.response.first_ts - self.request.first_ts if self.response else None


@dataclass(slots=True)
class HttpStats:
    requests: int = 0
    responses: int = 0
    exchanges: int = 0
    incomplete: int = 0  # exchanges emitted with an error
    orphan_responses: int = 0  # responses whose request the capture did not see
    unparseable_streams: int = 0  # directions where llhttp or the framing failed at least once
    parse_errors: int = 0
    resyncs: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    not_http1: dict[str, int] = field(default_factory=dict)  # connections, by what they speak instead


class HeadCache:
    """Header blocks already parsed, shared by the conversations of one tracer."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.requests: dict[bytes, tuple[Any, ...] | str] = {}
        self.responses: dict[bytes, tuple[Any, ...] | str] = {}

