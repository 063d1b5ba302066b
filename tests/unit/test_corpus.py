"""Reading corpora (JSONL, folders, Parquet), bad entries, and segmentation."""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import pytest

from gem_graph.run.corpus import (
    BadInput,
    CorpusError,
    count_corpus,
    read_corpus,
    segment_document,
    split_text,
)


def write_lines(path: Path, lines: list[str | bytes]) -> Path:
    data = b"\n".join(line if isinstance(line, bytes) else line.encode() for line in lines)
    path.write_bytes(data + b"\n")
    return path


def test_jsonl_rows_become_documents_with_other_fields_as_metadata(tmp_path):
    path = write_lines(
        tmp_path / "c.jsonl",
        [
            json.dumps({"id": "a", "text": "Open the app.", "lang": "en", "url": "http://x"}),
            json.dumps({"id": 7, "text": "Log in."}),
        ],
    )
    docs = list(read_corpus(path))
    assert docs == [
        {"id": "a", "text": "Open the app.", "meta": {"lang": "en", "url": "http://x"}},
        {"id": "7", "text": "Log in.", "meta": {}},
    ]


def test_custom_text_and_id_fields_and_rows_without_an_id(tmp_path):
    path = write_lines(
        tmp_path / "c.jsonl",
        [json.dumps({"key": "k1", "body": "Step one."}), "", json.dumps({"body": "Step two."})],
    )
    docs = list(read_corpus(path, text_field="body", id_field="key"))
    assert [d["id"] for d in docs] == ["k1", "line-3"]
    assert docs[1]["text"] == "Step two."


def test_each_bad_jsonl_entry_is_a_marker_with_its_reason_and_the_stream_goes_on(tmp_path):
    path = write_lines(
        tmp_path / "c.jsonl",
        [
            json.dumps({"id": "ok1", "text": "Fine."}),
            '{"id": "broken", "text": ',
            b'{"id": "bin", "text": "caf\xe9"}',
            json.dumps({"id": "blank", "text": " \n\t "}),
            json.dumps({"id": "ok1", "text": "Again."}),
            json.dumps(["not", "an", "object"]),
            json.dumps({"id": "num", "text": 42}),
            json.dumps({"id": "none"}),
            json.dumps({"id": "ok2", "text": "Also fine."}),
        ],
    )
    items = list(read_corpus(path))
    assert [i["id"] for i in items if not isinstance(i, BadInput)] == ["ok1", "ok2"]
    bad = {i.id: i.reason for i in items if isinstance(i, BadInput)}
    assert bad["line-2"].startswith("line 2: malformed JSON")
    assert bad["line-3"] == "line 3: invalid UTF-8 at byte 26"
    assert bad["blank"] == "line 4: the text is empty or whitespace only"
    assert "duplicate id 'ok1'" in bad["ok1 (duplicate 1)"]
    assert "expected a JSON object, got list" in bad["line-6"]
    assert "'text' must be a string, got int" in bad["num"]
    assert "no 'text' field" in bad["none"]


def test_a_missing_path_is_one_error_before_iteration(tmp_path):
    with pytest.raises(CorpusError, match="no such file or folder"):
        read_corpus(tmp_path / "missing.jsonl")


def test_a_folder_of_text_files_uses_relative_paths_as_ids(tmp_path):
    (tmp_path / "guides").mkdir()
    (tmp_path / "guides" / "b.md").write_text("# Reset a router\nHold the button.", "utf-8")
    (tmp_path / "a.txt").write_text("Book a table.", "utf-8")
    (tmp_path / "empty.txt").write_text("   ", "utf-8")
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9")
    (tmp_path / "ignored.json").write_text("{}", "utf-8")
    items = list(read_corpus(tmp_path))
    docs = [i for i in items if not isinstance(i, BadInput)]
    assert [d["id"] for d in docs] == ["a.txt", "guides/b.md"]
    assert docs[1]["meta"] == {"path": "guides/b.md"}
    bad = {i.id: i.reason for i in items if isinstance(i, BadInput)}
    assert bad == {
        "empty.txt": "empty.txt: the text is empty or whitespace only",
        "latin1.txt": "latin1.txt: invalid UTF-8 at byte 3",
    }
    assert count_corpus(tmp_path) == 4


def test_parquet_rows_read_like_jsonl(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "doc": ["p1", "p2", "p3"],
            "body": ["Step one.", "", "Step three."],
            "score": [0.5, 0.1, 0.9],
        }
    )
    path = tmp_path / "c.parquet"
    pq.write_table(table, path)
    items = list(read_corpus(path, text_field="body", id_field="doc"))
    assert items[0] == {"id": "p1", "text": "Step one.", "meta": {"score": 0.5}}
    assert isinstance(items[1], BadInput) and "row 2: the text is empty" in items[1].reason
    assert items[2]["id"] == "p3"
    assert count_corpus(path) == 3


def test_parquet_without_pyarrow_is_a_clear_error(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.startswith("pyarrow"):
            raise ImportError("No module named 'pyarrow'")
        return real_import(name, *args, **kwargs)

    path = tmp_path / "c.parquet"
    path.write_bytes(b"PAR1")
    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(CorpusError, match=r"needs pyarrow.*gem-graph\[parquet\]"):
        read_corpus(path)


PARAGRAPHS = [
    "First paragraph about signing in. " * 3,
    "Second paragraph about opening the loans page. " * 2,
    "Third paragraph: press renew and confirm. " * 4,
    "Fourth.",
]


def test_a_short_document_is_one_segment_with_its_own_id():
    doc = {"id": "d", "text": "Short text.", "meta": {"k": 1}}
    assert segment_document(doc, 1000) == [doc]


def test_long_documents_split_at_paragraphs_into_numbered_segments():
    text = "\n\n".join(PARAGRAPHS)
    doc = {"id": "guide", "text": text, "meta": {"lang": "en"}}
    segments = segment_document(doc, 200)
    assert [s["id"] for s in segments] == [f"guide#{i}" for i in range(1, len(segments) + 1)]
    assert len(segments) > 1
    for segment in segments:
        assert len(segment["text"]) <= 200
        assert segment["meta"]["parent_id"] == "guide"
        assert segment["meta"]["segments"] == len(segments)
        assert segment["meta"]["lang"] == "en"
    # Paragraph boundaries are kept: every paragraph lies whole inside one segment.
    for paragraph in PARAGRAPHS:
        assert any(paragraph.strip() in s["text"] for s in segments)
    assert " ".join(s["text"] for s in segments).split() == text.split()


def test_an_over_long_paragraph_splits_at_sentences_then_at_spaces():
    sentences = [f"Sentence number {i} says what to press next." for i in range(30)]
    paragraph = " ".join(sentences)
    parts = split_text(paragraph, 120)
    assert all(len(p) <= 120 for p in parts)
    assert all(p.endswith(".") for p in parts)
    assert " ".join(parts).split() == paragraph.split()
    one_sentence = "word " * 100
    cut = split_text(one_sentence, 50)
    assert all(len(p) <= 50 for p in cut)
    assert " ".join(cut).split() == one_sentence.split()
    lines = "\n".join(f"line {i} of a listing without full stops" for i in range(20))
    assert all(len(p) <= 100 for p in split_text(lines, 100))
