"""Planning a consent import in worker processes while the importing process writes.

Validating and normalising a row (email-validator, phonenumbers, pydantic, salted digests and
the chain's JSON) costs more than writing it, and one process uses one core. A large file is
therefore cut into blocks of whole records, handed to a pool of forked workers as raw text (the
cheapest thing to send), and the plans come back in file order, a few blocks ahead of the
writer. The first block is planned in-process: a small file never starts a worker.
"""

from __future__ import annotations

import csv
import multiprocessing
import re
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from typing import IO

from sqlalchemy.engine import Dialect

from consentgate.core.policy import LoadedPolicy
from consentgate.services.bulk_consents import Block, BlockPlan, plan_block
from consentgate.services.fanout import worker_count

# Blocks each worker may have queued: enough to keep it busy, few enough to bound memory.
AHEAD_PER_WORKER = 2


class UnreadableLine(Exception):
    """The file stops being readable CSV (or UTF-8) at ``line``."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line, self.reason = line, reason


# What undecodable bytes become in a file opened with errors="surrogateescape".
_UNDECODED = re.compile("[\udc80-\udcff]")


def checked_lines(stream: IO[str]) -> Iterator[str]:
    """The file's lines, stopping with the number of the first line that is not UTF-8.

    Opened with ``errors="surrogateescape"`` the check is per line and names the exact line;
    otherwise the decoder fails a whole buffer at once and the line named is the next one read.
    """
    number = 0
    try:
        for number, text in enumerate(stream, start=1):
            if _UNDECODED.search(text):
                raise UnreadableLine(number, "not UTF-8 text")
            yield text
    except UnicodeDecodeError as exc:
        raise UnreadableLine(number + 1, str(exc)) from None


def read_blocks(stream: Iterator[str], first_line: int, records: int) -> Iterator[Block]:
    """Blocks of ``records`` CSV records as raw text, cut between records as the csv module reads
    them (a line break inside a quoted cell stays with its record).

    A line that is plainly one record (``_plain_record``) is counted as it is; the csv module
    reads the others, one record at a time, from that line on. Parsing every line only to count
    records was a twentieth of the importing process's time.
    """
    raw: list[str] = []
    lines = iter(stream)
    limit = csv.field_size_limit()

    def record_from(text: str) -> Iterator[str]:
        yield text
        for more in lines:
            raw.append(more)
            yield more

    start, count, whole = first_line, 0, 0
    try:
        for text in lines:
            raw.append(text)
            if not _plain_record(text, limit):
                next(csv.reader(record_from(text)), None)
            count, whole = count + 1, len(raw)
            if count >= records:
                yield Block(start, "".join(raw))
                start, count, whole = start + len(raw), 0, 0
                raw.clear()
    except UnreadableLine as exc:
        failure = exc
    except csv.Error as exc:
        failure = UnreadableLine(start + len(raw) - 1, str(exc))  # the line just read
    else:
        if raw:
            yield Block(start, "".join(raw))
        return
    if whole:
        yield Block(start, "".join(raw[:whole]))   # the whole records read before the bad line
    raise failure


def _plain_record(text: str, limit: int) -> bool:
    """Whether the csv module reads this line, at the start of a record, as one whole record of
    unquoted cells: no quote, no NUL, no line break but those it ends with, no cell over the limit."""
    body = text.rstrip("\r\n")
    return not ('"' in body or "\0" in body or "\r" in body or "\n" in body or len(body) > limit)


_worker: tuple[list[str], LoadedPolicy, datetime, Dialect] | None = None


def _start_worker(header: list[str], policy: LoadedPolicy, now: datetime, dialect: Dialect) -> None:
    global _worker
    _worker = (header, policy, now, dialect)


def _plan_in_worker(block: Block) -> BlockPlan:
    assert _worker is not None
    return plan_block(block, *_worker)


class PlanningFailed(Exception):
    """A planning worker stopped without an answer (killed, out of memory) at the block from ``line``."""

    def __init__(self, line: int) -> None:
        super().__init__(f"a worker process stopped while checking the rows from line {line}")
        self.line = line


def planned_blocks(blocks: Iterator[Block], header: list[str], policy: LoadedPolicy, now: datetime,
                   dialect: Dialect, workers: int | None = None) -> Iterator[tuple[Block, BlockPlan]]:
    """Each block with its plan, in file order.

    When the file stops being readable, every block read before that point is still handed back
    before the error is raised, so the rows above a bad line are written. A worker that dies
    stops the import at its block (``PlanningFailed``), never silently skips it.
    """
    workers = worker_count() if workers is None else workers
    pool: ProcessPoolExecutor | None = None
    pending: deque[tuple[Block, BlockPlan | Future[BlockPlan]]] = deque()

    def ready() -> tuple[Block, BlockPlan]:
        block, planned = pending.popleft()
        if isinstance(planned, BlockPlan):
            return block, planned
        try:
            return block, planned.result()
        except BrokenProcessPool:
            raise PlanningFailed(block.first_line) from None

    try:
        seen = 0
        while True:
            try:
                block = next(blocks, None)
            except Exception:
                while pending:
                    yield ready()
                raise
            if block is None:
                break
            seen += 1
            if pool is None and seen == 2 and workers:
                # fork: the workers start with the policy already loaded, nothing to pickle.
                pool = ProcessPoolExecutor(workers, multiprocessing.get_context("fork"), _start_worker,
                                           (header, policy, now, dialect))
            if pool is None:
                pending.append((block, plan_block(block, header, policy, now, dialect)))
            else:
                pending.append((block, pool.submit(_plan_in_worker, block)))
            while len(pending) > (workers * AHEAD_PER_WORKER if pool else 0):
                yield ready()
        while pending:
            yield ready()
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
