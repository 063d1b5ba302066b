"""Distilling a run into synthesizer training data: splits by document, loadable files, card.

The run is a real run store holding the reference environments' gold trajectories as the
kept records of six made-up source documents (two segments of one document among them).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from gem_graph.cli import main
from gem_graph.environment import environment_ref, load_environment, save_environment
from gem_graph.records import text_sha256
from gem_graph.run.store import RunStore
from gem_graph.synthesizer import INSTRUCTION, distill_run, parse_target

ENVIRONMENTS = Path(__file__).resolve().parents[2] / "environments"

# (document id, parent id, environment, gold line, licence)
DOCUMENTS = [
    ("shop-a", None, "retail", 0, "cc-by-4.0"),
    ("shop-b#1", "shop-b", "retail", 1, "cc-by-4.0"),
    ("shop-b#2", "shop-b", "retail", 2, "cc-by-4.0"),
    ("clinic-a", None, "clinic", 0, "odc-by"),
    ("clinic-b", None, "clinic", 1, None),
    ("clinic-c", None, "clinic", 2, None),
]


def text_of(doc_id: str) -> str:
    return f"How-to text of {doc_id}: sign in, look the item up, then change it. " * 3


def gold(env: str, line: int) -> dict[str, Any]:
    return json.loads((ENVIRONMENTS / env / "trajectories.jsonl").read_text().splitlines()[line])


def make_run(run_dir: Path) -> dict[str, dict[str, Any]]:
    """A run store with one kept record per document; returns the records by id."""
    records: dict[str, dict[str, Any]] = {}
    with RunStore(run_dir, create=True) as store:
        store.set_meta(
            {
                "versions": {"package": "0.1.0", "prompts": {"ground": "ground@1"}},
                "output_settings": {"model": {"name": "teacher-model"}},
            }
        )
        saved: dict[str, str] = {}
        for name in ("retail", "clinic"):
            env = load_environment(ENVIRONMENTS / name)
            save_environment(env, run_dir / "environments" / f"env_{name}")
            saved[name] = env.content_hash()
        for doc_id, parent, env_name, line, licence in DOCUMENTS:
            env = load_environment(ENVIRONMENTS / env_name)
            text = text_of(doc_id)
            meta: dict[str, Any] = {"license": licence} if licence else {}
            if parent:
                meta["parent_id"] = parent
            record = gold(env_name, line)
            record["id"] = f"{doc_id}#{text_sha256(text)[:8]}"
            record["source"] = {
                "doc_id": doc_id,
                "text_sha256": text_sha256(text),
                "labels": {},
                "meta": meta,
            }
            record["environment"] = environment_ref(env)
            records[record["id"]] = record
            store.save_document(
                {"id": doc_id, "text": text, "meta": meta, "text_sha256": text_sha256(text)},
                status="kept",
                stage="emit",
                records=[record],
                reject=None,
                usage={},
                started_at=time.time(),
                finished_at=time.time(),
                settings_fingerprint="f",
                environments={saved[env_name]: (env_name, f"environments/env_{env_name}")},
            )
    return records


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def run(tmp_path: Path) -> tuple[Path, dict[str, dict[str, Any]]]:
    run_dir = tmp_path / "run"
    return run_dir, make_run(run_dir)


def texts() -> dict[str, str]:
    return {doc_id: text_of(doc_id) for doc_id, *_ in DOCUMENTS}


def test_splits_are_by_source_document_and_targets_parse_back(run, tmp_path) -> None:
    run_dir, records = run
    out = tmp_path / "data"
    result = distill_run(run_dir, out, val_fraction=0.3, seed=1, texts=texts())
    assert sum(result.counts.values()) == 6
    assert not result.skipped

    doc_of = {
        r["id"]: r["source"]["meta"].get("parent_id") or r["source"]["doc_id"]
        for r in records.values()
    }
    split_docs: dict[str, set[str]] = {}
    for split in ("train", "validation"):
        ids = (out / f"{split}.ids.txt").read_text().split()
        split_docs[split] = {doc_of[i] for i in ids}
        openai = read_jsonl(out / f"{split}.openai.jsonl")
        sharegpt = read_jsonl(out / f"{split}.sharegpt.jsonl")
        assert len(openai) == len(sharegpt) == len(ids) == result.counts[split]
        for record_id, row, share in zip(ids, openai, sharegpt, strict=True):
            assert set(row) == {"messages"}
            user, assistant = row["messages"]
            assert (user["role"], assistant["role"]) == ("user", "assistant")
            record = records[record_id]
            assert user["content"] == f"{INSTRUCTION}\n\n{text_of(record['source']['doc_id'])}"
            assert set(share) == {"conversations", "system"}
            assert [t["from"] for t in share["conversations"]] == ["human", "gpt"]
            assert share["conversations"][1]["value"] == assistant["content"]

            target, problems = parse_target(assistant["content"])
            assert problems == [] and target is not None
            assert target["messages"] == record["messages"]
            assert target["tools"] == record["tools"]
            assert target["scenario"] == record["scenario"]
            env = load_environment(ENVIRONMENTS / record["environment"]["name"])
            assert target["environment"] == {
                "schema_sql": env.schema_sql,
                "seed": env.seed,
                "tools_py": env.tools_py,
                "policy": env.policy,
                "read_only_tools": env.manifest.read_only_tools,
            }
    assert split_docs["train"] and split_docs["validation"]
    assert not split_docs["train"] & split_docs["validation"]
    # the two segments of shop-b are one source document: never split across
    assert sum(result.documents.values()) == 5


def test_the_split_is_seeded_and_repeatable(run, tmp_path) -> None:
    run_dir, _ = run
    first = distill_run(run_dir, tmp_path / "a", val_fraction=0.3, seed=7, texts=texts())
    again = distill_run(run_dir, tmp_path / "b", val_fraction=0.3, seed=7, texts=texts())
    assert first.counts == again.counts
    for split in ("train", "validation"):
        a = (tmp_path / "a" / f"{split}.ids.txt").read_text()
        assert a == (tmp_path / "b" / f"{split}.ids.txt").read_text()


def test_the_card_reports_counts_stats_licences_and_the_run(run, tmp_path) -> None:
    run_dir, records = run
    out = tmp_path / "data"
    result = distill_run(run_dir, out, val_fraction=0.2, seed=0, texts=texts())
    card = (out / "README.md").read_text()
    assert card.startswith("---\nconfigs:")
    assert INSTRUCTION in card
    assert f"| train | {result.counts['train']} | {result.documents['train']} |" in card
    assert f"| validation | {result.counts['validation']} |" in card
    mean_messages = sum(len(r["messages"]) for r in records.values()) / len(records)
    assert f"| messages | {mean_messages:.1f} / " in card
    assert "- cc-by-4.0: 3 examples" in card
    assert "- odc-by: 1 examples" in card
    assert "- unknown: 2 examples" in card
    assert "teacher-model" in card and "ground@1" in card


def forget_stored_texts(run_dir: Path) -> None:
    """Make the store look like one written without source texts."""
    import sqlite3

    conn = sqlite3.connect(run_dir / "run.sqlite")
    conn.execute("UPDATE documents SET text = NULL")
    conn.commit()
    conn.close()


def test_records_without_their_text_are_left_out_and_counted(run, tmp_path) -> None:
    run_dir, _ = run
    forget_stored_texts(run_dir)
    partial = texts()
    del partial["clinic-a"]
    partial["clinic-b"] = "a different text than the record was made from"
    result = distill_run(run_dir, tmp_path / "data", val_fraction=0.0, seed=0, texts=partial)
    assert result.counts == {"train": 4, "validation": 0}
    assert result.skipped == {
        "source text unavailable": 1,
        "source text differs from the one the record was made from": 1,
    }
    assert "- source text unavailable: 1" in (tmp_path / "data" / "README.md").read_text()


def test_texts_can_come_from_the_run_corpus(run, tmp_path, capsys) -> None:
    run_dir, _ = run
    forget_stored_texts(run_dir)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "".join(
            json.dumps({"id": doc_id, "text": text_of(doc_id)}) + "\n"
            for doc_id, parent, *_ in DOCUMENTS
            if parent is None
        )
    )
    data = tmp_path / "data"
    code = main(
        ["distill", str(run_dir), "-o", str(data), "--val-fraction", "0", "--corpus", str(corpus)]
    )
    assert code == 0
    # shop-b's segments are not in this corpus file as separate texts: left out, reported
    assert "left out 2: source text unavailable" in capsys.readouterr().out
    assert len(read_jsonl(tmp_path / "data" / "train.openai.jsonl")) == 4


def test_the_main_entry_fails_cleanly_without_a_run(tmp_path, capsys) -> None:
    assert main(["distill", str(tmp_path / "nothing"), "-o", str(tmp_path / "out")]) == 2
    assert "holds no run store" in capsys.readouterr().err


def test_the_files_load_with_hugging_face_datasets(run, tmp_path) -> None:
    datasets = pytest.importorskip("datasets")
    run_dir, _ = run
    out = tmp_path / "data"
    result = distill_run(run_dir, out, val_fraction=0.3, seed=1, texts=texts())
    loaded = datasets.load_dataset(str(out), "openai")
    assert loaded["train"].num_rows == result.counts["train"]
    assert loaded["validation"].num_rows == result.counts["validation"]
    shared = datasets.load_dataset(str(out), "sharegpt")
    assert shared["train"].column_names == ["conversations", "system"]


def test_texts_kept_by_the_run_store_are_used(run, tmp_path) -> None:
    """The store keeps each segment's text, so distilling needs no other input."""
    run_dir, _ = run
    result = distill_run(run_dir, tmp_path / "data", val_fraction=0.2, seed=0)
    assert sum(result.counts.values()) == 6 and not result.skipped
    forget_stored_texts(run_dir)
    assert distill_run(run_dir, tmp_path / "none", val_fraction=0.2, seed=0).counts == {
        "train": 0,
        "validation": 0,
    }
