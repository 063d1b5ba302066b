"""Read a corpus (JSONL, a folder of .txt/.md files, or Parquet) and split long texts.

`read_corpus` streams one `CorpusItem` per input document: either a document dict
`{"id", "text", "meta"}` or a `BadInput` naming what was wrong with that entry (a malformed
JSONL line, invalid UTF-8, empty text, a duplicate id). Bad entries never stop the stream;
the runner records each as a reject. Only a path that cannot be read at all raises
`CorpusError`.

`path` is a local path or any pyarrow filesystem URI (`s3://bucket/corpus.jsonl`,
`gs://…`, `hdfs://…`, `file:///…`), read as a stream through `pyarrow.fs`.

`segment_document` splits a long text at paragraph boundaries into segments of at most
`max_chars` characters (a paragraph longer than that is split at sentence, then line
boundaries), so every segment fits the document graph's size limit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
TEXT_SUFFIXES = (".txt", ".md")
PARQUET_SUFFIXES = (".parquet", ".pq")
READ_CHUNK = 1 << 20
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class CorpusError(Exception):
    """The corpus as a whole cannot be read (missing path, unknown format, no pyarrow)."""


@dataclass(frozen=True)
class BadInput:
    """An input entry that cannot become a document, with the reason shown in the reject."""

    id: str
    reason: str
    code: str = "invalid_input"
    meta: dict[str, Any] = field(default_factory=dict)


CorpusItem = dict[str, Any] | BadInput
"""A document `{"id", "text", "meta"}` or a `BadInput` marker."""


def read_corpus(
    path: str | Path, *, text_field: str = "text", id_field: str = "id"
) -> Iterator[CorpusItem]:
    """Stream the documents of `path`: a JSONL file, a folder of .txt/.md files, or Parquet.

    JSONL and Parquet rows: `id_field` and `text_field` name the id and the text; every other
    field is kept in `meta`. A row without an id gets `line-N` (its 1-based line or row
    number). Folder files: the id is the path relative to the folder. Raises `CorpusError`
    at once (not on first iteration) when the path cannot be read. A URI
    (`scheme://…`) is read through `pyarrow.fs` (see `is_uri`).
    """
    if is_uri(path):
        return _read_uri(str(path), text_field=text_field, id_field=id_field)
    source = Path(path)
    if source.is_dir():
        files = _text_files(source)
        return _dedupe(_read_folder(source, files))
    if not source.is_file():
        raise CorpusError(f"cannot read {source}: no such file or folder")
    suffix = source.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        batches = _parquet_batches(source)
        return _dedupe(_read_rows(batches, text_field=text_field, id_field=id_field))
    try:
        handle = source.open("rb")
    except OSError as exc:
        raise CorpusError(f"cannot read {source}: {exc.strerror or exc}") from None
    return _dedupe(_read_jsonl(handle, text_field=text_field, id_field=id_field))


def count_corpus(path: str | Path) -> int | None:
    """A cheap upper bound on the number of entries (for progress), or None if unknown.

    A URI is not read twice: only a Parquet file's row count is taken from its footer."""
    if is_uri(path):
        return _count_uri(str(path))
    source = Path(path)
    try:
        if source.is_dir():
            return len(_text_files(source))
        if source.suffix.lower() in PARQUET_SUFFIXES:
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(source).metadata.num_rows)
        count = 0
        with source.open("rb") as handle:
            for line in handle:
                count += bool(line.strip())
        return count
    except Exception:
        return None


def is_uri(path: str | Path) -> bool:
    """True for `scheme://…` (a pyarrow filesystem URI), false for a local path."""
    return isinstance(path, str) and bool(_URI.match(path))


def _filesystem(uri: str) -> tuple[Any, str]:
    """The pyarrow filesystem and the path inside it for `uri`; `CorpusError` when none."""
    try:
        import pyarrow.fs as pafs
    except ImportError:
        raise CorpusError(
            f"reading {uri} needs pyarrow, which is not installed: pip install 'gem-graph[parquet]'"
        ) from None
    try:
        return pafs.FileSystem.from_uri(uri)
    except Exception as exc:  # unknown scheme, missing credentials, bad bucket name …
        raise CorpusError(f"cannot open {uri}: {exc}") from None


