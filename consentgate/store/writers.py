"""A queue for the gate's writes to a SQLite database.

SQLite lets one connection write at a time, and a connection that finds the write lock taken
does not wait on it: it sleeps and tries again, a whole millisecond the first time, then 2, 5,
10 ms (SQLite's busy handler). A decision log row takes about 40 us to write. Measured with two
gunicorn workers logging every check, one insert in twenty slept at least a millisecond, which
doubled the mean time of the insert and made it the largest part of the check's p95.

So the gate's decision log writes take turns on a lock file next to the database first: across
processes with ``flock`` (the kernel hands the lock to a waiter as soon as it is released), and
within a process with a thread lock (``flock`` does not tell apart the threads sharing one open
file). SQLite's own lock still guards the data; the queue only decides who asks for it next.
Writers outside the queue (ledger writes, reservations, imports) keep SQLite's busy handler, so a
writer holding the lock for long still delays the queue, as it would delay SQLite's own waiting.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SUFFIX = "-writers"


class WriterQueue:
    """Turns at writing one SQLite database file, for every process and thread that opens it."""

    def __init__(self, database: str) -> None:
        self.path = database + SUFFIX
        self._threads = threading.Lock()
        self._fd: int | None = None
        self._pid = os.getpid()

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold the turn while writing: one statement or one short transaction."""
        if self._pid != os.getpid():
            # A forked child shares its parent's open file, and with it the parent's lock; its
            # thread lock may have been held by a thread the child does not have. It starts afresh.
            self._fd, self._pid, self._threads = None, os.getpid(), threading.Lock()
        with self._threads:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fd = self._fd
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None


_queues: dict[str, WriterQueue] = {}
_lock = threading.Lock()


def queue_for(database: str) -> WriterQueue:
    """The one queue of this process for a database file (two queues on one file in one process
    would each take the file lock, and a thread holding one would wait for itself on the other)."""
    path = os.path.abspath(database)
    with _lock:
        queue = _queues.get(path)
        if queue is None:
            queue = _queues[path] = WriterQueue(path)
        return queue


def close_all() -> None:
    with _lock:
        for queue in _queues.values():
            queue.close()
        _queues.clear()
