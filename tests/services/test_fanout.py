"""Work split among forked children: results in order, and any failure fails the whole."""

from __future__ import annotations

import os
import time

import pytest

from consentgate.errors import Unavailable
from consentgate.services.fanout import PartFailed, forked_map


def test_each_part_runs_in_a_process_of_its_own_and_results_come_back_in_order() -> None:
    parent = os.getpid()
    results = forked_map(lambda n: (os.getpid(), [n * i for i in range(1000)]), [1, 2, 3])
    pids = [pid for pid, _ in results]
    assert pids[0] == parent and len(set(pids)) == 3
    assert [values[-1] for _, values in results] == [999, 1998, 2997]
    assert forked_map(lambda n: n + 1, [41]) == [42] and forked_map(lambda n: n, []) == []


def test_a_child_that_raises_fails_the_whole_with_what_it_raised() -> None:
    """As a one-process run would: a store gone away in a child is the same 503 as in the parent."""
    def work(n: int) -> int:
        if n == 2:
            raise Unavailable("the store went away")
        return n

    with pytest.raises(Unavailable, match="the store went away") as raised:
        forked_map(work, [1, 2])
    assert isinstance(raised.value.__cause__, PartFailed) and "Traceback" in str(raised.value.__cause__)

    class Unpicklable(Exception):   # defined here: a child cannot send it back, only its traceback
        pass

    def worse(n: int) -> int:
        if n == 2:
            raise Unpicklable("part two is bad")
        return n

    with pytest.raises(PartFailed, match="part two is bad"):
        forked_map(worse, [1, 2])


def test_a_child_that_dies_without_answering_fails_the_whole() -> None:
    def work(n: int) -> int:
        if os.getpid() != parent:
            os._exit(3)   # as if killed, or out of memory
        return n

    parent = os.getpid()
    with pytest.raises(PartFailed, match="without an answer"):
        forked_map(work, [1, 2])


def test_when_this_process_fails_its_children_are_stopped_not_waited_for() -> None:
    def work(n: int) -> int:
        if os.getpid() == parent:
            raise KeyError("the parent's own part")
        time.sleep(60)
        return n

    parent = os.getpid()
    started = time.monotonic()
    with pytest.raises(KeyError):
        forked_map(work, [1, 2, 3])
    assert time.monotonic() - started < 10
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)   # no child left behind, not even a zombie
