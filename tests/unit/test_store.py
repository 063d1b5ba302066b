"""The run store: atomic per-document writes, resume bookkeeping, and the summary."""

from __future__ import annotations

import sqlite3

import pytest

from gem_graph.run.store import RunStore, StoreError

USAGE = {
    "filter": {"calls": 1, "input_tokens": 100, "output_tokens": 10, "seconds": 0.5},
    "extract": {"calls": 2, "input_tokens": 300, "output_tokens": 40, "seconds": 1.0},
    "total": {"calls": 3, "input_tokens": 400, "output_tokens": 50, "seconds": 1.5},
}


def save(store, doc_id, status, stage, *, records=(), reject=None, usage=None):
    store.save_document(
        {"id": doc_id, "text": "some text", "meta": {}},
        status=status,
        stage=stage,
        records=list(records),
        reject=reject,
        usage=usage or {},
        started_at=100.0,
        finished_at=101.5,
        settings_fingerprint="fp",
    )


def reject(doc_id, stage, code, reason="why"):
    return {"doc_id": doc_id, "stage": stage, "code": code, "reason": reason, "problems": []}


def test_a_retried_document_replaces_its_earlier_attempt_without_duplicates(tmp_path):
    with RunStore(tmp_path, create=True) as store:
        save(
            store, "d1", "failed", "filter", reject=reject("d1", "filter", "transport"), usage=USAGE
        )
        assert store.finished_ids() == set()
        save(store, "d1", "kept", "emit", records=[{"id": "d1#r"}], usage=USAGE)
        assert store.finished_ids() == {"d1"}
        assert [r["id"] for r in store.iter_records()] == ["d1#r"]
        assert list(store.iter_rejects(include_failed=True)) == []
        row = store.document("d1")
        assert row["status"] == "kept" and row["runs"] == 2 and row["seconds"] == 1.5
        assert store.summary()["usage"]["total"]["calls"] == 3


def test_a_write_that_fails_half_way_leaves_nothing_behind(tmp_path):
    with RunStore(tmp_path, create=True) as store:
        with pytest.raises(KeyError):
            save(store, "d1", "kept", "emit", records=[{"id": "ok"}, {"no_id": True}])
        assert store.document("d1") is None
        assert list(store.iter_records()) == []


def test_summary_counts_yield_per_stage_and_top_reject_reasons(tmp_path):
    with RunStore(tmp_path, create=True) as store:
        store.set_meta(
            {
                "settings": {
                    "pipeline": {"execute": False, "refine": False, "judge": False},
                    "model": {"name": "m"},
                }
            }
        )
        save(store, "k1", "kept", "emit", records=[{"id": "k1#a"}], usage=USAGE)
        save(store, "k2", "kept", "emit", records=[{"id": "k2#a"}], usage=USAGE)
        save(store, "f1", "rejected", "filter", reject=reject("f1", "filter", "irrelevant"))
        save(store, "g1", "rejected", "ground", reject=reject("g1", "ground", "ungrounded_value"))
        save(store, "b1", "rejected", "input", reject=reject("b1", "input", "invalid_input"))
        save(store, "t1", "failed", "extract", reject=reject("t1", "extract", "transport"))
        summary = store.summary()
    assert summary["documents"] == {"total": 6, "kept": 2, "rejected": 3, "failed": 1}
    assert summary["stages"] == [
        {"stage": "input", "reached": 6, "passed": 5},
        {"stage": "filter", "reached": 5, "passed": 4},
        {"stage": "extract", "reached": 4, "passed": 3},
        {"stage": "ground", "reached": 3, "passed": 2},
    ]
    codes = {(r["stage"], r["code"]): r["count"] for r in summary["top_rejects"]}
    assert codes == {
        ("filter", "irrelevant"): 1,
        ("ground", "ungrounded_value"): 1,
        ("input", "invalid_input"): 1,
        ("extract", "transport"): 1,
    }
    assert summary["per_kept"] == {"calls": 3.0, "input_tokens": 400.0, "output_tokens": 50.0}
    assert summary["isolation"] == "not executed (execution off)"
    assert summary["model"] == "m"


def test_rejects_are_listed_without_failed_documents_unless_asked(tmp_path):
    with RunStore(tmp_path, create=True) as store:
        save(store, "r", "rejected", "filter", reject=reject("r", "filter", "irrelevant"))
        save(store, "f", "failed", "filter", reject=reject("f", "filter", "transport"))
        assert [r["doc_id"] for r in store.iter_rejects()] == ["r"]
        assert [r["doc_id"] for r in store.iter_rejects(include_failed=True)] == ["r", "f"]


def test_opening_a_folder_without_a_store_or_a_corrupt_file_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="holds no run store"):
        RunStore(tmp_path / "nothing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "run.sqlite").write_bytes(b"this is not a database at all" * 10)
    with pytest.raises(StoreError, match="not a usable run store"):
        RunStore(tmp_path / "bad")


def test_the_store_is_in_wal_mode_and_passes_integrity_check(tmp_path):
    with RunStore(tmp_path, create=True) as store:
        save(store, "d", "kept", "emit", records=[{"id": "d#1"}])
        assert store.integrity_check() == "ok"
    mode = sqlite3.connect(tmp_path / "run.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_a_resumed_runs_eta_starts_from_the_earlier_sessions_rate(tmp_path, monkeypatch):
    from gem_graph.run.report import RunCounters

    with RunStore(tmp_path, create=True) as store:
        assert store.seconds_per_document() is None  # nothing run yet: no estimate
        session = store.start_session("fp")
        for i in range(4):
            save(store, f"d{i}", "kept", "emit")
        save(store, "bad", "rejected", "input", reject=reject("bad", "input", "invalid_input"))
        store.finish_session(session, processed=5, stopped_reason="interrupted")
        store.db.execute(
            "UPDATE sessions SET started_at = 0, finished_at = 40 WHERE id = ?", [session]
        )
        per_doc = store.seconds_per_document()
    assert per_doc == 10.0  # 40 s over the 4 documents that reached the pipeline
    counters = RunCounters(total=10, done=5, skipped=5, prior_seconds_per_doc=per_doc)
    assert counters.eta_seconds() == 50.0  # before this session finished one itself
    counters.processed, counters.done = 1, 6
    monkeypatch.setattr("gem_graph.run.report.time.monotonic", lambda: counters.started + 3)
    assert counters.eta_seconds() == 12.0  # then its own rate: 3 s for 1, 4 left
