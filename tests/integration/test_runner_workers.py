"""`run_corpus_workers`: the same run over two worker processes sharing one store."""

from __future__ import annotations

from pathlib import Path

from test_runner_helpers import CALLS_PER_KEPT, document, fast_settings, respond, write_jsonl

from gem_graph.llm import make_chat_model
from gem_graph.run.corpus import read_corpus
from gem_graph.run.options import shard_of
from gem_graph.run.runner import RunOptions, run_corpus
from gem_graph.run.store import RunStore
from gem_graph.run.workers import CorpusSource, run_corpus_workers, split
from gem_graph.testing.openai_server import LoopbackOpenAIServer


def corpus_rows() -> list[dict | str]:
    rows: list[dict | str] = [document(i, news=i % 4 == 0) for i in range(14)]
    rows.append("{not json")  # a bad input line is a reject at stage `input`, once
    rows.append(document(3))  # a duplicate id, also rejected once
    return rows


def test_entries_are_dealt_evenly_and_the_concurrency_is_split():
    dealt = [shard_of(position, 2) for position in range(9)]
    assert dealt == [0, 1, 0, 1, 0, 1, 0, 1, 0]
    assert split(32, 2) == [16, 16] and split(5, 2) == [3, 2] and sum(split(7, 3)) == 7


async def test_two_workers_process_every_document_once_with_the_counts_of_one(tmp_path: Path):
    corpus = write_jsonl(tmp_path / "c.jsonl", corpus_rows())
    with LoopbackOpenAIServer(respond) as server:
        settings = fast_settings(base_url=server.base_url).updated(run={"concurrency": 4})
        one = await run_corpus(
            read_corpus(corpus),
            llm=make_chat_model(settings.model),
            settings=settings,
            options=RunOptions(run_dir=tmp_path / "one", progress=False),
        )
        requests_one = len(server.requests)
        two = run_corpus_workers(
            CorpusSource(corpus),
            settings=settings.updated(run={"workers": 2}),
            options=RunOptions(run_dir=tmp_path / "two", progress=False),
        )
        requests_two = len(server.requests) - requests_one
    assert (two.processed, two.kept, two.rejected, two.failed, two.stopped_reason) == (
        one.processed,
        one.kept,
        one.rejected,
        0,
        None,
    )
    assert (two.kept, two.rejected) == (10, 6)
    assert requests_two == requests_one == 10 * CALLS_PER_KEPT + 4
    with RunStore(tmp_path / "one") as store:
        expected = sorted((d["id"], d["status"], d["stage"]) for d in store.iter_documents())
    with RunStore(tmp_path / "two") as store:
        assert store.integrity_check() == "ok"
        docs = list(store.iter_documents())
        records = list(store.iter_records())
        summary = store.summary()
    assert sorted((d["id"], d["status"], d["stage"]) for d in docs) == expected
    assert {d["runs"] for d in docs} == {1}
    assert len(records) == len({r["id"] for r in records}) == 10
    assert summary["documents"] == {"total": 16, "kept": 10, "rejected": 6, "failed": 0}
