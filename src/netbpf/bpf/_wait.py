"""Waiting on a reader's file descriptors in a way that another thread can end.

A perf buffer and a ring buffer both block in epoll until the kernel has
records; ``close()`` from another thread (a signal handler's stop, a tool's
teardown) must make that wait return at once. A pipe in the same epoll set,
written to on close, does it without a timeout loop.
"""
from __future__ import annotations

import os
import select
import threading
from collections.abc import Callable


class Waiter:
    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self._closed = threading.Event()

    def watch(self, fd: int) -> None:
        """Wake ``wait()`` when ``fd`` becomes readable."""
        self._epoll.register(fd, select.EPOLLIN)

    def wait(self, timeout: float | None = None) -> None:
        """Up to ``timeout`` seconds (None: forever) for a watched fd, or for ``close()``."""
        self._epoll.poll(-1 if timeout is None else timeout)

    def read_or_wait(self, read: Callable[[], list[bytes]], timeout: float | None) -> list[bytes]:
        """``read()``; if it found nothing and nobody has closed, wait (see ``wait``) and read again."""
        batch = read()
        if batch or self._closed.is_set():
            return batch
        self.wait(timeout)
        return read()

    def close(self) -> None:
        """Make a thread blocked in ``wait()`` return, and every later one at once."""
        if self._closed.is_set():
            return
        self._closed.set()
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def release(self) -> None:
        """Close and free the descriptors; a second call does nothing."""
        self.close()
        self._epoll.close()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
