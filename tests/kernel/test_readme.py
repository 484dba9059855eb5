"""Every command in README.md and in the tools' READMEs, run as printed, on the lab.

    .venv/bin/python -m pytest -v tests/kernel/test_readme.py     (as root; -s shows every output)

The examples are 4-space indented blocks. A line ``$ COMMAND`` is a command; the lines after
it, up to the next ``$`` line or the prose, are its example output. In that output, ``^C``
means the command runs until Ctrl-C and ``...`` that lines were left out. A command whose
comment says ``(another terminal)`` runs while the command before it is running (the
traffic it shows); ``exit N`` in a comment is the exit status to expect (else 0).

How the test runs them (each is one test, named by file, line and command):
- through ``bash -c`` (a shell as a terminal runs it: a Ctrl-C the command handles does
  not kill the shell), with ``.venv/bin`` first on PATH, in the repository's directory; where
  ``sudo`` is not installed and the test runs as root, a ``sudo`` that runs its arguments;
- a command shown with ``^C`` or followed by another terminal's commands is started in a
  process group of its own; once it says it is ready (READY below: netbpf's banners, which
  come after attaching, tcpdump's "listening on") and the other terminal's commands have run, it gets SIGINT as a user's Ctrl-C, then must exit by itself;
- the lab's prefix: the examples use the default ``nb`` (``nb-gw``...). Another lab under
  ``nb`` may be up on a shared machine, so the test rewrites ``nb-NAME`` to ``P-NAME``
  for a prefix P of its own (one per file), and adds ``--prefix P`` to ``netbpf lab``
  commands: the only change made to a command, printed with it. Each file's commands find
  its lab up (``netbpf lab up`` with its servers, as the READMEs say), removed at the end;
- commands that act on the whole machine, not on the lab (``netbpf cleanup`` without
  ``--this-netns``; ``netbpf accel`` on a cgroup) run only where they cannot touch
  another user's state: ``cleanup`` only with NETBPF_README_GLOBAL=1 (a machine of your
  own), accel only when no acceleration is pinned and the cgroup does not exist yet.
  Otherwise the test says it skipped them, and why.

Checks: the exit status; no traceback; the output's shape against the example's: every
column-header line of the example appears in the output, and the example's first and last
lines match a line of the output once numbers (and addresses in hex) are set aside.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from netbpf.lab import Lab

from .conftest import unique_prefix

ROOT = Path(__file__).resolve().parents[2]
FILES = [ROOT / "README.md", *sorted((ROOT / "src/netbpf/tools").glob("*/README.md"))]
# One lab per file, each under a prefix of its own (what one file's examples leave cannot
# change what the next one sees; the last test checks that they left nothing).
PREFIXES = {path: unique_prefix() for path in FILES}
VENV_BIN = ROOT / ".venv" / "bin"
GLOBAL = os.environ.get("NETBPF_README_GLOBAL") == "1"
ACCEL_PIN = Path("/sys/fs/bpf/netbpf/accel")

# What a command prints once it is attached and watching: netbpf's banners, tcpdump's, iperf3's.
READY = re.compile(r"capturing on|watching|tracing|Ctrl-C to stop|^listening on|^Connecting to host", re.M)
_COMMAND = re.compile(r"^ {4}\$ (.*)$")
_COMMENT = re.compile(r"\s#\s(.*)$")
_HEADER_WORD = re.compile(r"^[A-Z][A-Z0-9_%/-]*$")


@dataclass
class Step:
    file: Path
    line: int
    command: str
    output: list[str]

    @property
    def comment(self) -> str:
        m = _COMMENT.search(self.command)
        return m.group(1) if m else ""

    @property
    def other_terminal(self) -> bool:
        return "(another terminal)" in self.comment

    @property
    def expected_status(self) -> int:
        m = re.search(r"\bexit (\d+)\b", self.comment)
        return int(m.group(1)) if m else 0

    @property
    def until_ctrl_c(self) -> bool:
        return any(line.strip() == "^C" for line in self.output)


@dataclass
class Group:
    """A command, and the commands run from another terminal while it runs."""
    step: Step
    meanwhile: list[Step] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.step.file.relative_to(ROOT)}:{self.step.line} {self.step.command.split('  #')[0]}"


def parse(path: Path) -> list[Step]:
    steps: list[Step] = []
    current: Step | None = None
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        m = _COMMAND.match(line)
        if m:
            current = Step(path, number, m.group(1).strip(), [])
            steps.append(current)
        elif current is not None and (line.startswith("    ") or not line.strip()):
            current.output.append(line[4:])
        else:
            current = None
    for step in steps:
        while step.output and not step.output[-1].strip():
            step.output.pop()
    return steps


def groups(steps: list[Step]) -> list[Group]:
    found: list[Group] = []
    for step in steps:
        if step.other_terminal and found:
            found[-1].meanwhile.append(step)
        else:
            found.append(Group(step))
    return found


ALL = [g for path in FILES for g in groups(parse(path))]


# -- the one change made to the commands: the lab's prefix ----------------------------------
def rewrite(text: str, prefix: str) -> str:
    text = re.sub(r"\bnb-(client|gw|be\d+)\b", rf"{prefix}-\1", text)
    return re.sub(r"\blab nb\b", f"lab {prefix}", text)


def rewrite_command(command: str, prefix: str) -> str:
    command = rewrite(command, prefix)
    return re.sub(r"(netbpf lab (?:up|down|show))\b", rf"\1 --prefix {prefix}", command)


# -- shapes --------------------------------------------------------------------------------
def shape(line: str, prefix: str) -> str:
    line = re.sub(r"\b0x[0-9a-f]+\b", "N", rewrite(line, prefix))
    line = re.sub(r"\d+(?:[.,:]\d+)*", "N", line)
    return " ".join(line.split())


def is_header(line: str) -> bool:
    words = line.split()
    return (len(words) >= 3 and bool(_HEADER_WORD.match(words[0])) and len(words[0]) >= 3
            and sum(bool(_HEADER_WORD.match(w)) for w in words) >= 3)


def example_lines(output: list[str]) -> list[str]:
    return [ln for ln in output if ln.strip() and ln.strip() not in ("^C", "...")]


def check_shape(step: Step, actual: str) -> None:
    shown = example_lines(step.output)
    if not shown:
        return
    prefix = PREFIXES[step.file]
    have = {shape(ln, prefix) for ln in actual.splitlines()}
    wanted = [ln for ln in shown if is_header(ln)] + [shown[0], shown[-1]]
    missing = [ln for ln in dict.fromkeys(wanted) if shape(ln, prefix) not in have]
    assert not missing, (f"{step.file.name}:{step.line}: the output does not have the example's "
                         f"shape; no line like:\n  " + "\n  ".join(missing) + f"\n--- output:\n{actual}")


# -- running -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shell_env() -> Iterator[dict[str, str]]:
    extra = tempfile.mkdtemp(prefix="netbpf-readme-")
    if shutil.which("sudo") is None and os.geteuid() == 0:
        sudo = Path(extra) / "sudo"
        sudo.write_text('#!/bin/sh\nexec "$@"\n')  # root already: sudo would run the command as is
        sudo.chmod(0o755)
    env = dict(os.environ, PATH=f"{VENV_BIN}:{extra}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    env.pop("NETBPF_README_GLOBAL", None)
    try:
        yield env
    finally:
        shutil.rmtree(extra, ignore_errors=True)


@pytest.fixture(scope="module")
def readme_lab(shell_env: dict[str, str]) -> Iterator[dict[Path, bool]]:
    """Each file's lab, up as its reader is told to bring it up; all removed at the end."""
    up: dict[Path, bool] = {}
    try:
        yield up
    finally:
        for prefix in PREFIXES.values():
            _cleanup_lab(shell_env, prefix)
            subprocess.run([str(VENV_BIN / "netbpf"), "lab", "down", "--prefix", prefix],
                           capture_output=True, check=False)


