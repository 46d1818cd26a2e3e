"""One request's work split among forked children of the serving process, one part per core.

A large batch of plain eligibility checks is CPU-bound Python (validating, normalising, reading
rows into facts, deciding) that one process runs on one core. Forking at the moment of the
request gives each child everything the parent has (policy, caches, compiled statements) for
free, so nothing but each part's answers crosses between processes. The parent works on the first
part itself while the children work on the others.

A child never touches a connection it inherited (``forget_inherited``), runs no exit handlers
(``os._exit``) and sends its answer, or the exception it raised, back through a pipe, where it
is raised again. A child that stops without answering (killed, out of memory) fails the request
too: the caller answers 500 rather than a partial batch. Only a single-threaded process forks
(``can_fork``).
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import TypeVar

from consentgate.store.db import forget_inherited

T = TypeVar("T")
R = TypeVar("R")


def worker_count() -> int:
    """Processes worth splitting CPU-bound work among: one per core this process may use; none on
    one core or where processes cannot fork."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores if cores > 1 else 0


def can_fork() -> bool:
    """Whether this process may fork for a part: only while it runs one thread. A child has only
    the thread that forked, and a lock another thread held at that moment (SQLite's own, around
    opening a file, for one) stays held in the child for ever: a threaded server's child hung so.
    A gunicorn sync worker runs one thread."""
    return threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods()


class PartFailed(RuntimeError):
    """A child process stopped without an answer, or raised something that could not be sent
    back (its traceback is the message; it is also the cause of what could be)."""


def forked_map(work: Callable[[T], R], parts: Sequence[T]) -> list[R]:
    """``[work(part) for part in parts]``, the first part in this process and each other part in
    a child forked for it; results in order. ``work`` must not rely on anything it would change
    in this process: a child's changes to memory stay in the child. Only where ``can_fork()``."""
    pending: list[tuple[int, int]] = []
    try:
        for part in parts[1:]:
            pending.append(_fork(work, part))
        results = [work(parts[0])] if parts else []
        while pending:
            pid, fd = pending.pop(0)
            results.append(_collect(pid, fd))
        return results
    finally:
        for pid, fd in pending:   # failed before collecting them: do not leave them running
            _abandon(pid, fd)


def _fork(work: Callable[[T], R], part: T) -> tuple[int, int]:
    read_fd, write_fd = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(read_fd)
        os.close(write_fd)
        raise
    if pid == 0:   # the child
        code = 1
        try:
            os.close(read_fd)
            forget_inherited()
            try:
                payload = pickle.dumps((True, work(part)), protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException as exc:
                payload = _failure(exc)
            with os.fdopen(write_fd, "wb") as pipe:
                pipe.write(payload)
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    return pid, read_fd


def _failure(exc: BaseException) -> bytes:
    """What a child sends back when its part raised: the exception itself where it pickles, so
    that this process raises what a one-process run would have (a store that went away is a
    503, not a 500), and its traceback either way."""
    trace = traceback.format_exc()
    try:
        return pickle.dumps((False, (exc, trace)), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return pickle.dumps((False, (None, trace)), protocol=pickle.HIGHEST_PROTOCOL)


def _collect(pid: int, fd: int) -> R:  # type: ignore[type-var]
    with os.fdopen(fd, "rb") as pipe:
        payload = pipe.read()
    os.waitpid(pid, 0)
    if not payload:
        raise PartFailed(f"process {pid} stopped without an answer")
    ok, value = pickle.loads(payload)
    if not ok:
        exc, trace = value
        failed = PartFailed(f"process {pid} failed:\n{trace}")
        if isinstance(exc, Exception):
            raise exc from failed
        raise failed
    return value  # type: ignore[no-any-return]


def _abandon(pid: int, fd: int) -> None:
    os.close(fd)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
