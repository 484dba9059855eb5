"""HTTP/1.x pairing: which response answers which request, on one TCP connection.

One :class:`HttpConversation` per TCP connection takes the bytes of each
direction (it is a :class:`~netbpf.packet.tcp.StreamConsumer`), gives them to
the :class:`~.framing.Framer` of that direction, and reads back its events:
requests open slots, responses answer them, and an :class:`Exchange` per
request goes to ``emit`` (given at construction): the request, its final
response, and an error when the pair could not be completed (connection
closed first, capture gap). It tells each framer what only pairing knows:
how to frame a response (the method of its request) and whether a request
waits for one.

Responses answer requests in order (pipelining included); 1xx responses are
interim and kept with the final one. A response whose ACK does not cover its
would-be request's head was sent before the server had that request: it
answers a request the capture lost (or none), and is counted as a response
without its request. After a loss that may hide whole messages, nothing is
paired that TCP's sequence and acknowledgement numbers do not prove
(``HttpConversation._pair_after_loss``): the rest is reported as "response
lost in a capture gap" or "... or not identified".

The connection's first bytes tell whether it speaks HTTP/1.x at all
(``messages.sniff``). No I/O; nothing here raises on bad input.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable

from .framing import (
    REQUEST_START,
    RESPONSE_START,
    WAIT,
    Event,
    Framer,
    Lost,
    RequestEnd,
    RequestHead,
    ResponseEnd,
    ResponseHead,
)
from .messages import (
    _PREFACE,
    DEFAULT_LIMITS,
    H2C_UPGRADE,
    Exchange,
    HeadCache,
    HttpStats,
    Limits,
    Request,
    Response,
    sniff,
)


class Slot:
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



class HttpConversation:
    """The HTTP exchanges of one TCP connection (a StreamConsumer)."""

    def __init__(self, emit: Callable[[Exchange], None], client_direction: int | None = None,
                 tag_header: str | None = None, keep_headers: bool = False,
                 stats: HttpStats | None = None, limits: Limits = DEFAULT_LIMITS,
                 midstream: bool = False, heads: HeadCache | None = None, redact: bool = True) -> None:
        self.emit = emit
        self.heads = heads if heads is not None else HeadCache(limits.header_cache)
        self.midstream = midstream  # joined an open connection: wait for message starts
        self.tag_header = tag_header
        self.keep_headers = keep_headers
        self.redact = redact  # secrets replaced by marks as header blocks are parsed (framing)
        self.stats = stats if stats is not None else HttpStats()
        self.limits = limits
        self.slots: deque[Slot] = deque()
        self.unanswered = 0  # slots waiting for their final response
        self.offsets = [0, 0]  # bytes of each direction delivered or missed so far
        # Pairing after loss (see _pair_after_loss). Synced: every response seen so
        # far is paired or proven unpaired, and no message went unseen since.
        self.synced = not midstream
        self.pipelined = False  # the client was seen sending a request before the last answer
        self.client_holes: list[list[int]] = [[0, -1]] if midstream else []  # [start, end) offsets
        self.server_holes: list[list[int]] = [[0, -1]] if midstream else []  # end -1: still open
        self.unidentified: list[Slot] = []  # responses since the loss, their request not proven yet
        self.previous: Slot | None = None  # the last request seen
        # The connection's first bytes are held until sniff() can tell what it speaks.
        self.protocol = ""  # not HTTP/1.x: what it is instead
        self.sniff_dir = -1 if midstream else None  # None: nothing seen yet; -1: decided
        self.sniffed = bytearray()
        self.sniff_ts = 0.0
        self.sniff_ack = -1
        self.last_answer: Slot | None = None  # the last final response seen (or its placeholder)
        self.resp_floor = -1  # where the last response paired (proven) ended in the server's stream
        self.client_direction = client_direction
        self.framers: list[Framer] | None = None
        self.current: list[Slot | None] = [None, None]  # by direction: the slot of the message framed
        if client_direction is not None:
            self._set_client(client_direction)
        self.closed = False

    def _set_client(self, direction: int) -> None:
        self.client_direction = direction
        self.framers = [Framer(d == direction, self.heads, self.stats, self.limits, self.tag_header,
                               self.keep_headers, self.redact, self.midstream) for d in (0, 1)]

    # -- StreamConsumer ---------------------------------------------------------------------
    def on_data(self, direction: int, data: bytes, ts: float, ack: int = -1) -> None:
        if type(data) is not bytes:
            data = bytes(data)
        offsets = self.offsets
        offset = offsets[direction]
        offsets[direction] = offset + len(data)
        framers = self.framers
        if self.sniff_dir == -1 and framers is not None and not self.protocol:
            # The common case, kept short: what the connection speaks was told long ago.
            framer = framers[direction]
            event = framer.receive(data, ts, offset, ack)
            if event is None:
                return
            kind = type(event)
            # One segment, one message, plainly paired: nothing more in these bytes.
            if kind is Response:
                if self._whole_response(framer, event):  # type: ignore[arg-type]
                    return
            elif kind is Request:
                if self._whole_request(framer, event):  # type: ignore[arg-type]
                    return
            else:
                self._handle(direction, framer, event)
            event = framer.next_event()
            while event is not None:
                self._handle(direction, framer, event)
                event = framer.next_event()
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
        if self.framers is None:
            # Neither SYN nor port told who the client is: the first bytes do.
            head = data[:4096]
            if REQUEST_START.match(head):
                self._set_client(direction)
            elif RESPONSE_START.match(head):
                self._set_client(1 - direction)
            else:
                return
            assert self.framers is not None
            self.framers[direction].start_here()  # these bytes start a message
        framer = self.framers[direction]
        event = framer.receive(data, ts, offset, ack)
        while event is not None:
            self._handle(direction, framer, event)
            event = framer.next_event()

    def on_gap(self, direction: int, size: int, ts: float) -> None:
        self._release_sniffed()
        if self.framers is not None and not self.protocol:
            self.framers[direction].gap(size, ts, self.offsets[direction])
            self._drain(direction)
        self.offsets[direction] += size

    def on_end(self, direction: int, ts: float) -> None:
        self._release_sniffed()
        if self.framers is not None and not self.protocol:
            self.framers[direction].end(ts)
            self._drain(direction)

    def on_close(self, reason: str, ts: float) -> None:
        if self.closed:
            return
        error = {"reset": "connection reset", "fin": "no response", "idle": "connection idle",
                 "shutdown": "capture ended"}.get(reason, f"connection {reason}")
        self._release_sniffed()
        if self.framers is not None:
            for direction, framer in enumerate(self.framers):
                framer.interrupted(error, ts)
                self._drain(direction)
        self.closed = True
        unproven = error if self.synced else "response lost in a capture gap or not identified"
        self.stats.orphan_responses += len(self.unidentified)
        self.unidentified.clear()
        while self.slots:
            slot = self.slots.popleft()
            if slot.request is not None:
                self._emit(slot, slot.error or (error if slot.answered else unproven))
        self.framers = None
        self.current = [None, None]
        self.emit = _closed  # (and no reference kept to the caller's callback)

    # -- the framers' events ------------------------------------------------------------------
    def _drain(self, direction: int) -> None:
        framer = self.framers[direction]  # type: ignore[index]
        event = framer.next_event()
        while event is not None:
            self._handle(direction, framer, event)
            event = framer.next_event()

    def _handle(self, direction: int, framer: Framer, event: Event) -> None:
        kind = type(event)
        if kind is Request:
            self._whole_request(framer, event)  # type: ignore[arg-type]
        elif kind is Response:
            self._whole_response(framer, event)  # type: ignore[arg-type]
        elif kind is RequestHead:
            method, tunnel, first_ts, start, head_end, ack = event  # type: ignore[misc]
            slot = self._open_slot(method, first_ts, start, head_end, ack)
            if slot is None:
                framer.refuse("too many pipelined requests")
                return
            slot.tunnel = tunnel
            self.current[direction] = slot
            framer.frame_request()
        elif kind is ResponseHead:
            self._response_head(direction, framer, event)  # type: ignore[arg-type]
        elif kind is RequestEnd:
            slot = self.current[direction]
            self.current[direction] = None
            if slot is not None:
                slot.request = event.request  # type: ignore[union-attr]
                if slot.tunnel and not slot.answered:
                    framer.wait()  # what follows may not be HTTP: wait for the answer
                self._flush()
        elif kind is ResponseEnd:
            slot = self.current[direction]
            self.current[direction] = None
            if slot is not None:
                response, slot.resp_end = event  # type: ignore[misc]
                slot.response = _with_interim(response, slot)
                self._answered(slot)
                self._response_done(slot, response.last_ts)
        else:
            self._lost(direction, framer, event)  # type: ignore[arg-type]

    def _response_head(self, direction: int, framer: Framer, head: ResponseHead) -> None:
        # None: a response no request in flight can have caused (the server had
        # not received one when it sent it): its own request is one the capture
        # missed, or there was none. It is skipped, framing and all.
        status = head.status
        slot = self._slot_for_response(head, status)
        if not 100 <= status < 200 or status == 101:
            self.last_answer = slot
        if slot is not None:
            slot.resp_start, slot.resp_ack = head.start, head.ack
            request = slot.request
            if request is not None and not slot.placeholder and head.ack > slot.start + request.wire_size:
                # The server had more than this request when it began the answer:
                # the client sent the next one without waiting.
                self.pipelined = True
        if 100 <= status < 200 and status != 101:
            if slot is not None:
                slot.interim.append(status)
            self.current[direction] = None  # interim: the final response follows
        else:
            self.current[direction] = slot
        framer.frame_response(slot.method if slot else "")

    def _lost(self, direction: int, framer: Framer, lost: Lost) -> None:
        """What there was of a message that cannot be finished."""
        slot = self.current[direction]
        self.current[direction] = None
        if lost.at is not None:
            # From here to the next message start, messages may have gone unseen:
            # pairing must prove itself again (_pair_after_loss).
            self._loss(framer.is_request, lost.at)
        message = lost.message
        if slot is not None and message is not None:
            slot.error = slot.error or lost.error
            if isinstance(message, Response):
                slot.response = _with_interim(message, slot)
                self._answered(slot)
                self._response_done(slot, message.last_ts)
            else:
                slot.request = message
                self._flush()

    def _whole_request(self, framer: Framer, request: Request) -> bool:
        """A segment that is exactly one request: paired in one step where a slot is free
        (True; else the framer goes the general way)."""
        if len(self.slots) >= self.limits.max_in_flight:
            framer.decline_whole()
            return False  # the general path refuses it, counted
        start = framer.seg_off
        slot = self._open_slot(request.method, request.first_ts, start,
                               start + request.wire_size - request.body_size, framer.seg_ack)
        assert slot is not None
        slot.request = request
        self.stats.requests += 1
        if slot.answered:
            self._flush()
        return True

    def _whole_response(self, framer: Framer, response: Response) -> bool:
        """A segment that is exactly one response, where it plainly answers the oldest
        request not answered (True; else the general path decides)."""
        slot = None
        if self.synced:
            for candidate in self.slots:  # the oldest request not answered yet
                if not candidate.answered:
                    slot = candidate
                    break
        start, ack = framer.seg_off, framer.seg_ack
        if slot is None or (slot.head_end > ack if ack >= 0 else slot.first_ts > response.first_ts) \
                or slot.tunnel or slot.method == "HEAD" or slot.method == "CONNECT":
            framer.decline_whole()
            return False
        slot.resp_start, slot.resp_end, slot.resp_ack = start, start + response.wire_size, ack
        last = self.last_answer
        if last is not None and last.resp_end == start and last.resp_ack == ack >= 0:
            self.pipelined = True  # as in _slot_for_response
        self.last_answer = slot
        request = slot.request
        if request is not None and ack > slot.start + request.wire_size:
            self.pipelined = True  # as in _response_head
        if len(self.slots) > 1:
            self._check_pipelining(slot)  # (only a later request can tell)
        elif slot.resp_end > self.resp_floor:
            self.resp_floor = slot.resp_end
        slot.response = response._replace(interim=tuple(slot.interim)) if slot.interim else response
        slot.answered = True
        self.unanswered -= 1
        if not self.unanswered:
            framer.expect_responses = False
        self.stats.responses += 1
        self._flush()
        return True

    # -- pairing --------------------------------------------------------------------------
    def _open_slot(self, method: str, first_ts: float, start: int = -1, head_end: int = -1,
                   ack: int = -1) -> Slot | None:
        if len(self.slots) >= self.limits.max_in_flight:
            return None
        slot = Slot(method, first_ts, start, head_end, ack)
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
        server_side = 1 - self.client_direction  # type: ignore[operator]
        server = self.framers[server_side]  # type: ignore[index]
        server.expect_responses = True
        if server.state == WAIT and server.resume(first_ts):
            self._drain(server_side)  # its answer came first: frame it now
        return slot

    def _answered(self, slot: Slot) -> None:
        if not slot.answered and not slot.placeholder:
            slot.answered = True
            self.unanswered -= 1
            if not self.unanswered and self.framers is not None:
                # No request waits: the server's framer holds what comes until one does.
                self.framers[1 - self.client_direction].expect_responses = False  # type: ignore[operator]

    def _check_pipelining(self, slot: Slot) -> None:
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

    def _slot_for_response(self, head: ResponseHead, status: int) -> Slot | None:
        """The request a response answers, a placeholder while that is not proven,
        or None (counted as a response without its request)."""
        holes = self.server_holes
        if holes and holes[-1][1] < 0:
            holes[-1][1] = head.start  # the responses lost end where this one starts
        interim = 100 <= status < 200 and status != 101
        if not interim:
            last = self.last_answer
            if last is not None and last.resp_end == head.start and last.resp_ack == head.ack >= 0:
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
                    ack = head.ack
                    if slot.head_end > ack if ack >= 0 and slot.head_end >= 0 else slot.first_ts > head.first_ts:
                        break
                    return slot
            if not interim:
                self.stats.orphan_responses += 1
            return None
        if interim:
            return None  # which request it is for is not known: the final response will tell
        return self._pair_after_loss(head, open_slots)

    def _pair_after_loss(self, head: ResponseHead, open_slots: list[Slot]) -> Slot | None:
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
        start, ack = head.start, head.ack
        if ack < 0:
            return self._placeholder(head, open_slots, True)
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
        return self._placeholder(head, candidates, not known)

    def _by_client_ack(self, start: int, ack: int, open_slots: list[Slot]) -> Slot | None:
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

    def _placeholder(self, head: ResponseHead, candidates: list[Slot], unknown: bool) -> Slot:
        slot = Slot("", head.first_ts, ack=head.ack)
        slot.resp_ack = head.ack
        slot.placeholder = True
        slot.resp_start = head.start
        # Its body is framed as if its request were not HEAD or CONNECT: where that
        # may be wrong, the bytes it takes may hide responses (_response_done).
        slot.uncertain = unknown or any(s.method in ("HEAD", "CONNECT") or s.tunnel for s in candidates)
        self.unidentified.append(slot)
        return slot

    def _adopt(self, slot: Slot, placeholder: Slot) -> None:
        """A response kept as a placeholder is proven to answer ``slot``."""
        slot.response = placeholder.response
        slot.resp_start, slot.resp_end = placeholder.resp_start, placeholder.resp_end
        slot.error = slot.error or placeholder.error or ("" if placeholder.response else "capture gap")
        self.resp_floor = max(self.resp_floor, slot.resp_end)
        self._answered(slot)


    def _response_done(self, slot: Slot, ts: float) -> None:
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
        elif slot.tunnel and self.framers is not None:
            client = self.client_direction
            if self.framers[client].resume(ts):  # type: ignore[index]
                self._drain(client)  # type: ignore[arg-type]
        self._flush()

    def _not_http(self) -> None:
        """Not HTTP any more on this connection."""
        assert self.framers is not None
        for framer in self.framers:
            framer.stop()

    def _not_http1(self, protocol: str) -> None:
        """This connection speaks another protocol (from its start, or after an upgrade)."""
        self.protocol = protocol
        self.stats.not_http1[protocol] = self.stats.not_http1.get(protocol, 0) + 1
        if self.framers is not None:
            self._not_http()

    def _flush(self) -> None:
        """Emit, in order, the exchanges whose request and response are both done."""
        slots = self.slots
        while slots and slots[0].answered and slots[0].request is not None:
            slot = slots.popleft()
            self._emit(slot, slot.error)

    def _emit(self, slot: Slot, error: str) -> None:
        assert slot.request is not None
        self.stats.exchanges += 1
        if error:
            self.stats.incomplete += 1
        self.emit(Exchange(slot.request, slot.response, error))


def _with_interim(response: Response, slot: Slot) -> Response:
    """The response with the 1xx responses seen before it (the framer does not know them)."""
    return response._replace(interim=tuple(slot.interim)) if slot.interim else response


def _closed(exchange: Exchange) -> None:
    raise AssertionError("exchange emitted after the connection was closed")