def _lab_up(env: dict[str, str], prefix: str) -> None:
    result = subprocess.run(["netbpf", "lab", "up", "--prefix", prefix], env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr


_skipped: dict[str, str] = {}  # "accel": why the accel example was not run


def _skip_reason(command: str) -> str:
    if re.search(r"netbpf cleanup(?!.*--this-netns)", command) and not GLOBAL:
        return ("removes every netbpf program on the machine, other users' too: "
                "run with NETBPF_README_GLOBAL=1 on a machine of your own")
    if "netbpf accel" in command or "/sys/fs/cgroup/unified/app" in command:
        if command.startswith("sudo mkdir"):  # the first command of the example
            _skipped.pop("accel", None)
            app = Path(command.split()[-1])
            if ACCEL_PIN.exists():
                _skipped["accel"] = f"acceleration is already pinned at {ACCEL_PIN} (someone else's)"
            elif app.exists():
                _skipped["accel"] = f"{app} exists already (someone else's)"
        if "accel" in _skipped:
            return _skipped["accel"] + ": not touched"
    return ""


def _start(command: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
    out = Path(tempfile.mkstemp(prefix="netbpf-readme-out-")[1])
    with open(out, "wb") as f:
        proc = subprocess.Popen(["bash", "-c", command], stdin=subprocess.DEVNULL, stdout=f,
                                stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True)
    return proc, out


def _wait(proc: subprocess.Popen[bytes], timeout: float, what: str) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise AssertionError(f"{what}: still running after {timeout} s (killed)") from None


def _run(step: Step, env: dict[str, str]) -> str:
    command = rewrite_command(step.command, PREFIXES[step.file])
    proc, out = _start(command, env)
    try:
        status = _wait(proc, 180, command)
        text = out.read_text(errors="replace")
    finally:
        out.unlink()
    _report(command, status, text)
    _judge(step, status, text)
    return text


def _report(command: str, status: int, text: str) -> None:
    print(f"$ {command}\n{text}[exit {status}]\n")


def _judge(step: Step, status: int, text: str) -> None:
    assert "Traceback" not in text, text
    assert status == step.expected_status, f"exit {status}, expected {step.expected_status}:\n{text}"
    check_shape(step, text)


def _run_background(group: Group, env: dict[str, str]) -> None:
    step = group.step
    command = rewrite_command(step.command, PREFIXES[step.file])
    proc, out = _start(command, env)
    try:
        # as a user would: wait until it says it is ready (the tools print that once attached)
        deadline = time.monotonic() + 30
        while (not READY.search(out.read_text(errors="replace")) and proc.poll() is None
               and time.monotonic() < deadline):
            time.sleep(0.1)
        time.sleep(1)
        for other in group.meanwhile:
            _run(other, env)
        if step.until_ctrl_c:
            time.sleep(1)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole group
            status = _wait(proc, 30, f"{command} after Ctrl-C")
        else:
            status = _wait(proc, 120, command)  # ends by itself: -c, --duration
        text = out.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        out.unlink()
    _report(command + ("   (then Ctrl-C)" if step.until_ctrl_c else ""), status, text)
    _judge(step, status, text)


@pytest.mark.parametrize("group", ALL, ids=[g.id for g in ALL])
def test_readme_command(group: Group, shell_env: dict[str, str], readme_lab: dict[Path, bool]) -> None:
    prefix = PREFIXES[group.step.file]
    if not readme_lab.get(group.step.file):
        _lab_up(shell_env, prefix)
        readme_lab[group.step.file] = True
    for step in (group.step, *group.meanwhile):
        reason = _skip_reason(step.command)
        if reason:
            pytest.skip(f"{step.command}: {reason}")
    print(f"# {group.step.file.relative_to(ROOT)}:{group.step.line}, lab prefix nb -> {prefix}")
    try:
        if group.step.until_ctrl_c or group.meanwhile:
            _run_background(group, shell_env)
        else:
            _run(group.step, shell_env)
    except BaseException:
        _cleanup_lab(shell_env, prefix)  # a failed example may have left a fault pinned in the lab
        raise


def _cleanup_lab(env: dict[str, str], prefix: str) -> None:
    found = Lab.find(prefix)
    for ns in found.namespaces if found else []:
        subprocess.run(["netbpf", "--netns", ns, "cleanup", "--this-netns"], env=env,
                       capture_output=True, timeout=60, check=False)


def test_every_readme_has_commands() -> None:
    """The parser finds the examples (a README reformatted out of the convention fails here)."""
    for path in FILES:
        assert parse(path), f"no `    $ command` lines in {path}"


def test_the_examples_left_nothing_behind() -> None:
    """After every file's commands (the last is a cleanup or a `lab down`), nothing pinned
    for the test's lab remains: the READMEs say `cleanup --this-netns` removes it all.
    What is found is removed here (it is this test's), and the test fails saying what."""
    root = Path("/sys/fs/bpf/netbpf")
    ours = tuple(f"/{prefix}-" for prefix in PREFIXES.values())

    def is_ours(p: Path) -> bool:
        return any(mark in f"/{p.relative_to(root)}" or mark in str(p) for mark in ours)

    left = sorted(str(p) for p in root.rglob("*") if p.is_file() and is_ours(p)) if root.is_dir() else []
    for path in left:
        os.unlink(path)
    for directory in sorted((p for p in root.rglob("*") if p.is_dir() and is_ours(p)),
                            key=lambda p: -len(p.parts)) if root.is_dir() else []:
        try:
            directory.rmdir()
        except OSError:
            pass
    assert not left, "pins left by the README examples (removed now):\n" + "\n".join(left)
