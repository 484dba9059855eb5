"""HTTP/1.x on reassembled TCP streams: requests paired with their responses.

One :class:`HttpConversation` per TCP connection takes the bytes of each
direction (it is a :class:`~netbpf.packet.tcp.StreamConsumer`) and emits an
:class:`Exchange` per request: the request, its final response, and an error
when the pair could not be completed (connection closed first, capture gap).

Who parses what:

- the start line and header block of every message are parsed by llhttp
  (through httptools): methods, targets, versions, header syntax, duplicate
  or malformed Content-Length, Transfer-Encoding rules;
- the message *framing* (where a body ends, RFC 9112 section 6.3) is done
  here, because it depends on things llhttp cannot know or httptools does not
  expose: a response to HEAD has no body whatever its Content-Length says,
  a response read until the connection closes ends at the FIN, a 2xx to
  CONNECT or a 101 ends HTTP on that connection, and pipelined messages must
  be cut at exact byte positions. Content-Length bodies are only counted
  (never copied), chunked bodies are decoded by a small state machine.

Pairing: responses answer requests in order (pipelining included); 1xx
responses are interim and kept with the final one. A response whose ACK does
not cover its would-be request's head was sent before the server had that
request: it answers a request the capture lost (or none), and is counted as
a response without its request. After a loss that may hide whole messages
(a gap outside a body whose length is known), the stream skips to the next
message start, and nothing is paired that TCP's sequence and acknowledgement
numbers do not prove (``HttpConversation._pair_after_loss``): the rest is
reported as "response lost in a capture gap" or "... or not identified".

Speed, because a gateway sends tens of thousands of these a second: a header
block already seen is not parsed again (:class:`HeadCache`: llhttp's result is
a function of the bytes), a segment that is exactly one such message takes a
one-step path (``_Stream._whole_message``, tested equal to the general one),
and the events are NamedTuples (immutable, and three times cheaper to build
than frozen dataclasses).

No I/O; nothing here raises on bad input.
"""
from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import httptools

from .redact import SECRET_HEADERS, redact, redact_target

__all__ = ["H2C_UPGRADE", "H2_PREFACE", "SECRET_HEADERS", "TLS_HANDSHAKE", "Exchange", "HeadCache", "HttpConversation", "HttpStats", "Limits", "Request",
           "Response"]

# Stream states.
HEAD, LENGTH, CHUNK_SIZE, CHUNK_DATA, CHUNK_END, TRAILERS, UNTIL_CLOSE, RESYNC, WAIT, DEAD = range(10)

_REQUEST_START = re.compile(rb"[A-Z][A-Z_-]{0,19} [^ \r\n]+ HTTP/\d\.\d\r?\n")
_RESPONSE_START = re.compile(rb"HTTP/\d\.\d \d\d\d[ \r]")
# What the start of a start line can be, when it comes in pieces after a gap.
_REQUEST_PREFIX = re.compile(rb"[A-Z][A-Z_-]{0,19}(?: [^ \r\n]*(?: (?:H(?:T(?:T(?:P(?:/(?:\d(?:\.(?:\d\r?)?)?)?)?)?)?)?)?)?)?")
_RESPONSE_PREFIX = re.compile(rb"H(?:T(?:T(?:P(?:/(?:\d(?:\.(?:\d(?: (?:\d(?:\d(?:\d)?)?)?)?)?)?)?)?)?)?)?")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?\r\n")
_CRLF2 = b"\r\n\r\n"
FAST_PATH = True  # _Stream._whole_message; the tests also run with it off

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


class _Slot:
    """One request in flight, waiting for its final response; or (``placeholder``) a
    response whose request is not proven yet, kept until it is."""

    __slots__ = ("ack", "answered", "error", "first_ts", "head_end", "interim", "method", "placeholder",
                 "request", "resp_ack", "resp_end", "resp_start", "response", "start", "tunnel", "uncertain")

    def __init__(self, method: str, first_ts: float, start: int = -1, head_end: int = -1,
                 ack: int = -1) -> None:
        self.method = method
        self.first_ts = first_ts
        self.request: Request | None = None  # set when the request is whole (or lost midway)
        self.response: Response | None = None
        self.answered = False  # the final response is whole, or known lost
        self.interim: list[int] = []
        self.error = ""
        self.tunnel = ""  # "CONNECT" or the Upgrade header (lower case): HTTP may stop after the response
        # Where the request lies in the client's stream, and how much of the server's
        # stream the client had received when it sent it (stream offsets, -1: unknown).
        self.start, self.head_end, self.ack = start, head_end, ack
        # Where its final response lies in the server's stream.
        self.resp_start = self.resp_end = self.resp_ack = -1
        self.placeholder = False
        self.uncertain = False  # placeholder: its framing assumed a request that may be HEAD


