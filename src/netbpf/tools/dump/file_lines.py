"""``netbpf dump -r FILE [EXPRESSION]`` as lines: tcpdump reads FILE itself.

A pcap file holds one link type, and ``tcpdump -nn -r FILE EXPRESSION`` does
all that netbpf promises with it: tcpdump's lines, the filter compiled by
libpcap for the file's link type and byte order, every good packet of a
damaged file then one line, exit status 1. netbpf adds only its own stderr:
tcpdump's "reading from file" line left out, tcpdump's messages as netbpf's
(:func:`tcpdump_reads`, for both paths below).

That is also the command line timed against tcpdump (bench/dump_read.py), so
it has a path of its own, :func:`run_plain`, which ``netbpf.cli.main`` tries
before building its parser. Python's start-up costs about 0.02 s of CPU, where
tcpdump takes 0.12 s on the bench file; argparse, logging, subprocess, shutil,
signal, typing, ctypes and the pcap reader cost 0.07 s more (python -X
importtime, perf stat). So this
module imports only what Python has loaded before running any code (os, sys,
the C half of signal), reads the few command lines it takes by hand, and
leaves every other one, and every file it cannot vouch for, to the parser and
offline.read_file (None). It reaches the same tcpdump command as read_file
(tests/unit/test_dump_file_lines.py compares the two on every form it takes).
"""
from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal's C half, loaded at start-up; signal imports enum
import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (13 ms), as mypy reads it

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Protocol

    class TcpdumpOptions(Protocol):
        """What of dump's parsed command line goes to tcpdump (argparse.Namespace, or _Plain)."""

        td_e: bool
        td_v: int
        td_X: bool
        td_A: bool
        td_q: bool
        td_t: int
        absolute: bool
        time_stamp_precision: str

MAX_SNAPLEN = 262144  # cli.MAX_SNAPLEN: -s's default, what read_file compiles the filter with
PCAP_MAGICS = (0xA1B2C3D4, 0xA1B23C4D)  # pcap.PCAP_MAGIC_MICRO, pcap.PCAP_MAGIC_NANO
_READING = b"reading from file"  # tcpdump's first line on stderr: netbpf says nothing there


def tcpdump_path() -> str | None:
    """tcpdump as shutil.which finds it (without importing shutil), else where Debian puts it."""
    path = os.environ.get("PATH")
    if path is None:
        try:
            path = os.confstr("CS_PATH")
        except (AttributeError, ValueError):
            path = os.defpath
    seen = set()
    for folder in path.split(os.pathsep) if path else ():
        if folder in seen:
            continue
        seen.add(folder)
        name = os.path.join(folder, "tcpdump")
        if os.path.exists(name) and os.access(name, os.X_OK) and not os.path.isdir(name):
            return name
    return next((p for p in ("/usr/sbin/tcpdump", "/usr/bin/tcpdump") if os.access(p, os.X_OK)), None)


def tcpdump_flags(args: TcpdumpOptions) -> list[str]:
    """The flags that go to tcpdump when it prints the lines."""
    flags = ["-e"] if args.td_e else []
    flags += ["-" + "v" * min(args.td_v, 3)] if args.td_v else []
    flags += [flag for flag, on in (("-X", args.td_X), ("-A", args.td_A), ("-q", args.td_q)) if on]
    flags += ["-" + "t" * min(args.td_t, 5)] if args.td_t else []
    flags += ["-S"] if args.absolute else []
    flags += ["--time-stamp-precision=nano"] if args.time_stamp_precision == "nano" else []
    return flags


def pcap_header_good(path: str) -> bool:
    """A pcap file whose header netbpf's reader takes (pcap.Reader): magic, 24 bytes, version 2.
    libpcap reads some that netbpf refuses (version 543): those go to read_file, which says so."""
    if path == "-":
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except (OSError, ValueError):  # ValueError: a NUL in the name (read_file says what it says)
        return False
    if len(head) < 24:
        return False
    for order in ("little", "big"):
        if int.from_bytes(head[:4], order) in PCAP_MAGICS:
            return int.from_bytes(head[4:6], order) == 2
    return False


def tcpdump_reads(tcpdump: str, path: str, expression: str, flags: Sequence[str], count: int | None,
                  check: Callable[[], None] | None = None) -> int:
    """``tcpdump -nn -r PATH EXPRESSION``: the lines, the damage message and the exit status are
    tcpdump's own; its messages come after its last line, each as ``netbpf: PATH: ...``.

    ``check``, when tcpdump failed: netbpf's own test of the file and the expression, which
    raises netbpf's one line (a bad filter: exit 2) in place of tcpdump's. It raises only
    where tcpdump failed before reading a packet (the same libpcap compiles the same
    expression for the same link type), so no line was printed then.
    """
    sys.stdout.flush()
    # No -l unless asked: tcpdump -r buffers its lines, and a write per line costs it 10%.
    argv = [tcpdump, "-nn", *flags, *(["-c", str(count)] if count else []), "-r", path]
    if expression:
        argv += ["--", expression]
    # Both ends close on exec; dup2 makes tcpdump's stderr inheritable. (posix_spawn closes no
    # other descriptor, as subprocess's close_fds would: those netbpf made close on exec, and
    # what netbpf's parent left open, tcpdump holds only while netbpf waits for it.)
    read_end, write_end = os.pipe()
    try:
        # stdout is ours: tcpdump writes its lines where netbpf's would go. SIGPIPE and SIGXFSZ
        # back to their defaults, as subprocess does: Python ignores them, and an ignored
        # signal stays ignored across exec.
        pid = os.posix_spawn(tcpdump, argv, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, write_end, 2)],
                             setsigdef=(_signal.SIGPIPE, _signal.SIGXFSZ))
    except OSError as e:
        os.close(read_end)
        from ...errors import NetbpfError

        raise NetbpfError(f"{tcpdump}: {e.strerror}") from e
    finally:
        os.close(write_end)
    status: int | None = None
    try:
        said = b""
        while chunk := os.read(read_end, 1 << 16):
            said += chunk
        status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    except BaseException:
        if status is None:  # Ctrl-C or SIGTERM: tcpdump goes too (nothing of netbpf left running)
            os.kill(pid, _signal.SIGTERM)
            os.waitpid(pid, 0)
        raise
    finally:
        os.close(read_end)
    if status and check is not None:
        check()
    for line in _lines(said):
        if not line.startswith(_READING):
            text = line.decode(errors="replace").removeprefix("tcpdump: ").removeprefix("pcap_loop: ")
            sys.stderr.write(f"netbpf: {path}: {text}")
    return 1 if status else 0


