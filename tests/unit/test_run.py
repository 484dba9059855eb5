"""run.Run undoes in reverse, and only on failure while starting; run.StopSignals
turns SIGINT/SIGTERM into a flag (a real signal, sent to this process)."""
from __future__ import annotations

import os
import signal

import pytest

from netbpf.cliutil import Deadline
from netbpf.errors import NetbpfError
from netbpf.run import Run, StopSignals


class Thing:
    def __init__(self, name: str, log: list[str], fails: bool = False) -> None:
        self.name, self.log, self.fails = name, log, fails

    def close(self) -> None:
        self.log.append(f"close {self.name}")
        if self.fails:
            raise NetbpfError(f"{self.name}: gone already")

    def release(self) -> None:
        self.log.append(f"release {self.name}")


def test_close_undoes_in_reverse() -> None:
    log: list[str] = []
    run = Run()
    run.attach(Thing("link", log))
    run.reader(Thing("ring", log))
    run.callback(log.append, "last step")
    run.close()
    assert log == ["last step", "release ring", "close link"]
    run.close()  # a second close has nothing left to undo
    assert len(log) == 3


def test_a_failed_start_undoes_what_was_made_and_a_good_one_nothing() -> None:
    log: list[str] = []
    run = Run()
    with pytest.raises(ValueError), run.starting():
        run.attach(Thing("first", log))
        raise ValueError("the verifier said no")
    assert log == ["close first"]
    kept = Run()
    with kept.starting():
        kept.attach(Thing("kept", log))
    assert log == ["close first"]  # nothing undone: the caller closes it later
    kept.close()
    assert log[-1] == "close kept"


def test_quiet_attach_swallows_only_netbpf_errors() -> None:
    log: list[str] = []
    run = Run()
    run.attach(Thing("gone", log, fails=True), quiet=True)
    run.close()
    assert log == ["close gone"]
    loud = Run()
    loud.attach(Thing("gone", log, fails=True))
    with pytest.raises(NetbpfError):
        loud.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_sets_the_flag_wakes_and_is_restored(sig: int) -> None:
    before = signal.getsignal(sig)
    woken: list[bool] = []
    with StopSignals(lambda: woken.append(True)) as stop:
        os.kill(os.getpid(), sig)  # the handler runs before kill returns to Python code
        assert stop.stopped.is_set() and woken == [True]
        assert list(stop.rounds(Deadline(None), 0.01)) == []  # the loop ends at once
    assert signal.getsignal(sig) is before


def test_second_signal_interrupts_when_asked() -> None:
    with StopSignals(second_interrupts=True) as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.stopped.is_set()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)


def test_rounds_end_at_the_deadline() -> None:
    with StopSignals() as stop:
        assert list(stop.rounds(Deadline(1e-9), 0.01)) == []
        assert list(stop.rounds(Deadline(1e-9), 0.01, sleep=True)) == []
        for n, timeout in enumerate(stop.rounds(Deadline(None), 0.25)):
            assert timeout == 0.25  # no deadline: the interval itself
            if n == 2:
                break
