"""Corpora behind pyarrow filesystem URIs read like local ones, as a stream."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gem_graph.run.corpus import CorpusError, count_corpus, is_uri, read_corpus

pa = pytest.importorskip("pyarrow")


def uri(path: Path) -> str:
    return path.resolve().as_uri()  # file:///…, pyarrow's LocalFileSystem


def test_only_scheme_urls_are_uris():
    assert is_uri("s3://bucket/corpus.jsonl") and is_uri("file:///tmp/x.jsonl")
    assert not is_uri("corpus.jsonl") and not is_uri("/data/c:/x") and not is_uri(Path("a"))


def test_a_jsonl_uri_gives_the_same_items_as_its_local_path(tmp_path: Path):
    lines = [json.dumps({"id": f"d{i}", "text": f"text {i}", "lang": "en"}) for i in range(3)]
    lines[1:1] = ["{not json", "", json.dumps({"id": "d0", "text": "again"})]
    body = "\n".join(lines)  # no newline at the end: the last line still counts
    path = tmp_path / "c.jsonl"
    path.write_text(body, encoding="utf-8")
    assert list(read_corpus(uri(path))) == list(read_corpus(path))
    assert len(list(read_corpus(uri(path)))) == 5


def test_lines_longer_than_a_read_chunk_are_whole(tmp_path: Path, monkeypatch):
    import gem_graph.run.corpus as corpus

    monkeypatch.setattr(corpus, "READ_CHUNK", 7)
    path = tmp_path / "c.jsonl"
    rows = [{"id": "a", "text": "x" * 50}, {"id": "b", "text": "é" * 30}]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    assert [d["text"] for d in read_corpus(uri(path))] == ["x" * 50, "é" * 30]


def test_a_folder_uri_reads_its_text_files_with_relative_ids(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("first")
    (tmp_path / "sub" / "b.md").write_text("second")
    (tmp_path / "skip.bin").write_bytes(b"\x00")
    (tmp_path / "empty.txt").write_text("  ")
    items = list(read_corpus(uri(tmp_path)))
    assert items[0] == {"id": "a.txt", "text": "first", "meta": {"path": "a.txt"}}
    assert items[1].id == "empty.txt"  # a BadInput, kept in order
    assert items[2]["id"] == "sub/b.md"
    assert items == list(read_corpus(tmp_path))


def test_a_parquet_uri_streams_rows_and_is_counted(tmp_path: Path):
    import pyarrow.parquet as pq

    path = tmp_path / "c.parquet"
    table = pa.table({"id": ["p1", "p2"], "text": ["one", "two"], "src": ["w", "w"]})
    pq.write_table(table, path)
    assert list(read_corpus(uri(path))) == list(read_corpus(path))
    assert count_corpus(uri(path)) == 2
    assert count_corpus(uri(tmp_path / "c.jsonl")) is None  # never read twice


def test_a_missing_uri_or_an_unknown_scheme_is_one_corpus_error(tmp_path: Path):
    with pytest.raises(CorpusError, match="no such file or folder"):
        read_corpus(uri(tmp_path / "nope.jsonl"))
    with pytest.raises(CorpusError, match=r"^cannot open nosuch://"):
        read_corpus("nosuch://bucket/c.jsonl")
