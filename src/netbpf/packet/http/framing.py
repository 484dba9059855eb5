"""HTTP/1.x framing of one direction of a TCP connection: bytes in, events out.

The model is h11's ``receive_data()`` / ``next_event()``: a :class:`Framer`
is given the bytes of one direction as they come (``receive_data``) and hands
back, one at a time, what they hold (``next_event``; None: it needs more
bytes). It does no I/O, knows nothing of the other direction, and calls
nothing back.

The one thing a framer cannot know alone is where a response's body ends,
which depends on the request it answers (HEAD, CONNECT: RFC 9112 section
6.3), and whether a response may be read at all yet (the capture can show it
before its request). So, as h11's connection does, the pairing side tells it:
after a :class:`RequestHead` or :class:`ResponseHead` event the framer pauses
until ``frame_request()`` or ``frame_response(method)`` (or ``refuse()``); and
``expect_responses`` says whether a request is waiting for an answer.

Who parses what:

- the start line and header block of every message are parsed by llhttp
  (through httptools): methods, targets, versions, header syntax, duplicate
  or malformed Content-Length, Transfer-Encoding rules;
- the message *framing* is done here, because it depends on things llhttp
  cannot know or httptools does not expose: a response to HEAD has no body
  whatever its Content-Length says, a response read until the connection
  closes ends at the FIN, a 2xx to CONNECT or a 101 ends HTTP on that
  connection, and pipelined messages must be cut at exact byte positions.
  Content-Length bodies are only counted (never copied), chunked bodies are
  decoded by a small state machine.

After a loss that may hide whole messages (a gap outside a body whose length
is known) or a parse error, the framer skips to the next message start
(RESYNC) and says where the loss began (:class:`Lost`).

Speed: a header block already seen is not parsed again (:class:`HeadCache`:
llhttp's result is a function of the bytes), and a segment that is exactly one
such message is handed out whole, as the bare :class:`Request` or
:class:`Response` (``FAST_PATH``, tested equal to the general path): the
pairing side takes it in one step, or gives it back (``decline_whole()``) and
the framer goes the general way.

Nothing here raises on bad input.
"""
from __future__ import annotations

import re
from collections import deque
from typing import Any, NamedTuple

import httptools

from ..redact import redact, redact_target
from .messages import DEFAULT_LIMITS, HeadCache, HttpStats, Limits, Request, Response

# Framer states. FRAMING: a head was handed out, waiting to be told how to frame its body.
HEAD, LENGTH, CHUNK_SIZE, CHUNK_DATA, CHUNK_END, TRAILERS, UNTIL_CLOSE, RESYNC, WAIT, DEAD, FRAMING = range(11)

REQUEST_START = re.compile(rb"[A-Z][A-Z_-]{0,19} [^ \r\n]+ HTTP/\d\.\d\r?\n")
RESPONSE_START = re.compile(rb"HTTP/\d\.\d \d\d\d[ \r]")
# What the start of a start line can be, when it comes in pieces after a gap.
_REQUEST_PREFIX = re.compile(rb"[A-Z][A-Z_-]{0,19}(?: [^ \r\n]*(?: (?:H(?:T(?:T(?:P(?:/(?:\d(?:\.(?:\d\r?)?)?)?)?)?)?)?)?)?)?")
_RESPONSE_PREFIX = re.compile(rb"H(?:T(?:T(?:P(?:/(?:\d(?:\.(?:\d(?: (?:\d(?:\d(?:\d)?)?)?)?)?)?)?)?)?)?)?")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?\r\n")
_CRLF2 = b"\r\n\r\n"
FAST_PATH = True  # whole messages handed out as such; the tests also run with it off


# -- events -----------------------------------------------------------------------------
# Stream offsets (``start``, ``head_end``, ``end``) count bytes of this direction;
# ``ack`` is the acknowledgement number (an offset in the other direction) of the
# segment that carried the message's first byte, -1 when unknown.

class RequestHead(NamedTuple):
    """A request's header block: pauses the framer until frame_request() or refuse()."""
    method: str
    tunnel: str  # "CONNECT" or the Upgrade header (lower case): HTTP may stop after the response
    first_ts: float
    start: int
    head_end: int
    ack: int


