"""tcpdump's own lines: netbpf hands tcpdump a pcap stream and lets it print.

A user who types ``netbpf dump`` expects tcpdump's lines to the character,
for every protocol tcpdump knows and with its flags (``-e -v -X -A -q -t
-tttt``...). The exact way to get them is to let tcpdump print them: the
packets go as a pcap stream into ``tcpdump -nn -l -r -``, whose standard
output is ours. One tcpdump reads one link type; when the link type changes
(a pcapng file with interfaces of several types), the first tcpdump is
closed (it prints all it was given) and another one started, so the order
of lines is the order of packets.

Where tcpdump is not installed, :mod:`netbpf.packet.tcpdump` (hand-written,
Ethernet and the common protocols only) prints instead; flags that only
tcpdump implements are then refused in one line.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import IO

from ...errors import NetbpfError, OutputError
from ...packet import pcap

# tcpdump's first line on stderr when it reads a file: netbpf says its own.
_READING = b"reading from file -"
STREAM_SNAPLEN = pcap.MAX_CAPLEN


class TcpdumpLines:
    """Packets in, tcpdump's lines out (on this process's standard output)."""

    def __init__(self, flags: Sequence[str], tcpdump: str, stdout: IO[bytes] | None = None) -> None:
        self.flags = list(flags)
        self.tcpdump = tcpdump
        self.stdout = stdout
        self._proc: subprocess.Popen[bytes] | None = None
        self._linktype = -1
        self._relay: threading.Thread | None = None
        self._lines: threading.Thread | None = None
        self.output_error: OSError | None = None  # writing tcpdump's lines failed
        self.failed = ""  # what tcpdump said when it stopped on its own
        self.closed_by_reader = False  # our standard output went away (| head)

    def _start(self, linktype: int, snaplen: int) -> subprocess.Popen[bytes]:
        self._finish()
        sys.stdout.flush()
        # tcpdump does not check its writes: a full or broken standard output would go
        # unnoticed. Its lines come through a pipe, written out here, where an error is
        # seen and stops the capture in one line (flush_output raises it).
        out = self.stdout if self.stdout is not None else subprocess.PIPE
        # A process group of its own: the terminal's Ctrl-C goes to netbpf, which stops the
        # capture and closes tcpdump's input; tcpdump, signalled too, would stop mid-read
        # ("Interrupted system call") and lose the lines it was given.
        proc = subprocess.Popen([self.tcpdump, "-nn", "-l", *self.flags, "-r", "-"],
                                stdin=subprocess.PIPE, stdout=out, stderr=subprocess.PIPE,
                                close_fds=True, process_group=0)
        assert proc.stdin is not None
        self._relay = threading.Thread(target=self._relay_stderr, args=(proc,), daemon=True)
        self._relay.start()
        if proc.stdout is not None:
            self._lines = threading.Thread(target=self._relay_stdout, args=(proc.stdout,), daemon=True)
            self._lines.start()
        # A nanosecond stream: tcpdump rounds to its own precision (-tttt: micro, as from the file).
        proc.stdin.write(pcap.pcap_file_header(max(snaplen, STREAM_SNAPLEN), linktype, nano=True))
        self._proc, self._linktype = proc, linktype
        return proc

    def _relay_stdout(self, lines: IO[bytes]) -> None:
        fd = lines.fileno()
        while chunk := os.read(fd, 1 << 16):
            if self.output_error is not None:
                continue  # keep tcpdump from blocking on a full pipe; the error is said once
            try:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(sys.stdout.fileno(), view):]
            except BrokenPipeError:
                self.closed_by_reader = True
            except OSError as e:
                self.output_error = e
        lines.close()

    def _relay_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith(_READING):
                continue
            text = line.decode(errors="replace").rstrip()
            self.failed = text
            print(text, file=sys.stderr, flush=True)

    def write(self, linktype: int, records: bytes | bytearray | memoryview,
              snaplen: int = STREAM_SNAPLEN) -> bool:
        """Write whole pcap records (nanosecond time stamps) of ``linktype``; False once
        tcpdump is gone (its reader closed the pipe)."""
        if self.closed_by_reader:
            return False
        proc = self._proc if linktype == self._linktype and self._proc is not None else self._start(
            linktype, snaplen)
        assert proc.stdin is not None
        try:
            proc.stdin.write(records)
        except BrokenPipeError:
            self.closed_by_reader = True
            return False
        return True

    def flush(self) -> None:
        if self._proc is not None and self._proc.stdin is not None and not self.closed_by_reader:
            try:
                self._proc.stdin.flush()
            except BrokenPipeError:
                self.closed_by_reader = True

    def _finish(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        try:
            proc.stdin.close()
        except BrokenPipeError:
            self.closed_by_reader = True
        status = proc.wait()
        if self._relay is not None:
            self._relay.join(timeout=5)
        if self._lines is not None:
            self._lines.join(timeout=5)
            self._lines = None
        if self.output_error is not None:
            raise OutputError("standard output", self.output_error)
        if status not in (0, -13) and not self.closed_by_reader and self.failed:
            raise NetbpfError(f"tcpdump stopped: {self.failed}")

    def close(self) -> None:
        """Let tcpdump print all it was given, and wait for it."""
        self._finish()


def record(ts_ns: int, data: bytes, orig_len: int) -> bytes:
    return pcap.pcap_record(ts_ns, data, orig_len, nano=True)
