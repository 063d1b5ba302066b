"""`run_corpus` end to end against the loopback server: store, resume, settings, bad input."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest
from test_runner_helpers import (
    CALLS_PER_KEPT,
    EXTRACT_OK,
    FILTER_OK,
    GROUND_OK,
    PROCEDURE,
    document,
    fast_settings,
    respond,
    stage_requests,
    write_jsonl,
)

from gem_graph.llm import make_chat_model
from gem_graph.run.corpus import read_corpus
from gem_graph.run.endpoint import prepare_model
from gem_graph.run.report import summary_text
from gem_graph.run.runner import RunOptions, RunSummary, SettingsMismatch, run_corpus
from gem_graph.run.store import RunStore
from gem_graph.settings import RunSettings
from gem_graph.testing.openai_server import LoopbackOpenAIServer
from gem_graph.testing.scripted import ScriptedChatModel, table_responder


@pytest.fixture
def server():
    with LoopbackOpenAIServer(respond) as running:
        yield running


async def run(path: Path, run_dir: Path, server, **options) -> RunSummary:
    """One run in the test's event loop (the OpenAI client pools connections per loop)."""
    settings = options.pop("settings", None) or fast_settings(base_url=server.base_url)
    run_values = {k: options.pop(k) for k in list(options) if k in RunSettings.model_fields}
    settings = settings.updated(run=run_values)  # concurrency, limit, segment_chars, ...
    opts = RunOptions(run_dir=run_dir, progress=False, **options)
    llm = make_chat_model(settings.model)
    return await run_corpus(read_corpus(path), llm=llm, settings=settings, options=opts)


async def test_a_corpus_run_stores_records_rejects_usage_and_settings(tmp_path, server):
    corpus = write_jsonl(
        tmp_path / "c.jsonl", [document(i) for i in range(6)] + [document(6, news=True)]
    )
    result = await run(corpus, tmp_path / "run", server, concurrency=3)
    assert (result.processed, result.kept, result.rejected, result.failed) == (7, 6, 1, 0)
    assert result.complete
    assert len(stage_requests(server)) == 6 * CALLS_PER_KEPT + 1
    with RunStore(tmp_path / "run") as store:
        records = list(store.iter_records())
        assert sorted(r["source"]["doc_id"] for r in records) == [f"doc-{i:04d}" for i in range(6)]
        assert records[0]["source"]["meta"] == {"lang": "en"}
        [reject] = list(store.iter_rejects())
        assert (reject["doc_id"], reject["stage"], reject["code"]) == (
            "doc-0006",
            "filter",
            "irrelevant",
        )
        summary = store.summary()
        settings = store.get_meta("settings")
        versions = store.get_meta("versions")
    assert summary["usage"]["total"]["calls"] == 19
    assert summary["usage"]["total"]["input_tokens"] == 1900
    assert summary["per_kept"]["calls"] == round(19 / 6, 1)
    assert settings["model"]["name"] == "loopback-model"
    assert versions["package"] and versions["prompts"]["filter"].startswith("filter@")
    text = summary_text(summary)
    for expected in ("Yield per stage", "irrelevant", "per kept trajectory", "execution off"):
        assert expected in text


async def test_re_running_skips_finished_documents_and_only_adds_new_ones(tmp_path, server):
    rows = [document(i) for i in range(4)]
    await run(write_jsonl(tmp_path / "c.jsonl", rows), tmp_path / "run", server, concurrency=2)
    first = len(stage_requests(server))
    again = await run(tmp_path / "c.jsonl", tmp_path / "run", server)
    assert (again.processed, again.skipped) == (0, 4)
    assert len(stage_requests(server)) == first
    await run(write_jsonl(tmp_path / "c.jsonl", [*rows, document(4)]), tmp_path / "run", server)
    assert len(stage_requests(server)) == first + CALLS_PER_KEPT
    with RunStore(tmp_path / "run") as store:
        doc_ids = [r["source"]["doc_id"] for r in store.iter_records()]
        runs = {d["id"]: d["runs"] for d in store.iter_documents()}
        sessions = store.summary()["sessions"]
    assert sorted(doc_ids) == [f"doc-{i:04d}" for i in range(5)]
    assert set(runs.values()) == {1}
    assert sessions == 3


async def test_changed_output_settings_are_refused_unless_forced(tmp_path, server):
    corpus = write_jsonl(tmp_path / "c.jsonl", [document(0)])
    await run(corpus, tmp_path / "run", server)
    hotter = fast_settings(base_url=server.base_url, temperature=0.1)
    with pytest.raises(SettingsMismatch, match=r"model\.temperature: 0\.7 → 0\.1"):
        await run(corpus, tmp_path / "run", server, settings=hotter)
    with pytest.raises(SettingsMismatch, match="segment_chars"):
        await run(corpus, tmp_path / "run", server, segment_chars=4000)
    # Transport settings do not change outputs: a different timeout resumes fine.
    slower = fast_settings(base_url=server.base_url, timeout_s=30.0)
    assert (await run(corpus, tmp_path / "run", server, settings=slower)).skipped == 1
    forced = await run(corpus, tmp_path / "run", server, settings=hotter, force_new_settings=True)
    assert forced.stopped_reason is None
    with RunStore(tmp_path / "run") as store:
        assert store.get_meta("output_settings")["model"]["temperature"] == 0.1