class _Stream:
    """One direction of a conversation: bytes in, messages out."""

    def __init__(self, conv: HttpConversation, direction: int, is_request: bool) -> None:
        self.conv = conv
        self.direction = direction
        self.is_request = is_request
        self.state = HEAD
        self.buf = bytearray()
        self.buf_ts = 0.0
        self.broken = False  # counted once as an unparseable stream
        self.after_gap = False
        self.until_close = False
        # Stream offsets: of the data being fed, of the bytes held (WAIT, or a head split
        # over segments), of the current message; with the acknowledgement numbers
        # (offsets in the other direction) of the segments that carried them.
        self.seg_off = self.seg_ack = 0
        self.hold_off = self.hold_ack = 0
        self.msg_start = self.msg_ack = self.head_end = 0
        # What llhttp's callbacks collect from one header block.
        self._url = b""
        self._reason = b""
        self._cl: bytes | None = None
        self._te: list[bytes] | None = None
        self._host = b""
        self._tag: bytes | None = None
        self._upgrade = b""
        self._headers: list[tuple[str, str]] | None = None
        self._reset_message()

    def _reset_message(self) -> None:
        self.first_ts = 0.0
        self.wire = 0
        self.body = 0
        self.remaining = 0
        self.chunked = False
        self.slot: _Slot | None = None
        self.head: tuple[Any, ...] | None = None

    # -- llhttp callbacks (header block only) ------------------------------------------
    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        # Called for every header of every message: compare lengths before bytes.
        size = len(name)
        if size == 14 or size == 17 or size == 4 or size == 7:
            lname = name.lower()
            if lname == b"content-length":
                self._cl = value
            elif lname == b"transfer-encoding":
                if self._te is None:
                    self._te = []
                self._te.append(value)
            elif lname == b"host":
                self._host = value
            elif lname == b"upgrade":
                self._upgrade = value
        tag = self.conv.tag_header
        if tag is not None and size == len(tag) and name.lower() == tag:
            self._tag = value
        if self._headers is not None:
            self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    # -- input --------------------------------------------------------------------------
    def feed(self, data: bytes, ts: float) -> None:
        if self.state == HEAD and not self.buf and FAST_PATH and self._whole_message(data, ts):
            return
        pos, n = 0, len(data)
        while pos < n:
            state = self.state
            if state in (LENGTH, CHUNK_DATA):
                take = min(self.remaining, n - pos)
                pos += take
                self.remaining -= take
                self.body += take
                self.wire += take
                if not self.remaining:
                    if state == LENGTH:
                        self._complete(ts)
                    else:
                        self.state = CHUNK_END
            elif state == HEAD:
                pos = self._head(data, pos, ts)
            elif state == UNTIL_CLOSE:
                self.body += n - pos
                self.wire += n - pos
                return
            elif state == RESYNC:
                pos = self._resync(data, pos, ts)
            elif state == WAIT:
                self._hold(data[pos:], ts, pos)
                return
            elif state == DEAD:
                return
            else:
                pos = self._chunk_line(data, pos, ts)

    def _whole_message(self, data: bytes, ts: float) -> bool:
        """The common case in one step: this segment is exactly one message with a
        Content-Length body (or none), whose header block was parsed before.

        Does what the general path (feed -> _head -> _message_head -> _framing ->
        _complete) does for such a message, with a fraction of the calls; anything
        else returns False and takes the general path. The tests run every case
        both ways and compare."""
        end = data.find(_CRLF2)
        if end <= 0 or data[0] == 13 or data[0] == 10:
            return False
        conv = self.conv
        block = data[:end + 4]
        n = len(data)
        if self.is_request:
            parsed = conv.heads.requests.get(block)
            if parsed is None or isinstance(parsed, str):
                return False
            method, target, version, host, headers, tag, length, te, _, tunnel = parsed
            size = length or 0
            if te or tunnel or end + 4 + size != n or len(conv.slots) >= conv.limits.max_in_flight:
                return False
            slot = conv._open_slot(method, ts, self.seg_off, self.seg_off + end + 4, self.seg_ack)
            assert slot is not None
            slot.request = Request(method, target, version, host, headers, size, n, False, ts, ts, tag)
            conv.stats.requests += 1
            if slot.answered:
                conv._flush()
            return True
        parsed = conv.heads.responses.get(block)
        if parsed is None or isinstance(parsed, str) or self.after_gap or not conv.synced:
            return False
        status, reason, version, headers, length, te, _ = parsed
        if te or length is None or status < 200 or status == 204 or status == 304 \
                or end + 4 + length != n:
            return False
        slot = None
        for candidate in conv.slots:  # the oldest request not answered yet
            if not candidate.answered:
                slot = candidate
                break
        ack = self.seg_ack
        if slot is None or (slot.head_end > ack if ack >= 0 else slot.first_ts > ts) or slot.tunnel \
                or slot.method == "HEAD" or slot.method == "CONNECT":
            return False
        slot.resp_start, slot.resp_end, slot.resp_ack = self.seg_off, self.seg_off + n, ack
        last = conv.last_answer
        if last is not None and last.resp_end == self.seg_off and last.resp_ack == ack >= 0:
            conv.pipelined = True  # as in _slot_for_response
        conv.last_answer = slot
        request = slot.request
        if request is not None and ack > slot.start + request.wire_size:
            conv.pipelined = True  # as in _response_head
        if len(conv.slots) > 1:
            conv._check_pipelining(slot)  # (only a later request can tell)
        elif slot.resp_end > conv.resp_floor:
            conv.resp_floor = slot.resp_end
        slot.response = Response(status, reason, version, headers, length, n, False, ts, ts,
                                 tuple(slot.interim) if slot.interim else (), False)
        slot.answered = True
        conv.unanswered -= 1
        conv.stats.responses += 1
        conv._flush()
        return True

    def _hold(self, data: bytes, ts: float, pos: int) -> None:
        if not self.buf:
            self.buf_ts = ts
            self.hold_off, self.hold_ack = self.seg_off + pos, self.seg_ack
        self.buf += data
        if len(self.buf) > self.conv.limits.max_waiting_bytes:
            self.buf.clear()
            self._fail("waited too long for the request", ts, self.hold_off)

    def resume(self, ts: float) -> None:
        """Parse what was held while waiting for the other direction."""
        if self.state != WAIT:
            return
        self.state = HEAD
        if self.buf:
            held, held_ts = bytes(self.buf), self.buf_ts
            self.buf.clear()
            self.seg_off, self.seg_ack = self.hold_off, self.hold_ack
            self.feed(held, held_ts if held_ts else ts)

    def _head(self, data: bytes, pos: int, ts: float) -> int:
        n = len(data)
        if not self.buf:
            # Empty lines between messages are allowed (RFC 9112 section 2.2).
            while data[pos] == 13 or data[pos] == 10:
                pos += 1
                if pos == n:
                    return n
            if not self.is_request and not self.conv.unanswered:
                self.state = WAIT
                self._hold(data[pos:], ts, pos)
                return n
            end = data.find(_CRLF2, pos)
            if end < 0:
                self._hold(data[pos:], ts, pos)
                return self._check_head_size(n, ts)
            self.first_ts = ts
            self.msg_start, self.msg_ack = self.seg_off + pos, self.seg_ack
            self.head_end = self.seg_off + end + 4
            self._message_head(data[pos:end + 4], ts)
            return end + 4
        start = max(0, len(self.buf) - 3)
        before = len(self.buf)
        self.buf += data[pos:]
        end = self.buf.find(_CRLF2, start)
        if end < 0:
            return self._check_head_size(n, ts)
        block = bytes(self.buf[:end + 4])
        self.buf.clear()
        self.first_ts = self.buf_ts
        self.msg_start, self.msg_ack = self.hold_off, self.hold_ack
        self.head_end = self.seg_off + pos + end + 4 - before
        self._message_head(block, ts)
        return pos + end + 4 - before

    def _check_head_size(self, n: int, ts: float) -> int:
        if len(self.buf) > self.conv.limits.max_header_bytes:
            self.buf.clear()
            self._fail("header block too long", ts, self.hold_off)
        return n

    def _message_head(self, block: bytes, ts: float) -> None:
        cache = self.conv.heads.requests if self.is_request else self.conv.heads.responses
        parsed = cache.get(block)
        if parsed is None:
            parsed = self._parse_head(block)
            if len(cache) >= self.conv.heads.size:
                cache.clear()
            cache[block] = parsed
        if isinstance(parsed, str):
            self._fail(parsed, ts)
            return
        self.wire = len(block)
        self.body = 0
        if self.is_request:
            self._request_head(parsed, ts)
        else:
            self._response_head(parsed, ts)

    def _parse_head(self, block: bytes) -> tuple[Any, ...] | str:
        """llhttp's reading of a header block, or why it refused it.

        A pure function of the bytes (and of the conversation's settings), so its
        result is cached: at high rates most header blocks repeat (same client,
        same server, same second in Date) and are not parsed again."""
        self._url = b""
        self._reason = b""
        self._cl = None
        self._te = None
        self._host = b""
        self._tag = None
        self._upgrade = b""
        self._headers = [] if self.conv.keep_headers else None
        parser: httptools.HttpRequestParser | httptools.HttpResponseParser = (
            httptools.HttpRequestParser(self) if self.is_request else httptools.HttpResponseParser(self))
        try:
            parser.feed_data(block)
        except httptools.HttpParserUpgrade:
            pass  # Upgrade or CONNECT: llhttp stops after the header block, as we want
        except httptools.HttpParserError as e:
            return f"unparseable {'request' if self.is_request else 'response'}: {str(e).split(':')[0]}"
        version = parser.get_http_version()
        if self._te is None:
            te, chunked = b"", False
        else:
            te = b",".join(self._te).lower()
            chunked = te.rsplit(b",", 1)[-1].strip() == b"chunked"
        headers = tuple(self._headers) if self._headers else ()
        secret = self.conv.redact
        if secret and headers:
            headers = tuple((name, redact(name, value)) for name, value in headers)
        length: int | None = None
        if self._cl is not None:
            try:
                length = int(self._cl)
            except ValueError:  # llhttp checks it; this only guards against lenient parsers
                return "bad Content-Length"
        if isinstance(parser, httptools.HttpRequestParser):
            method = parser.get_method().decode("latin-1")
            target, tag = self._url.decode("latin-1"), None if self._tag is None else self._tag.decode("latin-1")
            if secret:
                target = redact_target(target)
                if tag is not None:
                    tag = redact(self.conv.tag_name, tag)
            tunnel = "CONNECT" if method == "CONNECT" else (
                self._upgrade.decode("latin-1").lower() or "upgrade") if parser.should_upgrade() else ""
            return (method, target, version, self._host.decode("latin-1"), headers, tag, length, te, chunked,
                    tunnel)
        return (parser.get_status_code(), self._reason.decode("latin-1"), version, headers, length, te,
                chunked)

    def _framing(self, cl: int | None, te: bytes, chunked: bool, ts: float, until_close_ok: bool) -> None:
        """Where the body ends (RFC 9112 section 6.3), once the no-body cases are out."""
        if te:
            if chunked:
                self.chunked = True
                self.state = CHUNK_SIZE
            elif until_close_ok:
                self.state = UNTIL_CLOSE
            else:
                self._fail("request with a Transfer-Encoding other than chunked", ts)
        elif cl is not None:
            self.remaining = cl
            if self.remaining:
                self.state = LENGTH
            else:
                self._complete(ts)
        elif until_close_ok:
            self.state = UNTIL_CLOSE
        else:
            self._complete(ts)

    def _request_head(self, parsed: tuple[Any, ...], ts: float) -> None:
        method, target, version, host, headers, tag, cl, te, chunked, tunnel = parsed
        slot = self.conv._open_slot(method, self.first_ts, self.msg_start, self.head_end, self.msg_ack)
        if slot is None:
            self._fail("too many pipelined requests", ts)
            return
        slot.tunnel = tunnel
        self.slot = slot
        self.head = (method, target, version, host, headers, tag)
        self.state = HEAD
        self._framing(cl, te, chunked, ts, until_close_ok=False)

    def _response_head(self, parsed: tuple[Any, ...], ts: float) -> None:
        status, reason, version, headers, cl, te, chunked = parsed
        # None: a response no request in flight can have caused (the server had
        # not received one when it sent it): its own request is one the capture
        # missed, or there was none. It is skipped, framing and all.
        slot = self.conv._slot_for_response(self, status)
        self.after_gap = False
        if not 100 <= status < 200 or status == 101:
            self.conv.last_answer = slot
        if slot is not None:
            slot.resp_start, slot.resp_ack = self.msg_start, self.msg_ack
            request = slot.request
            if request is not None and not slot.placeholder and self.msg_ack > slot.start + request.wire_size:
                # The server had more than this request when it began the answer:
                # the client sent the next one without waiting.
                self.conv.pipelined = True
        self.slot = slot
        self.head = (status, reason, version, headers)
        self.state = HEAD
        method = slot.method if slot else ""
        if 100 <= status < 200 and status != 101:
            if slot is not None:
                slot.interim.append(status)
            self._reset_message()  # interim: no body, the final response follows
            return
        if status == 101 or method == "HEAD" or status in (204, 304) or (
                method == "CONNECT" and 200 <= status < 300):
            self._complete(ts)
            return
        self._framing(cl, te, chunked, ts, until_close_ok=True)

    def _chunk_line(self, data: bytes, pos: int, ts: float) -> int:
        """CHUNK_SIZE, CHUNK_END (the CRLF after chunk data) and TRAILERS: line by line."""
        n = len(data)
        nl = -1
        # Lines are short: look for LF in a small window first.
        window = data[pos:pos + 256]
        nl = window.find(b"\n")
        if nl < 0:
            if len(self.buf) + len(window) > 4096:
                self._fail("chunk framing line too long", ts)
                return n
            if n - pos > 256:  # a long run of bytes without LF: not a chunk line
                self._fail("bad chunk framing", ts)
                return n
            self.buf += window
            self.wire += len(window)
            return n
        line = bytes(self.buf) + window[:nl + 1] if self.buf else window[:nl + 1]
        self.buf.clear()
        self.wire += nl + 1
        pos += nl + 1
        state = self.state
        if state == CHUNK_END:
            if line != b"\r\n":
                self._fail("chunk data not followed by CRLF", ts)
                return n
            self.state = CHUNK_SIZE
        elif state == CHUNK_SIZE:
            match = _CHUNK_SIZE.fullmatch(line)
            if match is None:
                self._fail("bad chunk size line", ts)
                return n
            size = int(match.group(1), 16)
            if size:
                self.remaining = size
                self.state = CHUNK_DATA
            else:
                self.state = TRAILERS
        elif line == b"\r\n":  # TRAILERS: an empty line ends the message
            self._complete(ts)
        elif not line.endswith(b"\r\n") or b":" not in line:
            self._fail("bad trailer line", ts)
            return n
        return pos

    def _resync(self, data: bytes, pos: int, ts: float) -> int:
        """After a gap or an error: wait for a segment that starts a message (its
        start line may come over several segments: held until it is whole)."""
        pattern, prefix = (_REQUEST_START, _REQUEST_PREFIX) if self.is_request else (_RESPONSE_START,
                                                                                     _RESPONSE_PREFIX)
        if self.buf:
            candidate = bytes(self.buf[:4096]) + data[pos:pos + 4096]
            if pattern.match(candidate):
                self.state = HEAD  # the held bytes begin the head; _head appends the rest
                self.conv.stats.resyncs += 1
                return pos
            if len(candidate) < 4096 and prefix.fullmatch(candidate):
                self.buf += data[pos:]
                return len(data)
            self.buf.clear()
        if pattern.match(data, pos, pos + 4096):
            self.state = HEAD
            self.conv.stats.resyncs += 1
            return pos
        if len(data) - pos < 4096 and prefix.fullmatch(data, pos):
            self._hold(data[pos:], ts, pos)
        return len(data)

    # -- message boundaries --------------------------------------------------------------
    def _complete(self, ts: float) -> None:
        """The current message ended with the byte seen at ``ts``."""
        slot, head = self.slot, self.head
        self.state = HEAD
        if head is not None:
            conv = self.conv
            if self.is_request:
                conv.stats.requests += 1
                if slot is not None:
                    slot.request = Request(head[0], head[1], head[2], head[3], head[4], self.body,
                                           self.wire, self.chunked, self.first_ts, ts, head[5])
                    if slot.tunnel and not slot.answered:
                        self.state = WAIT  # what follows may not be HTTP: wait for the answer
                    conv._flush()
            else:
                conv.stats.responses += 1
                if slot is not None:
                    slot.response = self._response(ts)
                    slot.resp_end = self.msg_start + self.wire
                    conv._answered(slot)
                    conv._response_done(slot, ts)
        self.slot = None
        self.head = None
        self.chunked = False

    def _request(self, ts: float) -> Request:
        method, target, version, host, headers, tag = self.head  # type: ignore[misc]
        return Request(method, target, version, host, headers, self.body, self.wire, self.chunked,
                       self.first_ts, ts, tag)

    def _response(self, ts: float) -> Response:
        status, reason, version, headers = self.head  # type: ignore[misc]
        interim = tuple(self.slot.interim) if self.slot is not None and self.slot.interim else ()
        return Response(status, reason, version, headers, self.body, self.wire, self.chunked,
                        self.first_ts, ts, interim, self.until_close)

    def gap(self, size: int, ts: float) -> None:
        """``size`` bytes the capture missed, at ``self.conv.offsets[direction]``."""
        state = self.state
        if state in (LENGTH, CHUNK_DATA) and size <= self.remaining:
            self.remaining -= size
            self.body += size
            self.wire += size
            if not self.remaining:
                if state == LENGTH:
                    self._complete(ts)
                else:
                    self.state = CHUNK_END
            return
        if state == UNTIL_CLOSE:
            self.body += size
            self.wire += size
            return
        if state in (DEAD, RESYNC):
            self.buf.clear()  # a start line held in pieces: no longer whole
            return
        at = self.head_end if self.head is not None else self.hold_off if self.buf \
            else self.conv.offsets[self.direction]
        self._lost("capture gap", ts, at)

    def end(self, ts: float) -> None:
        """The sender closed its half of the connection (FIN)."""
        if self.state == UNTIL_CLOSE:
            self.state = HEAD
            self._complete_until_close(ts)
        elif self.state == WAIT and self.buf and not self.is_request:
            self.conv.stats.orphan_responses += 1
        elif self.state not in (HEAD, RESYNC, DEAD, WAIT) or self.buf:
            self._lost("connection closed mid-message", ts, loss=False)
        self.buf.clear()
        self.state = DEAD

    def interrupted(self, error: str, ts: float) -> None:
        """The connection is gone (RST, idle, end of capture) while this side was mid-message."""
        if self.state == UNTIL_CLOSE:
            self._complete_until_close(ts)
        elif self.state not in (HEAD, RESYNC, DEAD, WAIT):
            self._lost(error, ts, loss=False)
        self.state = DEAD

    def _complete_until_close(self, ts: float) -> None:
        self.until_close = True
        self._complete(ts)
        self.until_close = False

    def _lost(self, error: str, ts: float, at: int | None = None, loss: bool = True) -> None:
        """The current message cannot be finished: report what there is, skip to the next one."""
        slot = self.slot
        if loss and self.state not in (RESYNC, DEAD):
            # From here to the next message start, messages may have gone unseen:
            # pairing must prove itself again (HttpConversation._pair_after_loss).
            if at is None:
                at = self.head_end if self.head is not None else self.hold_off if self.buf else self.msg_start
            self.conv._loss(self.is_request, at)
        if slot is not None and self.head is not None:
            slot.error = slot.error or error
            if self.is_request:
                slot.request = self._request(ts)
                self.conv._flush()
            else:
                slot.response = self._response(ts)
                self.conv._answered(slot)
                self.conv._response_done(slot, ts)
        self.buf.clear()
        self._reset_message()
        self.state = RESYNC
        self.after_gap = True

    def _fail(self, error: str, ts: float, at: int | None = None) -> None:
        self.conv.stats.parse_errors += 1
        self.conv.stats.errors[error] = self.conv.stats.errors.get(error, 0) + 1
        if not self.broken:
            self.broken = True
            self.conv.stats.unparseable_streams += 1
        self._lost(error, ts, at)