def _read_uri(uri: str, *, text_field: str, id_field: str) -> Iterator[CorpusItem]:
    """A corpus behind a pyarrow filesystem URI: a JSONL or Parquet file, or a folder."""
    import pyarrow.fs as pafs

    fs, inner = _filesystem(uri)
    try:
        info = fs.get_file_info(inner)
    except Exception as exc:
        raise CorpusError(f"cannot read {uri}: {exc}") from None
    if info.type == pafs.FileType.Directory:
        try:
            found = fs.get_file_info(pafs.FileSelector(inner, recursive=True))
        except Exception as exc:
            raise CorpusError(f"cannot read {uri}: {exc}") from None
        base = inner.rstrip("/") + "/"
        files = sorted(
            (f.path[len(base) :], f.path)
            for f in found
            if f.is_file and f.path.lower().endswith(TEXT_SUFFIXES)
        )

        def reader(name: str) -> Callable[[], bytes]:
            def read() -> bytes:
                with fs.open_input_stream(name) as stream:
                    return bytes(stream.readall())

            return read

        return _dedupe(_read_texts((doc_id, reader(name)) for doc_id, name in files))
    if info.type != pafs.FileType.File:
        raise CorpusError(f"cannot read {uri}: no such file or folder")
    try:
        if inner.lower().endswith(PARQUET_SUFFIXES):
            batches = _parquet_batches(fs.open_input_file(inner), name=uri)
            return _dedupe(_read_rows(batches, text_field=text_field, id_field=id_field))
        stream = fs.open_input_stream(inner)
    except CorpusError:
        raise
    except Exception as exc:
        raise CorpusError(f"cannot read {uri}: {exc}") from None
    return _dedupe(_read_jsonl(_StreamLines(stream), text_field=text_field, id_field=id_field))


def _count_uri(uri: str) -> int | None:
    if not uri.lower().endswith(PARQUET_SUFFIXES):
        return None
    try:
        import pyarrow.parquet as pq

        fs, inner = _filesystem(uri)
        with fs.open_input_file(inner) as handle:
            return int(pq.ParquetFile(handle).metadata.num_rows)
    except Exception:
        return None


