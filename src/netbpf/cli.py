"""``netbpf``: one entry point; each tool registers its own subcommand.

A tool is a package under ``netbpf.tools``, listed in its registry
(``netbpf.tools.TOOLS``), with a ``cli`` module that has ``register(subparsers)``;
the parser it adds sets ``func`` (called with the parsed arguments, returns an
exit code) and ``needs_root``. Only the tool named on the command line is imported.

Errors: a NetbpfError prints one line, ``netbpf: <message>``, and exits 1
(usage errors 2); ``-v`` adds the verifier log and libbpf's messages.
"""
from __future__ import annotations

import os
import sys

from . import __version__
from .errors import NetbpfError, NotPermitted, VerifierError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (13 ms), as mypy reads it

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

# argparse, logging, signal and the tool registry are imported where used: `netbpf dump -r F
# EXPR` (timed against tcpdump) runs before them, with Python's start-up as its only cost.


def command_word(argv: Sequence[str]) -> str | None:
    """The COMMAND of a command line: its first word that is neither a global option nor the
    value of ``--netns`` (or of an abbreviation of it, which argparse accepts)."""
    words = iter(argv)
    for word in words:
        if word.startswith("--") and len(word) > 2 and "--netns".startswith(word):
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser; given the command line, one that imports only the tool it runs
    (all of them when its COMMAND is not a tool's: the word may be a mistake to report)."""
    import argparse

    from .cliutil import Parser
    from .tools import TOOLS
    from .tools import register as register_tools

    command = None if argv is None else command_word(argv)
    full: list[str] = list(TOOLS)
    if argv is not None and command is None:
        full = []  # --help, --version, or a usage error: names and lines are enough
    elif command in TOOLS:
        full = [command]

    parser = Parser(
        prog="netbpf",
        description="Debug Linux networks with eBPF.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `netbpf COMMAND --help` for a command's options and examples.",
    )
    parser.add_argument("-V", "--version", action="version", version=f"netbpf {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="say more: -v adds the verifier log to errors, -vv libbpf's debug output")
    parser.add_argument("--netns", metavar="NAME", type=netns_name,
                        help="run inside the network namespace NAME (as `ip -n NAME`), "
                             "keeping the host's bpffs for pins")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register_tools(sub, full)
    if command in TOOLS:  # a tool runs: the other commands by name alone, never parsed
        for other in ("status", "cleanup", "lab"):
            sub.add_parser(other)
        return parser
    from . import lab_cli, status_cli

    status_cli.register(sub)
    lab_cli.register(sub)
    return parser


def netns_name(text: str) -> str:
    """A name as `ip netns add` makes them: a file in /run/netns, never a path
    out of it ('', '..', 'a/b'), which would silently enter another namespace or none."""
    import argparse

    if text in ("", ".", "..") or "/" in text or "\0" in text:
        raise argparse.ArgumentTypeError(f"not a network namespace name: {text!r} (ip netns list)")
    return text


def one_line(message: str) -> str:
    """An error is one line, even when it quotes another program's output."""
    text = ""
    for line in (raw.strip() for raw in message.splitlines()):
        if line:
            text += (" " if text.endswith(":") else "; " if text else "") + line
    return text


def _configure_logging(verbose: int) -> None:
    import logging

    level = logging.WARNING
    if verbose >= 2:
        level = logging.DEBUG
    elif verbose == 1:
        level = logging.INFO
    logging.basicConfig(level=level, format="netbpf: %(name)s: %(message)s")
    if verbose < 2:
        # libbpf's informational chatter is only useful when asked for.
        logging.getLogger("netbpf.libbpf").setLevel(logging.WARNING if verbose == 0 else logging.INFO)


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    if len(words) > 1 and words[0] == "dump":
        from .tools.dump.file_lines import run_plain

        # `dump -r F EXPR` to lines: tcpdump reads F, or None for the parser (file_lines says why).
        try:
            code = run_plain(words[1:])
        except NetbpfError as e:
            print(f"netbpf: {one_line(str(e))}", file=sys.stderr)
            return e.exit_code
        except KeyboardInterrupt:
            return 0
        if code is not None:
            return code
    import signal

    from .cliutil import guard_stdout

    guard_stdout()
    parser = build_parser(words)
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit:
            sys.stdout.flush()  # --help into a full file system
            raise
    except NetbpfError as e:
        print(f"netbpf: {one_line(str(e))}", file=sys.stderr)
        return e.exit_code
    _configure_logging(args.verbose)
    # SIGTERM takes the same path as Ctrl-C: every attachment is closed on the way out.
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        if getattr(args, "needs_root", False) and os.geteuid() != 0:
            raise NotPermitted(args.command)  # printed after "netbpf: "
        if args.netns is not None:
            from . import netns

            netns.enter(args.netns)
        if getattr(args, "metrics", None):
            from . import metrics

            # Bound before anything is attached: a busy or unassignable address is
            # the only line the user sees, with nothing to undo.
            metrics.bind(args.metrics)
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a full disk is an error here, not a message at interpreter exit
        return code
    except NetbpfError as e:
        print(f"netbpf: {one_line(str(e))}", file=sys.stderr)
        if isinstance(e, VerifierError) and args.verbose:
            print(e.log, file=sys.stderr)
        if args.verbose:
            from .bpf.object import recent_libbpf_messages

            for line in recent_libbpf_messages(10):
                print(f"netbpf: libbpf: {line}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        # The reader went away (`| head`): not an error. Silence the flush at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