def check_expression(path: str, expression: str, snaplen: int) -> None:
    """netbpf's reader takes the file, libpcap the expression (FilterError: libpcap's message and
    exit 2, where tcpdump would exit 1), as read_file's _Filters compiles it for the file."""
    from ...errors import NetbpfError
    from ...packet import pcap
    from ...packet.libpcap import compile_classic

    try:
        reader, f = pcap.open_reader(path)
    except OSError as e:
        raise NetbpfError(f"{path}: {e.strerror}") from e
    except pcap.PcapFormatError as e:
        raise NetbpfError(f"{path}: {e}") from e
    f.close()
    if expression:
        compile_classic(expression, snaplen, file_linktype=reader.linktype, big_endian=reader.big_endian)


def _lines(data: bytes) -> list[bytes]:
    """Lines as a binary file gives them: split after each newline, the last one maybe without."""
    parts = [part + b"\n" for part in data.split(b"\n")]
    parts[-1] = parts[-1][:-1]
    return parts if parts[-1] else parts[:-1]


class _Plain:
    """A command line run_plain takes, with the names dump's parser gives its values."""

    def __init__(self) -> None:
        self.read: str | None = None
        self.count: int | None = None
        self.expression: list[str] = []
        self.td_e = self.td_X = self.td_A = self.td_q = self.td_l = self.absolute = False
        self.td_v = self.td_t = 0
        self.time_stamp_precision = "micro"


# dump's flags that take no value, any number of them in one word as argparse takes them
# (-nn, -nnvX): -n (output is numeric anyway), -S (dest absolute), and tcpdump's own letters.
_LETTERS = frozenset("nevXAqtlS")
_U64_MAX = (1 << 64) - 1  # cliutil.positive_int: -c N's bound


def parse_plain(words: Sequence[str]) -> _Plain | None:
    """``-r FILE``, ``-c N``, the letters above, then the expression's words (none starting
    with '-'): what argparse makes of them; None for any other command line (argparse's)."""
    plain = _Plain()
    n = 0
    while n < len(words) and words[n].startswith("-"):
        word = words[n]
        if word in ("-r", "-c"):
            if n + 1 == len(words) or words[n + 1].startswith("-"):
                return None
            value = words[n + 1]
            if word == "-r":
                if plain.read is not None:
                    return None
                plain.read = value
            else:  # argparse's int(text, 0), in 1..U64_MAX; other spellings (0x10, 1_000) go to it
                if plain.count is not None or not (value.isascii() and value.isdigit()) or value[0] == "0" \
                        or int(value) > _U64_MAX:
                    return None
                plain.count = int(value)
            n += 2
            continue
        letters = word[1:]
        if not letters or not set(letters) <= _LETTERS:
            return None
        plain.td_e |= "e" in letters
        plain.td_X |= "X" in letters
        plain.td_A |= "A" in letters
        plain.td_q |= "q" in letters
        plain.td_l |= "l" in letters
        plain.absolute |= "S" in letters
        plain.td_v += letters.count("v")
        plain.td_t += letters.count("t")
        n += 1
    plain.expression = list(words[n:])
    if plain.read is None or any(word.startswith("-") for word in plain.expression):
        return None
    return plain


def run_plain(words: Sequence[str]) -> int | None:
    """``netbpf dump WORDS`` when they are ``-r FILE`` (a pcap file), tcpdump's flags and an
    expression, and tcpdump is installed: read_file would hand the file to tcpdump_reads
    (after its own checks, which here run only if tcpdump fails); else None."""
    if any("\0" in word for word in words):
        return None  # no exec can pass it (main(argv) in a test can): the parser's path says what
    plain = parse_plain(words)
    if plain is None or plain.read is None or not pcap_header_good(plain.read):
        return None
    tcpdump = tcpdump_path()
    if tcpdump is None:
        return None
    path, expression = plain.read, " ".join(plain.expression)
    _signal.signal(_signal.SIGTERM, _sigterm_as_interrupt)  # as cli.main: SIGTERM ends like Ctrl-C

    def check() -> None:
        check_expression(path, expression, MAX_SNAPLEN)

    return tcpdump_reads(tcpdump, path, expression, tcpdump_flags(plain) + (["-l"] if plain.td_l else []),
                         plain.count, check)


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
