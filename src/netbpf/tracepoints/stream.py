"""The streaming loop both commands share: print events as they come, stop cleanly.

The BPF programs write events without waking the reader, which reads the
ring every POLL_S: a wake-up per event cost a storm of drops more than the
event itself. Ctrl-C and SIGTERM do not raise in the middle of a write here: they set a
flag and wake the reader. The programs are then detached, and what the ring
still holds is printed, so at exit every event the kernel produced was shown
or counted as lost (or left out by -c).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Protocol, TextIO

from .. import cliutil
from ..run import StopSignals

# How often the reader looks at the ring: an event shows up at most this late.
POLL_S = 0.02


class Source(Protocol):
    def poll(self, timeout: float | None) -> list[bytes]: ...
    def read(self) -> list[bytes]: ...
    def wake(self) -> None: ...
    def detach(self) -> None: ...


def writer(out: TextIO) -> Callable[[str], None]:
    """Write text whole, even when a signal interrupts a write to a full pipe.

    Python's buffered writer can drop the rest of a write that a signal cut
    short (seen here: 128296 of 132392 bytes written, the rest gone); os.write
    reports how much went, and the loop sends the rest.
    """
    try:
        fd = out.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (a test's StringIO)
        def write_text(text: str) -> None:
            out.write(text)

        return write_text
    out.flush()

    def write(text: str) -> None:
        view = memoryview(text.encode())
        while view:
            view = view[os.write(fd, view):]

    return write


def run(source: Source, render: Callable[[bytes], str], out: TextIO, limit: int,
        deadline: cliutil.Deadline, shown: list[int], hide: Callable[[bytes], bool] | None = None) -> None:
    """Print rendered events until a signal, the deadline or ``limit`` events; count them in shown[0].

    Events for which ``hide`` is true are neither printed nor counted against ``limit``
    (``hide`` counts them itself, for the summary)."""
    put = writer(out)

    def write(batch: list[bytes]) -> bool:
        """False once the limit is reached."""
        if hide is not None:
            batch = [raw for raw in batch if not hide(raw)]
        if limit and shown[0] + len(batch) > limit:
            batch = batch[:limit - shown[0]]
        if batch:
            put("\n".join(map(render, batch)) + "\n")
            shown[0] += len(batch)
        return not (limit and shown[0] >= limit)

    with StopSignals(source.wake) as stop:
        for timeout in stop.rounds(deadline, POLL_S):
            # The programs do not wake the reader (BPF_RB_NO_WAKEUP): it looks every POLL_S.
            if not write(source.poll(timeout)):
                return
        source.detach()  # no new events; the ring's content is what is left
        while batch := source.read():
            if not write(batch):
                return