async def test_every_kind_of_bad_input_is_a_reject_with_a_reason_and_the_run_goes_on(
    tmp_path, server
):
    huge = "A paragraph about pressing buttons in the right order.\n\n" * 400  # ~22k chars
    lines = [
        json.dumps(document(0)),
        '{"id": "cut", "text": "unterminated',
        json.dumps({"id": "blank", "text": "   \n  "}),
        json.dumps(document(0)),
        json.dumps({"id": "huge", "text": huge}),
    ]
    corpus = tmp_path / "c.jsonl"
    corpus.write_bytes(
        "\n".join(lines[:2]).encode()
        + b'\n{"id": "latin", "text": "caf\xe9"}\n'
        + "\n".join(lines[2:]).encode()
        + b"\n"
    )
    result = await run(corpus, tmp_path / "run", server, segment_chars=1000, max_segments=10)
    assert (result.kept, result.rejected, result.failed) == (1, 5, 0)
    with RunStore(tmp_path / "run") as store:
        rejects = {r["doc_id"]: r for r in store.iter_rejects()}
    assert {r["stage"] for r in rejects.values()} == {"input"}
    assert {r["code"] for r in rejects.values()} == {"invalid_input"}
    reasons = {doc_id: r["reason"] for doc_id, r in rejects.items()}
    assert reasons["line-2"].startswith("line 2: malformed JSON")
    assert reasons["line-3"] == "line 3: invalid UTF-8 at byte 28"
    assert reasons["blank"] == "line 4: the text is empty or whitespace only"
    assert "duplicate id 'doc-0000'" in reasons["doc-0000 (duplicate 1)"]
    assert "over the run's limit of 10,000" in reasons["huge"]
    # Bad entries are finished too: a re-run processes nothing again.
    assert (
        await run(corpus, tmp_path / "run", server, segment_chars=1000, max_segments=10)
    ).processed == 0


async def test_long_documents_run_as_segments(tmp_path, server):
    text = "\n\n".join(f"Part {i}.\n{PROCEDURE}" for i in range(3))
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"id": "manual", "text": text}])
    result = await run(corpus, tmp_path / "run", server, segment_chars=len(PROCEDURE) + 20)
    assert result.kept == 3
    with RunStore(tmp_path / "run") as store:
        ids = sorted(d["id"] for d in store.iter_documents())
        parents = {r["source"]["meta"]["parent_id"] for r in store.iter_records()}
    assert ids == ["manual#1", "manual#2", "manual#3"]
    assert parents == {"manual"}


async def test_limit_counts_input_documents(tmp_path, server):
    corpus = write_jsonl(tmp_path / "c.jsonl", [document(i) for i in range(5)])
    assert (await run(corpus, tmp_path / "run", server, limit=2)).processed == 2
    assert (await run(corpus, tmp_path / "run", server, limit=4)).processed == 2


async def test_the_rate_limiter_spaces_model_requests(tmp_path, server):
    settings = fast_settings(base_url=server.base_url)
    limited = prepare_model(make_chat_model(settings.model), cache=None, requests_per_second=10.0)
    assert limited.rate_limiter is not None
    corpus = write_jsonl(tmp_path / "c.jsonl", [document(0), document(1)])
    started = time.monotonic()
    await run(corpus, tmp_path / "run", server, requests_per_second=10.0, concurrency=2)
    stamps = len(stage_requests(server))
    assert stamps == 2 * CALLS_PER_KEPT
    assert time.monotonic() - started >= 0.45  # 6 requests at 10/s


async def test_run_corpus_works_with_the_scripted_model(tmp_path):
    table = {("filter", "*"): FILTER_OK, ("extract", "*"): EXTRACT_OK, ("ground", "*"): GROUND_OK}
    model = ScriptedChatModel(responder=table_responder(table))
    settings = fast_settings()
    items = [document(i) for i in range(3)]
    items = [{"id": d["id"], "text": d["text"], "meta": {}} for d in items]
    settings = settings.updated(run={"concurrency": 2})
    options = RunOptions(run_dir=tmp_path / "run", progress=False)
    result = await run_corpus(items, llm=model, settings=settings, options=options)
    assert result.kept == 3
    stages = Counter(call.key.stage for call in model.calls)
    assert stages == {"filter": 3, "extract": 3, "ground": 3}


def test_synthesized_environments_are_saved_once_and_name_clashes_get_a_suffix(tmp_path):
    from gem_graph.environment import load_environment
    from gem_graph.resources import data_dir
    from gem_graph.run.environments import save_environments
    from gem_graph.stages.implement import environment_to_state

    retail = environment_to_state(load_environment(data_dir("environments") / "retail"))
    changed = {**retail, "tools_py": retail["tools_py"] + "\n# changed\n"}
    with RunStore(tmp_path, create=True) as store:
        saved = save_environments(store, tmp_path, [retail, retail, changed])
    folders = sorted(path for _name, path in saved.values())
    assert len(saved) == 2
    assert folders[0] == "environments/retail"
    assert folders[1].startswith("environments/retail-")
    for folder in folders:
        reloaded = environment_to_state(load_environment(tmp_path / folder))
        assert reloaded["tools_py"] in (retail["tools_py"], changed["tools_py"])
