"""Cutting an import file into blocks: every cut falls where the csv module ends a record."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from consentgate.services.bulk_consents import Block
from consentgate.services.planning import UnreadableLine, read_blocks


def blocks_by_csv(stream: Iterator[str], first_line: int, records: int) -> Iterator[Block]:
    """The same cut made the plain way: the csv module reads every record."""
    raw: list[str] = []

    def lines() -> Iterator[str]:
        for text in stream:
            raw.append(text)
            yield text

    reader = csv.reader(lines())
    start, count, whole = first_line, 0, 0
    try:
        for _ in reader:
            count, whole = count + 1, len(raw)
            if count >= records:
                yield Block(start, "".join(raw))
                start, count, whole = first_line + reader.line_num, 0, 0
                raw.clear()
    except csv.Error as exc:
        if whole:
            yield Block(start, "".join(raw[:whole]))
        raise UnreadableLine(first_line + reader.line_num - 1, str(exc)) from None
    if raw:
        yield Block(start, "".join(raw))


def cut(cutter, text: str, newline: str | None, records: int) -> tuple[list[Block], int | None]:  # type: ignore[no-untyped-def]
    blocks: list[Block] = []
    try:
        for block in cutter(iter(io.StringIO(text, newline=newline)), 2, records):
            blocks.append(block)
    except UnreadableLine as exc:
        return blocks, exc.line
    return blocks, None


# Cells, quotes, line breaks of every kind and NUL, in any order: well-formed CSV and not.
csv_text = st.lists(st.sampled_from(['a', 'b', ',', '"', '""', '\n', '\r\n', '\r', ' ', '\0', 'é']),
                    max_size=40).map("".join)


@given(csv_text, st.sampled_from(["", "\n", None]), st.integers(1, 4))
@settings(max_examples=500)
def test_blocks_are_cut_where_the_csv_module_ends_records(text: str, newline: str | None, records: int) -> None:
    assert cut(read_blocks, text, newline, records) == cut(blocks_by_csv, text, newline, records)


def test_a_quoted_cell_over_several_lines_stays_in_its_block() -> None:
    text = 'a,b\n"one\ntwo",c\nd,e\n'
    blocks, failed = cut(read_blocks, text, "", 1)
    assert failed is None
    assert blocks == [Block(2, "a,b\n"), Block(3, '"one\ntwo",c\n'), Block(5, "d,e\n")]


def test_a_cell_over_the_csv_limit_stops_the_cut_at_its_line() -> None:
    text = "a,b\n" + "x" * (csv.field_size_limit() + 1) + "\nc,d\n"
    blocks, failed = cut(read_blocks, text, "", 5)
    assert (blocks, failed) == ([Block(2, "a,b\n")], 3)
