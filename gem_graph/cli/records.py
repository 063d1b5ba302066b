"""Reading a records file for `gem-graph verify`: bounded byte lines, parsed strictly.

The file is read as bytes, line by line, so invalid UTF-8 or an oversized line is that
line's problem (an `UnreadableLine`, which `verify_records` turns into an
`invalid_record` verdict) and the rest of the file is still read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from gem_graph import strictjson
from gem_graph.verify import UnreadableLine

MAX_RECORD_BYTES = 32 * 2**20
"""Longest records line `read_records` parses; a longer line is an `UnreadableLine`."""


class RecordsFileError(Exception):
    """The records file itself could not be read (not one bad line: the file)."""


def read_records(lines: Iterable[str | bytes]) -> Iterator[Any]:
    """Parse JSON lines strictly, skipping blank ones; a bad line becomes an `UnreadableLine`.

    Lines may be `str`, or undecoded `bytes` so that invalid UTF-8 is one line's problem
    rather than the file's. Parsing is `strictjson.loads`: duplicate keys, NaN, lone
    surrogates, deep nesting and lines over `MAX_RECORD_BYTES` make a line unreadable.
    """
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield strictjson.loads(line, max_bytes=MAX_RECORD_BYTES)
        except strictjson.StrictJSONError as exc:
            yield UnreadableLine(number, str(exc))


def bounded_lines(stream: BinaryIO, limit: int, name: str) -> Iterator[bytes]:
    """The lines of `stream` without their newline, holding at most `limit + 1` bytes.

    A longer line is cut there (so it reads as oversized) and its rest skipped, which keeps
    the line numbers right. A read failure is a `RecordsFileError` naming the file.
    """
    try:
        while True:
            line = stream.readline(limit + 1)
            if not line:
                return
            if line.endswith(b"\n"):
                line = line[:-1]
            elif len(line) > limit:
                while True:
                    rest = stream.readline(2**20)
                    if not rest or rest.endswith(b"\n"):
                        break
            yield line
    except OSError as exc:
        raise RecordsFileError(f"cannot read {name}: {exc}") from None