class HeadCache:
    """Header blocks already parsed, shared by the conversations of one tracer."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.requests: dict[bytes, tuple[Any, ...] | str] = {}
        self.responses: dict[bytes, tuple[Any, ...] | str] = {}


def _closed(exchange: Exchange) -> None:
    raise AssertionError("exchange emitted after the connection was closed")


class HttpConversation:
    """The HTTP exchanges of one TCP connection (a StreamConsumer)."""

    def __init__(self, emit: Callable[[Exchange], None], client_direction: int | None = None,
                 tag_header: str | None = None, keep_headers: bool = False,
                 stats: HttpStats | None = None, limits: Limits = Limits(),
                 midstream: bool = False, heads: HeadCache | None = None, redact: bool = True) -> None:
        self.emit = emit
        self.heads = heads if heads is not None else HeadCache(limits.header_cache)
        self.midstream = midstream  # joined an open connection: wait for message starts
        self.tag_header = tag_header.lower().encode() if tag_header else None
        self.tag_name = tag_header or ""
        self.keep_headers = keep_headers
        # Secrets (packet.redact) replaced by marks as header blocks are parsed: no
        # output made from what comes out of here can show one.
        self.redact = redact
        self.stats = stats if stats is not None else HttpStats()
        self.limits = limits
        self.slots: deque[_Slot] = deque()
        self.unanswered = 0  # slots waiting for their final response
        self.offsets = [0, 0]  # bytes of each direction delivered or missed so far
        # Pairing after loss (see _pair_after_loss). Synced: every response seen so
        # far is paired or proven unpaired, and no message went unseen since.
        self.synced = not midstream
        self.pipelined = False  # the client was seen sending a request before the last answer
        self.client_holes: list[list[int]] = [[0, -1]] if midstream else []  # [start, end) offsets
        self.server_holes: list[list[int]] = [[0, -1]] if midstream else []  # end -1: still open
        self.unidentified: list[_Slot] = []  # responses since the loss, their request not proven yet
        self.previous: _Slot | None = None  # the last request seen
        # The connection's first bytes are held until sniff() can tell what it speaks.
        self.protocol = ""  # not HTTP/1.x: what it is instead
        self.sniff_dir = -1 if midstream else None  # None: nothing seen yet; -1: decided
        self.sniffed = bytearray()
        self.sniff_ts = 0.0
        self.sniff_ack = -1
        self.last_answer: _Slot | None = None  # the last final response seen (or its placeholder)
        self.resp_floor = -1  # where the last response paired (proven) ended in the server's stream
        self.client_direction = client_direction
        self.streams: list[_Stream] | None = None
        if client_direction is not None:
            self._set_client(client_direction)
        self.closed = False

    def _set_client(self, direction: int) -> None:
        self.client_direction = direction
        streams = [_Stream(self, 0, direction == 0), _Stream(self, 1, direction == 1)]
        if self.midstream:
            for stream in streams:
                stream.state = RESYNC
                stream.after_gap = True
        self.streams = streams

    # -- StreamConsumer ---------------------------------------------------------------------
    def on_data(self, direction: int, data: bytes, ts: float, ack: int = -1) -> None:
        if type(data) is not bytes:
            data = bytes(data)
        offsets = self.offsets
        offset = offsets[direction]
        offsets[direction] = offset + len(data)
        streams = self.streams
        if self.sniff_dir == -1 and streams is not None and not self.protocol:
            # The common case, kept short: what the connection speaks was told long ago.
            stream = streams[direction]
            stream.seg_off = offset
            stream.seg_ack = ack
            stream.feed(data, ts)
            return
        if self.protocol:
            return
        if self.sniff_dir is not None and self.sniff_dir < 0:
            pass
        elif self.sniff_dir == direction or (self.sniff_dir is None and offset == 0):
            if not self.sniffed:
                self.sniff_dir, self.sniff_ts, self.sniff_ack = direction, ts, ack
            self.sniffed += data
            verdict = sniff(bytes(self.sniffed[:len(_PREFACE)]))
            if verdict is None:
                return  # not enough bytes to tell
            self.sniff_dir = -1
            if verdict:
                self._not_http1(verdict)
                return
            data, offset, ts, ack = bytes(self.sniffed), 0, self.sniff_ts, self.sniff_ack
            self.sniffed.clear()
        elif self.sniff_dir is None:
            self.sniff_dir = -1  # the connection's first bytes were not captured
        self._data(direction, data, offset, ts, ack)

    def _release_sniffed(self) -> None:
        """The first bytes held, for the parser: they were not enough to tell (gap, end)."""
        if self.sniff_dir is not None and self.sniff_dir >= 0:
            direction, self.sniff_dir = self.sniff_dir, -1
            if self.sniffed and not self.protocol:
                data = bytes(self.sniffed)
                self.sniffed.clear()
                self._data(direction, data, 0, self.sniff_ts, self.sniff_ack)

    def _data(self, direction: int, data: bytes, offset: int, ts: float, ack: int) -> None:
        if self.streams is None:
            # Neither SYN nor port told who the client is: the first bytes do.
            head = data[:4096]
            if _REQUEST_START.match(head):
                self._set_client(direction)
            elif _RESPONSE_START.match(head):
                self._set_client(1 - direction)
            else:
                return
            assert self.streams is not None
            if self.streams[direction].state == RESYNC:
                self.streams[direction].state = HEAD  # these bytes start a message
        stream = self.streams[direction]
        stream.seg_off, stream.seg_ack = offset, ack
        stream.feed(data, ts)

    def on_gap(self, direction: int, size: int, ts: float) -> None:
        self._release_sniffed()
        if self.streams is not None and not self.protocol:
            self.streams[direction].gap(size, ts)
        self.offsets[direction] += size

    def on_end(self, direction: int, ts: float) -> None:
        self._release_sniffed()
        if self.streams is not None and not self.protocol:
            self.streams[direction].end(ts)

    def on_close(self, reason: str, ts: float) -> None:
        if self.closed:
            return
        error = {"reset": "connection reset", "fin": "no response", "idle": "connection idle",
                 "shutdown": "capture ended"}.get(reason, f"connection {reason}")
        self._release_sniffed()
        if self.streams is not None:
            for stream in self.streams:
                stream.interrupted(error, ts)
        self.closed = True
        unproven = error if self.synced else "response lost in a capture gap or not identified"
        self.stats.orphan_responses += len(self.unidentified)
        self.unidentified.clear()
        while self.slots:
            slot = self.slots.popleft()
            if slot.request is not None:
                self._emit(slot, slot.error or (error if slot.answered else unproven))
        # Break the conversation <-> stream cycles: refcounting frees it now, not the GC.
        self.streams = None
        self.emit = _closed

    # -- pairing --------------------------------------------------------------------------
    def _open_slot(self, method: str, first_ts: float, start: int = -1, head_end: int = -1,
                   ack: int = -1) -> _Slot | None:
        if len(self.slots) >= self.limits.max_in_flight:
            return None
        slot = _Slot(method, first_ts, start, head_end, ack)
        holes = self.client_holes
        if holes and holes[-1][1] < 0:
            holes[-1][1] = start  # the requests lost end where this one starts
        previous = self.previous
        if previous is not None and ack >= 0 and not self.pipelined and (
                ack <= previous.ack or ack < previous.resp_end):
            # Sent before the answer to the previous request had come (its ACK
            # covers no more of the server's bytes than the previous one did).
            self.pipelined = True
        self.previous = slot
        self.slots.append(slot)
        self.unanswered += 1
        server = self.streams[1 - self.client_direction]  # type: ignore[index, operator]
        if server.state == WAIT:
            server.resume(first_ts)  # its answer came first: parse it now
        return slot

    def _answered(self, slot: _Slot) -> None:
        if not slot.answered and not slot.placeholder:
            slot.answered = True
            self.unanswered -= 1

    def _check_pipelining(self, slot: _Slot) -> None:
        """The final response to ``slot`` ended at ``slot.resp_end``: was the next
        request sent before that (the client pipelines)?"""
        if slot.resp_end > self.resp_floor:
            self.resp_floor = slot.resp_end
        if self.pipelined:
            return
        seen = False
        for other in self.slots:
            if seen:
                if 0 <= other.ack < slot.resp_end:
                    self.pipelined = True
                return
            seen = other is slot

    def _loss(self, is_request: bool, at: int) -> None:
        """Messages of one direction may have gone unseen from stream offset ``at``."""
        self.synced = False
        holes = self.client_holes if is_request else self.server_holes
        if not holes or holes[-1][1] >= 0:
            holes.append([at, -1])

    def _slot_for_response(self, stream: _Stream, status: int) -> _Slot | None:
        """The request a response answers, a placeholder while that is not proven,
        or None (counted as a response without its request)."""
        holes = self.server_holes
        if holes and holes[-1][1] < 0:
            holes[-1][1] = stream.msg_start  # the responses lost end where this one starts
        interim = 100 <= status < 200 and status != 101
        if not interim:
            last = self.last_answer
            if last is not None and last.resp_end == stream.msg_start and last.resp_ack == stream.msg_ack >= 0:
                # Two answers in a row sent with nothing received from the client
                # between them: the second request had come before the first answer.
                self.pipelined = True
        open_slots = [s for s in self.slots if not s.answered] if not self.synced else None
        if open_slots is None or (not self.server_holes and not self.unidentified and open_slots and (
                not self.client_holes or open_slots[0].start < self.client_holes[0][0])):
            # Every response since the last proven pairing was seen: this one answers
            # the oldest request not answered, if the server had received it.
            for slot in self.slots:
                if not slot.answered:
                    ack = stream.msg_ack
                    if slot.head_end > ack if ack >= 0 and slot.head_end >= 0 else slot.first_ts > stream.first_ts:
                        break
                    return slot
            if not interim:
                self.stats.orphan_responses += 1
            return None
        if interim:
            return None  # which request it is for is not known: the final response will tell
        return self._pair_after_loss(stream, open_slots)

    def _pair_after_loss(self, stream: _Stream, open_slots: list[_Slot]) -> _Slot | None:
        """Pair a response after a capture loss only where sequence numbers prove it.

        What TCP tells: the response's ACK (``ack``, an offset in the client's
        stream) covers the head of the request it answers (the server read it
        before answering); a request's ACK covers every server byte the client
        had received when it sent it. Responses come in request order. Proofs:

        - counting: if only the known requests are below ``ack`` (no loss in the
          client's stream there), the response answers one of the ``c`` open
          requests whose heads end below ``ack``, and not one of the first ``u``
          (each response seen since the loss and not yet paired answers a
          distinct one). When ``c == u + 1`` it answers the last, and the
          responses since the loss answer the ones before it, in order;
        - the client's ACK: a client that waits for each answer before sending
          the next request (seen not to pipeline on this connection) sent request
          P once every earlier answer had begun to arrive, so the responses that
          start at or after P's ACK answer P and the requests after it, in order,
          where no server bytes were lost between.

        Anything else stays a placeholder: paired once proven, otherwise counted
        as a response without its request, and its request reported without one.
        """
        start, ack = stream.msg_start, stream.msg_ack
        if ack < 0:
            return self._placeholder(stream, open_slots, True)
        first_hole = self.client_holes[0][0] if self.client_holes else None
        seen = self.offsets[self.client_direction]  # type: ignore[index]
        if ack > seen:
            # The server had received client bytes not delivered here yet (held out
            # of order, or lost): requests may hide there too.
            first_hole = seen if first_hole is None else min(first_hole, seen)
        known = first_hole is None or (ack <= first_hole and all(u.ack <= first_hole for u in self.unidentified))
        candidates = [s for s in open_slots if 0 <= s.head_end <= ack]
        lo = len(self.unidentified)
        if known and len(candidates) == lo + 1:
            target = candidates[lo]
            for slot, placeholder in zip(open_slots, self.unidentified, strict=False):
                self._adopt(slot, placeholder)
            self.unidentified.clear()
            self.server_holes.clear()
            self.synced = not self.client_holes
            return target
        if not self.pipelined:
            proven = self._by_client_ack(start, ack, open_slots)
            if proven is not None:
                return proven
        if known and len(candidates) <= lo:
            self.stats.orphan_responses += 1  # no request the server had received is left for it
            return None
        return self._placeholder(stream, candidates, not known)

    def _by_client_ack(self, start: int, ack: int, open_slots: list[_Slot]) -> _Slot | None:
        """The second proof of _pair_after_loss, on a client that does not pipeline."""
        boundary = self.client_holes[-1][1] if self.client_holes else 0
        if boundary < 0:
            return None  # the requests lost last end nowhere yet
        after = [s for s in open_slots if s.start >= boundary]
        ends = {u.resp_end for u in self.unidentified} | {h[1] for h in self.server_holes}
        for first in range(len(after) - 1, -1, -1):
            since = after[first].ack
            if since < 0 or since > start or since <= self.resp_floor or since not in ends:
                # The client sent it before anything past the last answer proven
                # had come (a batch sent at once?), or not right after a response
                # it had received whole: nothing shows that it waited.
                continue
            if self.client_holes and not any(u.resp_end == since and u.resp_ack == after[first].start
                                             for u in self.unidentified):
                # Requests were lost before it: it must follow an answer seen whole,
                # begun when the server had every client byte before it and no more.
                continue
            if any(h[0] < start and (h[1] < 0 or h[1] > since) for h in self.server_holes):
                return None  # responses may have been lost after the client sent it
            later = [u for u in self.unidentified if u.resp_start >= since]
            requests = after[first:]
            if len(later) >= len(requests) or requests[len(later)].head_end > ack or any(
                    r.head_end > u.ack for r, u in zip(requests, later, strict=False)):
                self.pipelined = True  # what the ACKs say contradicts the premise: no more of this
                return None
            earlier = [u for u in self.unidentified if u.resp_start < since]
            for slot in open_slots:
                if slot is requests[0]:
                    break
                # Its answer began before the client sent a later request: among the
                # responses not paired, or lost.
                slot.error = slot.error or ("response lost in a capture gap or not identified"
                                            if any(u.ack >= slot.head_end for u in earlier)
                                            else "response lost in a capture gap")
                self._answered(slot)
            self.stats.orphan_responses += len(earlier)
            for slot, placeholder in zip(requests, later, strict=False):
                self._adopt(slot, placeholder)
            self.unidentified.clear()
            self.server_holes.clear()
            self.client_holes.clear()
            self.synced = True
            return requests[len(later)]
        return None

    def _placeholder(self, stream: _Stream, candidates: list[_Slot], unknown: bool) -> _Slot:
        slot = _Slot("", stream.first_ts, ack=stream.msg_ack)
        slot.resp_ack = stream.msg_ack
        slot.placeholder = True
        slot.resp_start = stream.msg_start
        # Its body is framed as if its request were not HEAD or CONNECT: where that
        # may be wrong, the bytes it takes may hide responses (_response_done).
        slot.uncertain = unknown or any(s.method in ("HEAD", "CONNECT") or s.tunnel for s in candidates)
        self.unidentified.append(slot)
        return slot

    def _adopt(self, slot: _Slot, placeholder: _Slot) -> None:
        """A response kept as a placeholder is proven to answer ``slot``."""
        slot.response = placeholder.response
        slot.resp_start, slot.resp_end = placeholder.resp_start, placeholder.resp_end
        slot.error = slot.error or placeholder.error or ("" if placeholder.response else "capture gap")
        self.resp_floor = max(self.resp_floor, slot.resp_end)
        self._answered(slot)

    def _response_done(self, slot: _Slot, ts: float) -> None:
        response = slot.response
        status = response.status if response is not None else 0
        if slot.placeholder:
            if response is not None and slot.uncertain and (response.body_size or response.until_close):
                self.server_holes.append([slot.resp_start, slot.resp_end])
            if status == 101:
                self._not_http()
            return
        self._check_pipelining(slot)
        if not slot.tunnel:
            self._flush()
            return
        if slot.tunnel and (status == 101 or (slot.method == "CONNECT" and 200 <= status < 300)):
            self._not_http()
            if status == 101 and "h2c" in slot.tunnel:
                self._not_http1(H2C_UPGRADE)  # after this exchange, HTTP/2 on this connection
        elif slot.tunnel and self.streams is not None:
            self.streams[self.client_direction].resume(ts)  # type: ignore[index]
        self._flush()

    def _not_http(self) -> None:
        """Not HTTP any more on this connection."""
        assert self.streams is not None
        for stream in self.streams:
            stream.state = DEAD
            stream.buf.clear()

    def _not_http1(self, protocol: str) -> None:
        """This connection speaks another protocol (from its start, or after an upgrade)."""
        self.protocol = protocol
        self.stats.not_http1[protocol] = self.stats.not_http1.get(protocol, 0) + 1
        if self.streams is not None:
            self._not_http()

    def _flush(self) -> None:
        """Emit, in order, the exchanges whose request and response are both done."""
        slots = self.slots
        while slots and slots[0].answered and slots[0].request is not None:
            slot = slots.popleft()
            self._emit(slot, slot.error)

    def _emit(self, slot: _Slot, error: str) -> None:
        assert slot.request is not None
        self.stats.exchanges += 1
        if error:
            self.stats.incomplete += 1
        self.emit(Exchange(slot.request, slot.response, error))