class _StreamLines:
    """The lines (bytes, with their newline) of a pyarrow input stream, read in chunks;
    a context manager that closes the stream, like a file opened in binary mode."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def __enter__(self) -> _StreamLines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stream.close()

    def __iter__(self) -> Iterator[bytes]:
        pending = b""
        while True:
            chunk = bytes(self.stream.read(READ_CHUNK))
            if not chunk:
                break
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            for line in lines:
                yield line + b"\n"
        if pending:
            yield pending


def _dedupe(items: Iterable[CorpusItem]) -> Iterator[CorpusItem]:
    """Turn the second and later uses of an id into `BadInput`s with a stable id of their own."""
    seen: dict[str, int] = {}
    for item in items:
        if isinstance(item, BadInput):
            yield item
            continue
        doc_id = item["id"]
        count = seen.get(doc_id, 0)
        seen[doc_id] = count + 1
        if count:
            yield BadInput(
                id=f"{doc_id} (duplicate {count})",
                reason=f"duplicate id {doc_id!r}: only its first occurrence is processed",
                meta=item.get("meta") or {},
            )
        else:
            yield item


def _row_document(
    row: Any, number: int, *, text_field: str, id_field: str, where: str
) -> CorpusItem:
    """One JSONL/Parquet row as a document, or the reason it is not one."""
    if not isinstance(row, dict):
        return BadInput(f"line-{number}", f"{where}: expected a JSON object, got {_kind(row)}")
    raw_id = row.get(id_field)
    doc_id = f"line-{number}" if raw_id is None or raw_id == "" else str(raw_id)
    meta = {k: v for k, v in row.items() if k not in (id_field, text_field)}
    meta = json.loads(json.dumps(meta, ensure_ascii=False, default=str))
    text = row.get(text_field)
    if text is None:
        return BadInput(doc_id, f"{where}: no {text_field!r} field", meta=meta)
    if not isinstance(text, str):
        return BadInput(
            doc_id, f"{where}: {text_field!r} must be a string, got {_kind(text)}", meta=meta
        )
    if not text.strip():
        return BadInput(doc_id, f"{where}: the text is empty or whitespace only", meta=meta)
    return {"id": doc_id, "text": text, "meta": meta}


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _read_jsonl(handle: Any, *, text_field: str, id_field: str) -> Iterator[CorpusItem]:
    with handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            where = f"line {number}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield BadInput(f"line-{number}", f"{where}: invalid UTF-8 at byte {exc.start}")
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                yield BadInput(f"line-{number}", f"{where}: malformed JSON ({exc})")
                continue
            yield _row_document(row, number, text_field=text_field, id_field=id_field, where=where)


def _text_files(folder: Path) -> list[Path]:
    try:
        return sorted(
            p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES
        )
    except OSError as exc:
        raise CorpusError(f"cannot read {folder}: {exc.strerror or exc}") from None


def _read_folder(folder: Path, files: list[Path]) -> Iterator[CorpusItem]:
    return _read_texts((path.relative_to(folder).as_posix(), path.read_bytes) for path in files)


def _read_texts(files: Iterable[tuple[str, Callable[[], bytes]]]) -> Iterator[CorpusItem]:
    """One document per text file: `(id, read the bytes)` pairs, in order."""
    for doc_id, read in files:
        try:
            data = read()
        except OSError as exc:
            yield BadInput(doc_id, f"{doc_id}: unreadable ({exc.strerror or exc})")
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield BadInput(doc_id, f"{doc_id}: invalid UTF-8 at byte {exc.start}")
            continue
        if not text.strip():
            yield BadInput(doc_id, f"{doc_id}: the text is empty or whitespace only")
            continue
        yield {"id": doc_id, "text": text, "meta": {"path": doc_id}}


def _parquet_batches(path: Any, *, name: str | None = None) -> Iterator[list[dict[str, Any]]]:
    """Row batches of a Parquet file: a local path or an open pyarrow file (`name` for
    messages)."""
    path_name = name or str(path)
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise CorpusError(
            f"reading {path_name} needs pyarrow, which is not installed: "
            "pip install 'gem-graph[parquet]'"
        ) from None
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:
        raise CorpusError(f"cannot read {path_name} as Parquet: {exc}") from None

    def batches() -> Iterator[list[dict[str, Any]]]:
        for batch in parquet.iter_batches(batch_size=1024):
            yield batch.to_pylist()

    return batches()


def _read_rows(
    batches: Iterator[list[dict[str, Any]]], *, text_field: str, id_field: str
) -> Iterator[CorpusItem]:
    number = 0
    for batch in batches:
        for row in batch:
            number += 1
            yield _row_document(
                row, number, text_field=text_field, id_field=id_field, where=f"row {number}"
            )


# ---- segmentation ---------------------------------------------------------------------------

_PARAGRAPH = re.compile(r"\n[ \t]*\n+")
_SENTENCE = re.compile(r"(?<=[.!?…。])\s+|\n")


def split_text(text: str, max_chars: int) -> list[str]:
    """Split `text` into pieces of at most `max_chars`, at paragraph boundaries where possible.

    Paragraphs are packed greedily; an over-long paragraph is split at sentence ends or line
    breaks; a single over-long sentence is cut at whitespace (or hard, as a last resort).
    """
    if max_chars < 1:
        raise ValueError("max_chars must be positive")
    text = text.strip()
    if len(text) <= max_chars:
        return [text]
    pieces: list[str] = []
    for paragraph in (p.strip() for p in _PARAGRAPH.split(text)):
        if not paragraph:
            continue
        if len(paragraph) <= max_chars:
            pieces.append(paragraph)
            continue
        for sentence in (s.strip() for s in _SENTENCE.split(paragraph)):
            if sentence:
                pieces.extend(_cut(sentence, max_chars))
    return _pack(pieces, max_chars)


def _cut(sentence: str, max_chars: int) -> list[str]:
    """A sentence longer than the limit, cut at the last whitespace before it."""
    parts = []
    while len(sentence) > max_chars:
        cut = sentence.rfind(" ", 0, max_chars + 1)
        cut = cut if cut > max_chars // 2 else max_chars
        parts.append(sentence[:cut].strip())
        sentence = sentence[cut:].strip()
    if sentence:
        parts.append(sentence)
    return parts


def _pack(pieces: list[str], max_chars: int) -> list[str]:
    segments: list[str] = []
    current = ""
    for piece in pieces:
        joined = f"{current}\n\n{piece}" if current else piece
        if len(joined) <= max_chars:
            current = joined
        else:
            segments.append(current)
            current = piece
    if current:
        segments.append(current)
    return segments


def segment_document(document: dict[str, Any], max_chars: int) -> list[dict[str, Any]]:
    """The segments of one document: itself when it fits, else `id#1`, `id#2`, …

    Each segment's `meta` keeps the document's metadata plus `parent_id`, `segment` (1-based)
    and `segments` (the count).
    """
    parts = split_text(document["text"], max_chars)
    if len(parts) == 1:
        return [document if len(document["text"]) <= max_chars else {**document, "text": parts[0]}]
    meta = document.get("meta") or {}
    return [
        {
            "id": f"{document['id']}#{index}",
            "text": part,
            "meta": {
                **meta,
                "parent_id": document["id"],
                "segment": index,
                "segments": len(parts),
            },
        }
        for index, part in enumerate(parts, start=1)
    ]
