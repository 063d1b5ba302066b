"""The offline demo end to end: scripted replies, real graph, real sandbox, real run store."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from gem_graph.cli import main
from gem_graph.contracts import closed_schema, load_schema
from gem_graph.demo import (
    REAL_MODEL_HINT,
    SCRIPTED_NOTICE,
    default_demo_dir,
    demo_settings,
    load_demo_model,
    load_demo_responses,
    run_demo,
)
from gem_graph.export import export_run, parse_hermes
from gem_graph.run.store import RunStore
from gem_graph.sandbox import probe
from gem_graph.schemas import (
    ExtractOutput,
    FilterOutput,
    ImplementOutput,
    JudgeOutput,
    TrajectoryOutput,
)
from gem_graph.testing.scripted import ScriptedChatModel
from gem_graph.verify import verify_records

EXPECTED = {
    # doc id: (status, stage, reject code)
    "shop-returns": ("kept", "emit", None),
    "clinic-booking": ("kept", "emit", None),
    "library-renewals": ("kept", "emit", None),
    "card-freeze": ("rejected", "judge", "judge_failed"),
    "printer-queue": ("rejected", "extract", "unknown_tool"),
    "city-budget-news": ("rejected", "filter", "irrelevant"),
    "autumn-essay": ("rejected", "filter", "irrelevant"),
    "headphones-review": ("rejected", "filter", "irrelevant"),
}
REPAIRED = {
    # (doc id, stage): the problem code the first attempt's feedback names
    ("shop-returns", "implement"): "[environment_crash]",
    ("shop-returns", "ground"): "[output_mismatch]",
    ("clinic-booking", "extract"): "[invalid_tool_schema]",
    ("library-renewals", "ground"): "[ungrounded_value]",
}
SCHEMAS = {
    "filter": FilterOutput,
    "extract": ExtractOutput,
    "implement": ImplementOutput,
    "ground": TrajectoryOutput,
    "refine": TrajectoryOutput,
    "judge": JudgeOutput,
}


def standard_tier_reason() -> str | None:
    status = probe()["tiers"].get("standard")
    return None if status is True else str(status)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, ScriptedChatModel]:
    reason = standard_tier_reason()
    if reason is not None:
        pytest.skip(f"standard sandbox tier unavailable: {reason}")
    out = tmp_path_factory.mktemp("demo") / "run"
    model = load_demo_model()
    result = asyncio.run(run_demo(out, settings=demo_settings("standard"), llm=model))
    return out, result, model


def stored(out: Path) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]], list[dict]]:
    with RunStore(out) as store:
        documents = {d["id"]: d for d in store.iter_documents()}
        return documents, list(store.iter_records()), list(store.iter_rejects())


def test_every_scripted_reply_matches_its_stage_schema():
    table = load_demo_responses()
    corpus = (default_demo_dir() / "corpus.jsonl").read_text().splitlines()
    assert {json.loads(line)["id"] for line in corpus} == set(EXPECTED)
    for (stage, doc_id), replies in table.items():
        assert doc_id in EXPECTED
        for reply in replies:
            SCHEMAS[stage].model_validate(reply)


def test_the_demo_keeps_and_rejects_the_expected_documents(demo_run):
    out, result, _ = demo_run
    assert result.complete and result.failed == 0
    documents, records, rejects = stored(out)
    assert {d: (row["status"], row["stage"]) for d, row in documents.items()} == {
        d: (status, stage) for d, (status, stage, _) in EXPECTED.items()
    }
    codes = {r["doc_id"]: r["code"] for r in rejects}
    assert codes == {d: code for d, (status, _, code) in EXPECTED.items() if status == "rejected"}
    by_doc = {r["doc_id"]: r for r in rejects}
    assert by_doc["card-freeze"]["reason"].startswith("R3:")
    assert by_doc["printer-queue"]["attempts"] == demo_settings().attempts.extract
    assert sorted(r["source"]["doc_id"] for r in records) == sorted(
        d for d, (status, _, _) in EXPECTED.items() if status == "kept"
    )
    assert result.summary["environments"] == 3


def test_every_record_and_reject_the_demo_writes_matches_its_schema(demo_run):
    """Closed schemas: a field written but missing from the types fails too."""
    out, _, _ = demo_run
    with RunStore(out) as store:
        records = list(store.iter_records())
        rejects = list(store.iter_rejects(include_failed=True))
    assert records and rejects
    for name, values in (("record.schema.json", records), ("reject.schema.json", rejects)):
        validator = jsonschema.Draft202012Validator(closed_schema(load_schema(name)))
        for value in values:
            errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(value)]
            assert not errors, (value.get("id") or value.get("doc_id"), errors[:5])


def test_kept_tool_outputs_are_what_the_sandbox_returned(demo_run):
    out, _, _ = demo_run
    _, records, _ = stored(out)
    for record in records:
        verification = record["verification"]
        assert verification["deterministic"] is True
        assert verification["isolation"]["tier"] == "standard"
        responses = {m["tool_call_id"]: m for m in record["messages"] if m["role"] == "tool"}
        assert len(verification["calls"]) == len(responses) > 0
        for call in verification["calls"]:
            written = json.loads(responses[call["call_id"]]["content"])
            real = call["output"] if call["status"] == "ok" else {"error": call["output"]}
            assert written == real, (record["id"], call["tool"])

    async def replay() -> list[dict[str, Any]]:
        results = []
        for record in records:
            env_dir = out / "environments" / record["environment"]["name"]
            async for result in verify_records(env_dir, [record], demo_settings("standard")):
                results.append(result)
        return results

    for record, result in zip(records, asyncio.run(replay()), strict=True):
        assert result["ok"], result["problems"]
        assert result["final_state_sha256"] == record["verification"]["final_state_sha256"]


def test_flawed_first_attempts_were_repaired_by_the_validator_loops(demo_run):
    out, _, model = demo_run
    _, records, _ = stored(out)
    usage = {r["source"]["doc_id"]: r["usage"] for r in records}
    for (doc_id, stage), code in REPAIRED.items():
        assert usage[doc_id][stage]["calls"] == 2, (doc_id, stage)
        calls = model.calls_for(stage, doc_id)
        assert len(calls) == 2
        assert code in calls[1].prompt_text and code not in calls[0].prompt_text
    crash_feedback = model.calls_for("implement", "shop-returns")[1].prompt_text
    assert "KeyError" in crash_feedback
    for doc_id in ("clinic-booking", "library-renewals", "shop-returns"):
        for stage in ("filter", "refine", "judge"):
            assert usage[doc_id][stage]["calls"] == 1


def test_demo_runs_export_to_tasks_and_hermes(demo_run, tmp_path: Path):
    out, _, _ = demo_run
    _, records, _ = stored(out)
    assert export_run(out, "tasks", tmp_path / "tasks.jsonl").skipped == []
    tasks = [json.loads(line) for line in (tmp_path / "tasks.jsonl").read_text().splitlines()]
    assert [t["expected_final_state_sha256"] for t in tasks] == [
        r["verification"]["final_state_sha256"] for r in records
    ]
    assert export_run(out, "hermes", tmp_path / "hermes.jsonl").skipped == []
    rows = [json.loads(line) for line in (tmp_path / "hermes.jsonl").read_text().splitlines()]
    for row, record in zip(rows, records, strict=True):
        calls = [c for m in record["messages"] for c in m.get("tool_calls") or []]
        assert [c["name"] for c in parse_hermes(row["text"])] == [
            c["function"]["name"] for c in calls
        ]


def test_demo_says_the_replies_are_scripted_and_how_to_use_a_real_model(demo_run, capsys):
    out, _, _ = demo_run
    # resumes: every document is already finished
    assert main(["demo", "-o", str(out), "--tier", "standard"]) == 0
    printed = capsys.readouterr()
    assert SCRIPTED_NOTICE in printed.out and "no model was called" in printed.out
    assert REAL_MODEL_HINT in printed.out
    assert "OPENAI_BASE_URL" in printed.out and "--model" in printed.out
    assert "kept 3" in printed.out
