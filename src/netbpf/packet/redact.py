"""Secrets in HTTP headers and targets, replaced by marks that tell values apart.

A secret is the value of Authorization, Proxy-Authorization, Cookie, Set-Cookie,
or of any header whose name contains token, secret, key, password, passwd,
credential or session; in a request target, the value of a query parameter with
such a name. It is replaced by ``<redacted #1a2b3c4d>``: a keyed hash (BLAKE2b,
with a key drawn at random when the process starts) of the value, so that equal
values give equal marks within one run (per-tag tables still group them) while
the mark cannot be reversed by hashing guesses (an unkeyed short hash of a
password or of ``user:password`` could be). What is not secret stays: the
scheme of Authorization (``Bearer <redacted #...>``), the names of cookies and
the attributes of Set-Cookie.
"""
from __future__ import annotations

import hashlib
import os
import re

SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
SECRET_WORDS = ("token", "secret", "key", "password", "passwd", "credential", "session")
MARK = "<redacted #"
_KEY = os.urandom(16)
_QUERY_SECRET = re.compile(r"([?&;][^=&;#]*(?:" + "|".join(SECRET_WORDS) + r")[^=&;#]*=)([^&;#]*)",
                           re.IGNORECASE)


def is_secret(name: str) -> bool:
    lname = name.lower()
    return lname in SECRET_HEADERS or any(word in lname for word in SECRET_WORDS)


def mark(value: str) -> str:
    digest = hashlib.blake2b(value.encode("utf-8", "surrogateescape"), key=_KEY, digest_size=4)
    return f"{MARK}{digest.hexdigest()}>"


def redact(name: str, value: str) -> str:
    """The value of header ``name`` as it may be shown (unchanged if not a secret)."""
    lname = name.lower()
    if not is_secret(lname) or MARK in value:
        return value
    if lname in ("authorization", "proxy-authorization"):
        scheme, space, credentials = value.partition(" ")
        return f"{scheme} {mark(credentials)}" if space and credentials else mark(value)
    if lname == "cookie":
        return "; ".join(_cookie(pair.strip()) for pair in value.split(";"))
    if lname == "set-cookie":
        first, semicolon, attributes = value.partition(";")
        return _cookie(first.strip()) + semicolon + attributes
    return mark(value)


def _cookie(pair: str) -> str:
    name, equals, value = pair.partition("=")
    return f"{name}={mark(value)}" if equals else mark(pair)


def redact_target(target: str) -> str:
    """A request target with the values of secret-named query parameters redacted."""
    if "?" not in target:
        return target
    return _QUERY_SECRET.sub(lambda m: m.group(1) + mark(m.group(2)), target)
