"""Where captured records go: a pcap/pcapng file (as they are), tcpdump lines, JSON lines.

The ring hands out spans of whole records, per CPU. A file sink writes them
as they are (one ``write()`` per span); only ``-c`` makes it count records.
Text and JSON sinks decode every packet, and sort each batch by time stamp,
since the CPUs' blocks interleave.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from ...errors import OutputError
from ...packet import pcap

if TYPE_CHECKING:
    from ...packet.tcpdump import TcpdumpPrinter
    from .tcpdump_lines import TcpdumpLines


def write_all(fd: int, span: memoryview) -> None:
    while span:
        written = os.write(fd, span)
        span = span[written:]


class Sink:
    """Receives spans during a drain; ``flush()`` after it. ``done`` once -c is reached."""

    def __init__(self, count: int | None) -> None:
        self.limit = count
        self.written = 0  # packets handed to the output

    @property
    def done(self) -> bool:
        return self.limit is not None and self.written >= self.limit

    def write(self, span: memoryview) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        pass

    @property
    def counts_packets(self) -> bool:
        """Whether ``written`` is exact (else it comes from the kernel's counters)."""
        return True


class FileSink(Sink):
    """pcap or pcapng records, exactly as the kernel wrote them."""

    def __init__(self, fd: int, header: bytes, pcapng: bool, count: int | None, name: str = "-w -") -> None:
        super().__init__(count)
        self.fd, self.pcapng, self.name = fd, pcapng, name
        self.failed = False  # a write failed: the file ends there, nothing more goes in
        self._started = False
        self._write(memoryview(header))
        self._started = True

    def _write(self, span: memoryview) -> None:
        if self.failed:
            return
        try:
            write_all(self.fd, span)
        except OSError as e:
            self.failed = True
            raise OutputError(self.name, e, "capture stopped, the file is cut short" if self._started else "") from e

    @property
    def counts_packets(self) -> bool:
        return self.limit is not None

    def write(self, span: memoryview) -> None:
        if self.limit is not None:
            if self.done:
                return
            n, size = pcap.count_records(span, self.pcapng, self.limit - self.written)
            self.written += n
            span = span[:size]
        self._write(span)


class DecodingSink(Sink):
    """Decodes each record (pcap, little-endian, as the kernel wrote it)."""

    def __init__(self, nano_records: bool, pcapng: bool, count: int | None) -> None:
        super().__init__(count)
        self._walk = pcap.pcapng_records if pcapng else pcap.pcap_records
        self._nano = nano_records
        self._batch: list[tuple[int, bytes, int]] = []

    def write(self, span: memoryview) -> None:
        # The span's block is given back to the kernel after this call: copy.
        for ts_ns, offset, caplen, length in self._walk(span, self._nano):
            self._batch.append((ts_ns, bytes(span[offset:offset + caplen]), length))

    def flush(self) -> None:
        batch, self._batch = self._batch, []
        batch.sort(key=lambda r: r[0])
        for i, (ts_ns, data, length) in enumerate(batch):
            if self.done:
                break
            self.written += 1
            try:
                self.emit(ts_ns, data, length)
            except BaseException:
                # Ctrl-C while the output blocks: the rest goes out in the last flush,
                # and nothing twice.
                self._batch = batch[i + 1:]
                raise
        self.flush_output()

    def emit(self, ts_ns: int, data: bytes, length: int) -> None:
        raise NotImplementedError

    def flush_output(self) -> None:
        pass


class TextSink(DecodingSink):
    def __init__(self, printer: TcpdumpPrinter, stream: TextIO, nano_records: bool, pcapng: bool,
                 count: int | None) -> None:
        super().__init__(nano_records, pcapng, count)
        self.printer, self.stream = printer, stream

    def emit(self, ts_ns: int, data: bytes, length: int) -> None:
        self.stream.write(self.printer.line(ts_ns, data, length) + "\n")

    def flush_output(self) -> None:
        self.stream.flush()


class TcpdumpSink(DecodingSink):
    """tcpdump prints each batch, sorted by time (tcpdump_lines): its lines, its flags."""

    def __init__(self, lines: TcpdumpLines, linktype: int, nano_records: bool, pcapng: bool,
                 count: int | None) -> None:
        super().__init__(nano_records, pcapng, count)
        self.lines, self.linktype = lines, linktype
        self._out = bytearray()

    def emit(self, ts_ns: int, data: bytes, length: int) -> None:
        self._out += pcap.pcap_record(ts_ns, data, length, nano=True)

    def flush_output(self) -> None:
        out, self._out = self._out, bytearray()
        if out and not self.lines.write(self.linktype, out):
            self.limit = self.written  # the reader of our output went away: done
        self.lines.flush()
        if self.lines.output_error is not None:
            raise OutputError("standard output", self.lines.output_error)

    def close(self) -> None:
        self.lines.close()


class JsonSink(DecodingSink):
    def __init__(self, printer: TcpdumpPrinter, stream: TextIO, nano_records: bool, pcapng: bool,
                 count: int | None, context: dict[str, Any]) -> None:
        super().__init__(nano_records, pcapng, count)
        self.printer, self.stream, self.context = printer, stream, context

    def emit(self, ts_ns: int, data: bytes, length: int) -> None:
        import json

        from ...packet.tcpdump import format_time

        summary, fields = self.printer.describe(data, length)
        record = {"ts": ts_ns / 1e9, "time": format_time(ts_ns, nano=True), **self.context,
                  **fields, "summary": summary}
        self.stream.write(json.dumps(record) + "\n")

    def flush_output(self) -> None:
        self.stream.flush()


def open_output(path: str) -> tuple[int, Callable[[], None]]:
    """An fd for ``-w PATH`` (``-`` is stdout) and how to close it; opened before
    anything is attached, so that a path that cannot be written is one line."""
    if path == "-":
        sys.stdout.flush()
        return sys.stdout.fileno(), lambda: None
    if not path or "\0" in path:
        raise OutputError(f"-w {path!r}", OSError(2, "not a file name"))
    from ...privilege import open_output as open_as_user

    fd = open_as_user(path)  # never through a symlink, never another user's file

    def close() -> None:
        try:
            os.close(fd)  # NFS and quotas may report a failed write only here
        except OSError as e:
            raise OutputError(f"-w {path}", e) from e

    return fd, close


class RotatingFileSink(Sink):
    """-w with -C/-G/-W, as tcpdump: a new file when the next record would pass -C bytes
    (tcpdump lets one record pass; here no file is ever over the size) or when -G seconds
    have passed; with -W, a ring of that many files (-C), or that many files and stop (-G).

    Names are tcpdump's: ``FILE``, ``FILE1``, ``FILE2``... (with -W: ``FILE0``..., padded
    to the digits of the count); with -G, FILE is a strftime(3) pattern of the file's start.

    -z CMD: each file closed by a rotation is handed to ``CMD FILE``, started at the lowest
    priority and not waited for, as tcpdump does (the last file, closed at exit, is not).
    """

    def __init__(self, path: str, header: bytes, pcapng: bool, count: int | None, size: int | None,
                 files: int | None, seconds: float | None, post_rotate: str | None = None) -> None:
        super().__init__(count)
        self.path, self.header, self.pcapng = path, header, pcapng
        self.size, self.files, self.seconds = size, files, seconds
        self.post_rotate = post_rotate
        self._commands: list[Any] = []  # -z commands started (reaped as they end)
        self._current = ""
        self._walk = pcap.pcapng_records if pcapng else pcap.pcap_records
        self._number = 0  # files opened so far
        self._fd = -1
        self._open()

    def _name(self) -> str:
        import time as _time

        base = _time.strftime(self.path) if self.seconds else self.path
        if self.size is None:
            return base
        index = self._number - 1
        if self.files:
            return f"{base}{index % self.files:0{len(str(self.files))}d}"
        return base if index == 0 else f"{base}{index}"

    def _open(self) -> None:
        import time as _time

        self._close_current()
        self._number += 1
        self._current = self._name()
        self._fd, _ = open_output(self._current)  # as -w FILE: no symlink, no other user's file
        try:
            write_all(self._fd, memoryview(self.header))
        except OSError as e:
            raise OutputError(f"-w {self._name()}", e) from e
        self._bytes = len(self.header)
        self._opened = _time.monotonic()

    @property
    def done(self) -> bool:
        if super().done:
            return True
        # -G with -W (and no -C): that many files, then stop, as tcpdump.
        return bool(self.seconds and self.files and not self.size and self._number > self.files)

    def _rotate_by_time(self) -> None:
        import time as _time

        if self.seconds and _time.monotonic() - self._opened >= self.seconds:
            if self.files and not self.size and self._number >= self.files:
                self._number += 1  # done: no file more
                self._close_current()  # as tcpdump: the last of the -W files goes to -z too
                return
            self._open()

    def write(self, span: memoryview) -> None:
        self._rotate_by_time()
        start = pos = 0
        for _ts, offset, caplen, _length in self._walk(span, False):
            if self.done:
                break
            end = self._record_end(span, pos, offset, caplen)
            if self.size and self._bytes + (pos - start) + (end - pos) > self.size \
                    and self._bytes + (pos - start) > len(self.header):
                self._flush_slice(span[start:pos])
                start = pos
                self._open()
            self.written += 1
            pos = end
        self._flush_slice(span[start:pos])

    def _record_end(self, span: memoryview, pos: int, offset: int, caplen: int) -> int:
        if self.pcapng:
            return pos + int.from_bytes(span[pos + 4:pos + 8], "little")
        return offset + caplen

    def _flush_slice(self, part: memoryview) -> None:
        if len(part):
            try:
                write_all(self._fd, part)
            except OSError as e:
                raise OutputError(f"-w {self._name()}", e) from e
            self._bytes += len(part)

    def flush(self) -> None:
        self._rotate_by_time()

    def _close_current(self) -> None:
        """Close the file being written; with -z, run ``CMD FILE`` on it."""
        if self._fd < 0:
            return
        os.close(self._fd)
        self._fd = -1
        if self.post_rotate:
            self._post_rotate(self._current)

    def _post_rotate(self, name: str) -> None:
        import subprocess

        assert self.post_rotate is not None
        self._commands = [c for c in self._commands if c.poll() is None]  # reap those that ended
        try:
            # tcpdump: execlp(CMD, CMD, FILE) in a child at the lowest priority, not waited for.
            self._commands.append(subprocess.Popen([self.post_rotate, name], stdin=subprocess.DEVNULL,
                                                   close_fds=True, preexec_fn=lambda: os.nice(19)))
        except OSError as e:
            print(f"netbpf: -z {self.post_rotate} {name}: {e.strerror or e}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # the last file: not rotated, so not given to -z (as tcpdump)
            self._fd = -1
