"""A tool's kernel side as one straight line, and the one way a tool waits.

The shape of libbpf-bootstrap's ``main()``: open the object, set its
read-only data, load it, attach, set up the readers, run until told to stop,
then undo everything in reverse. Each step hands what it made to a ``Run``
(an ExitStack), so a failure half way (a verifier rejection, a busy hook,
Ctrl-C between two steps) undoes exactly what was made, last first::

    run = Run()
    with run.starting():                       # a failure here undoes what was made so far
        obj = run.open(object_path(__file__, "x.bpf.o"))
        obj.set_rodata(...)
        obj.load()
        run.attach(trace.attach_section(obj.program("p")))
        ring = run.reader(RingBuffer(obj.map("events"), obj.map("events_lost")))
    with StopSignals(ring.close) as stop:
        for timeout in stop.rounds(cliutil.Deadline(args.duration), POLL_S):
            ...                                # read, print; ``break`` when done
    run.close()                                # readers, links, then the object

``StopSignals`` is the one stop-signal handler: SIGINT and SIGTERM end the
loop between two rounds (never in the middle of a write, so what was shown is
counted exactly) and wake a reader blocked in the kernel.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

from .bpf import BpfObject
from .cliutil import Deadline
from .errors import NetbpfError


class _Closes(Protocol):
    def close(self) -> None: ...


class _Releases(Protocol):
    def release(self) -> None: ...


C = TypeVar("C", bound=_Closes)
R = TypeVar("R", bound=_Releases)
T = TypeVar("T")


class Run:
    """What one tool made in the kernel and in this process; ``close()`` undoes it in reverse."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()

    def open(self, path: str | Path) -> BpfObject:
        """bpf_object__open: closing it unloads its programs and maps."""
        obj = BpfObject.open(path)
        self._stack.callback(obj.close)
        return obj

    def attach(self, attachment: C, quiet: bool = False) -> C:
        """An attachment (or any closable): detached at close (``Attachment.close`` is idempotent,
        so a tool may detach early and keep reading its maps). ``quiet``: a detach the kernel
        refuses is no error (the hook went first: a deleted cgroup takes its programs along)."""
        if quiet:
            self._stack.callback(_close_quietly, attachment)
        else:
            self._stack.callback(attachment.close)
        return attachment

    def reader(self, reader: R) -> R:
        """A ring or perf buffer reader: its mappings and fds released at close."""
        self._stack.callback(reader.release)
        return reader

    def enter(self, context: contextlib.AbstractContextManager[T]) -> T:
        """Anything else with a context: entered now, exited at close."""
        return self._stack.enter_context(context)

    def callback(self, undo: Callable[..., Any], *args: Any) -> None:
        """One more undo step, run at close in reverse order with the others."""
        self._stack.callback(undo, *args)

    @contextlib.contextmanager
    def starting(self) -> Iterator[Run]:
        """Set-up: if any step fails (or is interrupted), what was made so far is undone."""
        try:
            yield self
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close_quietly(thing: _Closes) -> None:
    try:
        thing.close()
    except NetbpfError:
        pass


class StopSignals:
    """While active, SIGINT and SIGTERM set ``stopped`` and call ``wake`` (to unblock a
    reader waiting in the kernel). With ``second_interrupts``, a second signal raises
    KeyboardInterrupt at once (for loops whose rounds can take long)."""

    def __init__(self, wake: Callable[[], None] | None = None, second_interrupts: bool = False) -> None:
        self.stopped = threading.Event()
        self._wake = wake
        self._second_interrupts = second_interrupts
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self._second_interrupts and self.stopped.is_set():
            raise KeyboardInterrupt
        self.stopped.set()
        if self._wake is not None:
            self._wake()

    def rounds(self, deadline: Deadline, interval: float, sleep: bool = False) -> Iterator[float]:
        """The run loop: yields how long a round may wait (at most ``interval``), until a
        signal or the deadline (--duration); the body ``break``s for its own reasons (-c,
        a deleted interface). With ``sleep``, each round first waits that long itself (a
        signal cuts the wait short)."""
        while not self.stopped.is_set() and not deadline.expired():
            timeout = deadline.remaining(interval)
            if sleep and (self.stopped.wait(timeout) or deadline.expired()):
                return
            yield timeout

    def __enter__(self) -> StopSignals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
