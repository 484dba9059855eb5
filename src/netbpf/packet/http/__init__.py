"""HTTP/1.x on reassembled TCP streams: requests paired with their responses.

    messages.py  what comes out: Request, Response, Exchange; limits, statistics,
                 the cache of parsed header blocks, sniff() for other protocols
    framing.py   one direction: bytes in (receive_data), events out (next_event):
                 llhttp for header blocks, body framing, chunked decoding, resync
    pairing.py   one connection (a StreamConsumer): feeds both framers, pairs
                 requests and responses, proven by TCP's seq/ack after a loss,
                 and emits an Exchange per request

No I/O; nothing here raises on bad input.
"""
from __future__ import annotations

from .messages import (
    H2_PREFACE,
    H2C_UPGRADE,
    SECRET_HEADERS,
    TLS_HANDSHAKE,
    Exchange,
    HeadCache,
    Headers,
    HttpStats,
    Limits,
    Request,
    Response,
    sniff,
)
from .pairing import HttpConversation

__all__ = ["H2C_UPGRADE", "H2_PREFACE", "SECRET_HEADERS", "TLS_HANDSHAKE", "Exchange", "HeadCache", "Headers",
           "HttpConversation", "HttpStats", "Limits", "Request", "Response", "sniff"]
