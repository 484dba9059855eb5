"""``netbpf http --process``: the local process and container on each side of a transaction.

Each side is looked up once per connection (``netbpf.attrib.connections``:
the connection's addresses -> its socket -> the process that made or accepted
it), in every network namespace of this host: the gateway's worker, a client
such as curl, a backend in a local namespace. A side that is not a socket of
this host says "no local socket"; nothing is guessed. The text columns and
JSON objects of one connection are formatted once and reused for its
transactions.
"""
from __future__ import annotations

import json
from typing import Any

from ...attrib.connections import ConnectionOwners, Sides, side_fields, side_text
from ...attrib.tracker import Tracker

HEADER = "CLIENT PROCESS|BACKEND PROCESS"
SIDE_WIDTH = 32


class HttpOwners:
    """Starts the attribution tracker (before the first packet: a process made meanwhile is
    known); :meth:`close` detaches it."""

    def __init__(self) -> None:
        self.tracker = Tracker(connections=True).start()
        try:
            self.owners = ConnectionOwners(self.tracker)
        except BaseException:
            self.tracker.close()
            raise
        self._formatted: dict[tuple[str, str], tuple[Sides, str, str]] = {}

    def sides(self, client: str, backend: str) -> Sides:
        return self.owners.sides_of(client, backend)

    def _format(self, client: str, backend: str) -> tuple[str, str]:
        sides = self.owners.sides_of(client, backend)
        key = (client, backend)
        done = self._formatted.get(key)
        if done is None or done[0] is not sides:  # a new answer (the cache's lifetime ended)
            if len(self._formatted) > 4096:
                self._formatted.clear()
            text = f"{side_text(sides.client):<{SIDE_WIDTH}}  {side_text(sides.server)}"
            js = (f', "client_process": {json.dumps(side_fields(sides.client))}'
                  f', "backend_process": {json.dumps(side_fields(sides.server))}')
            done = self._formatted[key] = (sides, text, js)
        return done[1], done[2]

    @staticmethod
    def header(line: str) -> str:
        client, backend = HEADER.split("|")
        return f"{line}  {client:<{SIDE_WIDTH}}  {backend}"

    def text(self, line: str, client: str, backend: str) -> str:
        """The transaction's text line with the two sides' columns after it (before -H's headers)."""
        first, nl, rest = line.partition("\n")
        return f"{first}  {self._format(client, backend)[0]}{nl}{rest}"

    def json(self, obj: str, client: str, backend: str) -> str:
        """The transaction's JSON object with ``client_process`` and ``backend_process``."""
        return obj[:-1] + self._format(client, backend)[1] + "}"

    def fields(self, client: str, backend: str) -> dict[str, Any]:
        sides = self.owners.sides_of(client, backend)
        return {"client_process": side_fields(sides.client), "backend_process": side_fields(sides.server)}

    def close(self) -> None:
        self.tracker.close()
