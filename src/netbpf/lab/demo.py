"""The demo's stage: what a tool's scene uses to show itself on live traffic.

Each tool may ship ``netbpf/tools/<tool>/demo.py`` with ``scene(demo)``, given a
:class:`Demo`. A scene prints the command a user would type, runs exactly that,
and shows its output. Which scenes run, in what order, and around which lab is
decided above the tools, by ``netbpf lab demo`` (``lab_cli.py``).
"""
from __future__ import annotations

import shlex
import subprocess
import sys
import time
from collections.abc import Sequence

from . import Lab


class Demo:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.netbpf = [sys.executable, "-m", "netbpf"]

    def title(self, text: str) -> None:
        print(f"\n\x1b[1m== {text}\x1b[0m" if sys.stdout.isatty() else f"\n== {text}", flush=True)

    def say(self, text: str) -> None:
        print(f"   {text}", flush=True)

    def _show(self, argv: Sequence[str], netns: str | None) -> None:
        where = f"[{netns}] " if netns else ""
        print(f"{where}$ {shlex.join(argv)}", flush=True)

    def run(self, argv: Sequence[str], netns: str | None = None, timeout: float = 60,
            max_lines: int = 40) -> subprocess.CompletedProcess[str]:
        """Run a command (netbpf or not) to completion and show its output."""
        self._show(argv, netns)
        full = self._argv(argv, netns)
        result = subprocess.run(full, capture_output=True, text=True, timeout=timeout, check=False)
        self._print_output(result.stdout + result.stderr, max_lines)
        return result

    def start(self, argv: Sequence[str], netns: str | None = None) -> subprocess.Popen[str]:
        """Start a command in the background (shown); stop it with :meth:`finish`."""
        self._show(argv, netns)
        return subprocess.Popen(self._argv(argv, netns), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    def finish(self, proc: subprocess.Popen[str], max_lines: int = 40) -> str:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
        self._print_output(out, max_lines)
        return out

    def _argv(self, argv: Sequence[str], netns: str | None) -> list[str]:
        argv = list(argv)
        if argv and argv[0] == "netbpf":
            argv = self.netbpf + (["--netns", netns] if netns else []) + argv[1:]
            return argv
        return ["ip", "netns", "exec", netns, *argv] if netns else argv

    @staticmethod
    def _print_output(text: str, max_lines: int) -> None:
        lines = text.rstrip().splitlines()
        for line in lines[:max_lines]:
            print(f"   {line}")
        if len(lines) > max_lines:
            print(f"   ... ({len(lines) - max_lines} more lines)")
        sys.stdout.flush()

    def wait(self, seconds: float) -> None:
        time.sleep(seconds)