class ResponseHead(NamedTuple):
    """A response's header block: pauses the framer until frame_response()."""
    status: int
    first_ts: float
    start: int
    ack: int


class RequestEnd(NamedTuple):
    request: Request


class ResponseEnd(NamedTuple):
    response: Response  # interim: () here; the pairing side knows the 1xx seen before it
    end: int


class Lost(NamedTuple):
    """The current message cannot be finished; the framer skips to the next one."""
    error: str
    at: int | None  # where messages may have gone unseen from; None: no loss (a close)
    message: Request | Response | None  # what there was of it, if its head was seen


# A bare Request or Response: the segment just received (at ``seg_off``, acknowledging
# ``seg_ack``) is exactly that message, with a Content-Length body or none. Its bytes
# count as read; decline_whole() gives them back to the general path.
Event = RequestHead | ResponseHead | RequestEnd | ResponseEnd | Request | Response | Lost


class Framer:
    """One direction of a conversation: bytes in, messages out."""

    def __init__(self, is_request: bool, heads: HeadCache, stats: HttpStats, limits: Limits = DEFAULT_LIMITS,
                 tag_header: str | None = None, keep_headers: bool = False, redact: bool = True,
                 midstream: bool = False) -> None:
        self.is_request = is_request
        self.heads = heads
        self.stats = stats
        self.limits = limits
        self.tag_header = tag_header.lower().encode() if tag_header else None
        self.tag_name = tag_header or ""
        self.keep_headers = keep_headers
        # Secrets (packet.redact) replaced by marks as header blocks are parsed: no
        # output made from what comes out of here can show one.
        self.redact = redact
        # Responses are held (WAIT) while no request waits for one: set by the pairing side.
        self.expect_responses = False
        self.state = RESYNC if midstream else HEAD  # joined an open connection: wait for a message start
        self.buf = bytearray()
        self.buf_ts = 0.0
        self.broken = False  # counted once as an unparseable stream
        self.after_gap = midstream
        self.until_close = False
        # The input being framed: receive_data()'s bytes, how far they are read.
        self._data = b""
        self._pos = 0
        self._ts = 0.0
        self._whole_tried = True
        self._events: deque[Event] = deque()
        self._parsed: tuple[Any, ...] = ()  # the head handed out, until it is framed
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
        tag = self.tag_header
        if tag is not None and size == len(tag) and name.lower() == tag:
            self._tag = value
        if self._headers is not None:
            self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    # -- input --------------------------------------------------------------------------
    def receive_data(self, data: bytes, ts: float, offset: int, ack: int = -1) -> None:
        """The next bytes of this direction, at stream ``offset``, carried by a segment
        acknowledging ``ack``. Read them with next_event() until it says None."""
        self._data, self._pos, self._ts = data, 0, ts
        self.seg_off, self.seg_ack = offset, ack
        self._whole_tried = False

    def receive(self, data: bytes, ts: float, offset: int, ack: int = -1) -> Event | None:
        """receive_data() then next_event(), in one call (the common case: one segment,
        one message)."""
        self._data, self._pos, self._ts = data, 0, ts
        self.seg_off, self.seg_ack = offset, ack
        if self.state == HEAD and not self.buf and FAST_PATH and not self._events:
            self._whole_tried = True
            whole = self._whole_message(data, ts)
            if whole is not None:
                return whole
        else:
            self._whole_tried = False
        return self.next_event()

    def next_event(self) -> Event | None:
        """What the bytes received so far hold next; None when more are needed."""
        events = self._events
        if events:
            return events.popleft()
        data, pos, ts = self._data, self._pos, self._ts
        n = len(data)
        if not self._whole_tried:
            self._whole_tried = True
            if self.state == HEAD and not self.buf and FAST_PATH:
                whole = self._whole_message(data, ts)
                if whole is not None:
                    return whole
        while pos < n:
            state = self.state
            if state in (LENGTH, CHUNK_DATA):
                take = min(self.remaining, n - pos)
                pos += take
                self._body_bytes(take, ts)
            elif state == HEAD:
                pos = self._head(data, pos, ts)
            elif state == UNTIL_CLOSE:
                self.body += n - pos
                self.wire += n - pos
                pos = n
            elif state == RESYNC:
                pos = self._resync(data, pos, ts)
            elif state == WAIT:
                self._hold(data[pos:], ts, pos)
                pos = n
            elif state == DEAD:
                pos = n
            elif state == FRAMING:
                break  # the pairing side has not said how to frame the head handed out
            else:
                pos = self._chunk_line(data, pos, ts)
            if events:
                self._pos = pos
                return events.popleft()
        self._pos = pos
        return None

    def decline_whole(self) -> None:
        """The whole message just handed out is not taken: frame its bytes the general way."""
        self._pos = 0

    def _whole_message(self, data: bytes, ts: float) -> Request | Response | None:
        """The common case in one step: this segment is exactly one message with a
        Content-Length body (or none), whose header block was parsed before.

        Offers what the general path (_head -> _message_head -> _framing ->
        _complete) would frame for such a message, in one event; anything else
        returns None and takes the general path. The tests run every case both
        ways and compare."""
        end = data.find(_CRLF2)
        if end <= 0 or data[0] == 13 or data[0] == 10:
            return None
        block = data[:end + 4]
        n = len(data)
        if self.is_request:
            parsed = self.heads.requests.get(block)
            if parsed is None or isinstance(parsed, str):
                return None
            method, target, version, host, headers, tag, length, te, _, tunnel = parsed
            size = length or 0
            if te or tunnel or end + 4 + size != n:
                return None
            self._pos = n
            return Request(method, target, version, host, headers, size, n, False, ts, ts, tag)
        parsed = self.heads.responses.get(block)
        if parsed is None or isinstance(parsed, str) or self.after_gap:
            return None
        status, reason, version, headers, length, te, _ = parsed
        if te or length is None or status < 200 or status == 204 or status == 304 \
                or end + 4 + length != n:
            return None
        self._pos = n
        return Response(status, reason, version, headers, length, n, False, ts, ts, (), False)

    def _hold(self, data: bytes, ts: float, pos: int) -> None:
        if not self.buf:
            self.buf_ts = ts
            self.hold_off, self.hold_ack = self.seg_off + pos, self.seg_ack
        self.buf += data
        if len(self.buf) > self.limits.max_waiting_bytes:
            self.buf.clear()
            self.fail("waited too long for the request", ts, self.hold_off)

    def resume(self, ts: float) -> bool:
        """Frame what was held while waiting for the other direction (then next_event());
        False when it was not waiting."""
        if self.state != WAIT:
            return False
        self.state = HEAD
        if self._pos < len(self._data):  # the WAIT came from the pairing side: hold the rest first
            self._hold(self._data[self._pos:], self._ts, self._pos)
            self._pos = len(self._data)
        if self.buf:
            held, held_ts = bytes(self.buf), self.buf_ts
            self.buf.clear()
            self.receive_data(held, held_ts if held_ts else ts, self.hold_off, self.hold_ack)
        return True

    def wait(self) -> None:
        """Hold what follows until resume(): it may not be HTTP (a tunnel not answered yet)."""
        self.state = WAIT

    def stop(self) -> None:
        """Not HTTP any more on this connection."""
        self.state = DEAD
        self.buf.clear()

    def start_here(self) -> None:
        """The bytes about to be received start a message (after midstream RESYNC)."""
        if self.state == RESYNC:
            self.state = HEAD

    def _head(self, data: bytes, pos: int, ts: float) -> int:
        n = len(data)
        if not self.buf:
            # Empty lines between messages are allowed (RFC 9112 section 2.2).
            while data[pos] == 13 or data[pos] == 10:
                pos += 1
                if pos == n:
                    return n
            if not self.is_request and not self.expect_responses:
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
        if len(self.buf) > self.limits.max_header_bytes:
            self.buf.clear()
            self.fail("header block too long", ts, self.hold_off)
        return n

    def _message_head(self, block: bytes, ts: float) -> None:
        cache = self.heads.requests if self.is_request else self.heads.responses
        parsed = cache.get(block)
        if parsed is None:
            parsed = self._parse_head(block)
            if len(cache) >= self.heads.size:
                cache.clear()
            cache[block] = parsed
        if isinstance(parsed, str):
            self.fail(parsed, ts)
            return
        self.wire = len(block)
        self.body = 0
        self._parsed = parsed
        self.state = FRAMING
        if self.is_request:
            method, *_, tunnel = parsed
            self._events.append(RequestHead(method, tunnel, self.first_ts, self.msg_start, self.head_end,
                                            self.msg_ack))
        else:
            self.after_gap = False
            self._events.append(ResponseHead(parsed[0], self.first_ts, self.msg_start, self.msg_ack))

    def _parse_head(self, block: bytes) -> tuple[Any, ...] | str:
        """llhttp's reading of a header block, or why it refused it.

        A pure function of the bytes (and of the framer's settings), so its
        result is cached: at high rates most header blocks repeat (same client,
        same server, same second in Date) and are not parsed again."""
        self._url = b""
        self._reason = b""
        self._cl = None
        self._te = None
        self._host = b""
        self._tag = None
        self._upgrade = b""
        self._headers = [] if self.keep_headers else None
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
        secret = self.redact
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
                    tag = redact(self.tag_name, tag)
            tunnel = "CONNECT" if method == "CONNECT" else (
                self._upgrade.decode("latin-1").lower() or "upgrade") if parser.should_upgrade() else ""
            return (method, target, version, self._host.decode("latin-1"), headers, tag, length, te, chunked,
                    tunnel)
        return (parser.get_status_code(), self._reason.decode("latin-1"), version, headers, length, te,
                chunked)

    # -- framing, as the pairing side says --------------------------------------------------
    def frame_request(self) -> None:
        """Frame the body of the RequestHead handed out (its request is in flight)."""
        method, target, version, host, headers, tag, cl, te, chunked, _ = self._parsed
        self.head = (method, target, version, host, headers, tag)
        self.state = HEAD
        self._framing(cl, te, chunked, self._ts, until_close_ok=False)

    def frame_response(self, method: str) -> None:
        """Frame the body of the ResponseHead handed out, as an answer to ``method``
        ("" when its request is not known)."""
        status, reason, version, headers, cl, te, chunked = self._parsed
        ts = self._ts
        self.head = (status, reason, version, headers)
        self.state = HEAD
        if 100 <= status < 200 and status != 101:
            self._reset_message()  # interim: no body, the final response follows
            return
        if status == 101 or method == "HEAD" or status in (204, 304) or (
                method == "CONNECT" and 200 <= status < 300):
            self._complete(ts)
            return
        self._framing(cl, te, chunked, ts, until_close_ok=True)

    def _framing(self, cl: int | None, te: bytes, chunked: bool, ts: float, until_close_ok: bool) -> None:
        """Where the body ends (RFC 9112 section 6.3), once the no-body cases are out."""
        if te:
            if chunked:
                self.chunked = True
                self.state = CHUNK_SIZE
            elif until_close_ok:
                self.state = UNTIL_CLOSE
            else:
                self.fail("request with a Transfer-Encoding other than chunked", ts)
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

    def _chunk_line(self, data: bytes, pos: int, ts: float) -> int:
        """CHUNK_SIZE, CHUNK_END (the CRLF after chunk data) and TRAILERS: line by line."""
        n = len(data)
        nl = -1
        # Lines are short: look for LF in a small window first.
        window = data[pos:pos + 256]
        nl = window.find(b"\n")
        if nl < 0:
            if len(self.buf) + len(window) > 4096:
                self.fail("chunk framing line too long", ts)
                return n
            if n - pos > 256:  # a long run of bytes without LF: not a chunk line
                self.fail("bad chunk framing", ts)
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
                self.fail("chunk data not followed by CRLF", ts)
                return n
            self.state = CHUNK_SIZE
        elif state == CHUNK_SIZE:
            match = _CHUNK_SIZE.fullmatch(line)
            if match is None:
                self.fail("bad chunk size line", ts)
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
            self.fail("bad trailer line", ts)
            return n
        return pos

    def _resync(self, data: bytes, pos: int, ts: float) -> int:
        """After a gap or an error: wait for a segment that starts a message (its
        start line may come over several segments: held until it is whole)."""
        pattern, prefix = (REQUEST_START, _REQUEST_PREFIX) if self.is_request else (RESPONSE_START,
                                                                                    _RESPONSE_PREFIX)
        if self.buf:
            candidate = bytes(self.buf[:4096]) + data[pos:pos + 4096]
            if pattern.match(candidate):
                self.state = HEAD  # the held bytes begin the head; _head appends the rest
                self.stats.resyncs += 1
                return pos
            if len(candidate) < 4096 and prefix.fullmatch(candidate):
                self.buf += data[pos:]
                return len(data)
            self.buf.clear()
        if pattern.match(data, pos, pos + 4096):
            self.state = HEAD
            self.stats.resyncs += 1
            return pos
        if len(data) - pos < 4096 and prefix.fullmatch(data, pos):
            self._hold(data[pos:], ts, pos)
        return len(data)

    # -- message boundaries --------------------------------------------------------------
    def _complete(self, ts: float) -> None:
        """The current message ended with the byte seen at ``ts``."""
        head = self.head
        self.state = HEAD
        if head is not None:
            if self.is_request:
                self.stats.requests += 1
                self._events.append(RequestEnd(self._request(ts)))
            else:
                self.stats.responses += 1
                self._events.append(ResponseEnd(self._response(ts), self.msg_start + self.wire))
        self.head = None
        self.chunked = False

    def _request(self, ts: float) -> Request:
        method, target, version, host, headers, tag = self.head  # type: ignore[misc]
        return Request(method, target, version, host, headers, self.body, self.wire, self.chunked,
                       self.first_ts, ts, tag)

    def _response(self, ts: float) -> Response:
        status, reason, version, headers = self.head  # type: ignore[misc]
        return Response(status, reason, version, headers, self.body, self.wire, self.chunked,
                        self.first_ts, ts, (), self.until_close)

    def _body_bytes(self, size: int, ts: float) -> None:
        """``size`` bytes of a Content-Length body or a chunk (LENGTH, CHUNK_DATA), at most
        what remains of it: counted, never copied."""
        self.remaining -= size
        self.body += size
        self.wire += size
        if not self.remaining:
            if self.state == LENGTH:
                self._complete(ts)
            else:
                self.state = CHUNK_END

    def gap(self, size: int, ts: float, offset: int) -> None:
        """``size`` bytes the capture missed, at stream ``offset`` (then next_event())."""
        state = self.state
        if state in (LENGTH, CHUNK_DATA) and size <= self.remaining:
            self._body_bytes(size, ts)  # inside a body of known length: only counted
            return
        if state == UNTIL_CLOSE:
            self.body += size
            self.wire += size
            return
        if state in (DEAD, RESYNC):
            self.buf.clear()  # a start line held in pieces: no longer whole
            return
        at = self.head_end if self.head is not None else self.hold_off if self.buf else offset
        self._lost("capture gap", ts, at)

    def end(self, ts: float) -> None:
        """The sender closed its half of the connection (FIN; then next_event())."""
        if self.state == UNTIL_CLOSE:
            self.state = HEAD
            self._complete_until_close(ts)
        elif self.state == WAIT and self.buf and not self.is_request:
            self.stats.orphan_responses += 1
        elif self.state not in (HEAD, RESYNC, DEAD, WAIT) or self.buf:
            self._lost("connection closed mid-message", ts, loss=False)
        self.buf.clear()
        self.state = DEAD

    def interrupted(self, error: str, ts: float) -> None:
        """The connection is gone (RST, idle, end of capture) while this side was
        mid-message (then next_event())."""
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
        where: int | None = None
        if loss and self.state not in (RESYNC, DEAD):
            # From here to the next message start, messages may have gone unseen:
            # pairing must prove itself again (pairing.HttpConversation._pair_after_loss).
            where = at if at is not None else (self.head_end if self.head is not None
                                               else self.hold_off if self.buf else self.msg_start)
        message: Request | Response | None = None
        if self.head is not None:
            message = self._request(ts) if self.is_request else self._response(ts)
        self._events.append(Lost(error, where, message))
        self.buf.clear()
        self._reset_message()
        self.state = RESYNC
        self.after_gap = True

    def refuse(self, error: str) -> None:
        """The pairing side cannot take the head handed out (then next_event())."""
        self.fail(error, self._ts)

    def fail(self, error: str, ts: float, at: int | None = None) -> None:
        """The current message cannot be framed: counted, reported, skipped."""
        self.stats.parse_errors += 1
        self.stats.errors[error] = self.stats.errors.get(error, 0) + 1
        if not self.broken:
            self.broken = True
            self.stats.unparseable_streams += 1
        self._lost(error, ts, at)
