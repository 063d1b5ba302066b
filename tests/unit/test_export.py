"""The export formats, on the gold trajectories of the reference environments and on edge cases."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest

from gem_graph.cli import main
from gem_graph.export import (
    ExportError,
    RunExport,
    UnusableRun,
    export_records,
    export_run,
    parse_hermes,
    to_hermes,
    to_openai,
    to_sharegpt,
    to_task,
)
from gem_graph.resources import data_dir


def gold_records() -> list[dict[str, Any]]:
    records = []
    for name in ("retail", "clinic"):
        path = data_dir("environments") / name / "trajectories.jsonl"
        records += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return records


GOLD = gold_records()
IDS = [r["id"] for r in GOLD]


def record_calls(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}
        for m in record["messages"]
        for c in m.get("tool_calls") or []
    ]


def call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


def parallel_record() -> dict[str, Any]:
    """An assistant message that says something and makes two calls at once."""
    record = copy.deepcopy(GOLD[0])
    record["messages"] = [
        {"role": "system", "content": "Shop assistant."},
        {"role": "user", "content": "Find socks and shoes."},
        {
            "role": "assistant",
            "content": "Let me search both.",
            "tool_calls": [
                call("c1", "search_products", {"query": "socks"}),
                call("c2", "search_products", {"query": "shoes"}),
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '[{"product_id": "prd_202"}]'},
        {"role": "tool", "tool_call_id": "c2", "content": '[{"product_id": "prd_201"}]'},
        {"role": "assistant", "content": "Both are in stock."},
    ]
    return record


def assert_llamafactory_alternation(conversations: list[dict[str, str]]) -> None:
    """LLaMA-Factory's sharegpt rule: user/observation, then assistant/function_call, …"""
    assert conversations, "empty conversation"
    assert len(conversations) % 2 == 0
    for index, turn in enumerate(conversations):
        allowed = ("human", "observation") if index % 2 == 0 else ("gpt", "function_call")
        assert turn["from"] in allowed, (index, turn["from"])
        assert isinstance(turn["value"], str)


# ---- openai -------------------------------------------------------------------------------


@pytest.mark.parametrize("record", GOLD, ids=IDS)
def test_openai_rows_have_well_formed_tool_calls_and_string_contents(record):
    row = to_openai(record)
    assert set(row) == {"id", "messages", "tools", "scenario"}
    assert json.loads(row["tools"]) == record["tools"]
    assert json.loads(row["scenario"]) == record.get("scenario")
    ids = set()
    for message in row["messages"]:
        assert isinstance(message["content"], str)
        for c in message.get("tool_calls", []):
            assert set(c) == {"id", "type", "function"} and c["type"] == "function"
            assert set(c["function"]) == {"name", "arguments"}
            assert isinstance(json.loads(c["function"]["arguments"]), dict)
            ids.add(c["id"])
        if message["role"] == "tool":
            assert message["tool_call_id"] in ids
        else:
            assert "tool_call_id" not in message
    assert [m["role"] for m in row["messages"]] == [m["role"] for m in record["messages"]]


def test_openai_coerces_object_arguments_and_null_content():
    record = parallel_record()
    record["messages"][2]["content"] = None
    record["messages"][2]["tool_calls"][0]["function"]["arguments"] = {"query": "socks"}
    row = to_openai(record, tools_as_json=False)
    assistant = row["messages"][2]
    assert assistant["content"] == ""
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"query": "socks"}
    assert row["tools"] == record["tools"]


def test_openai_refuses_a_tool_message_without_call_id():
    record = parallel_record()
    del record["messages"][3]["tool_call_id"]
    with pytest.raises(ExportError, match="tool_call_id"):
        to_openai(record)


# ---- sharegpt -----------------------------------------------------------------------------


@pytest.mark.parametrize("record", GOLD, ids=IDS)
def test_sharegpt_roles_alternate_as_llamafactory_expects(record):
    row = to_sharegpt(record)
    assert_llamafactory_alternation(row["conversations"])
    assert row["system"] == record["messages"][0]["content"]
    functions = json.loads(row["tools"])
    assert [f["name"] for f in functions] == [t["function"]["name"] for t in record["tools"]]
    calls = [json.loads(t["value"]) for t in row["conversations"] if t["from"] == "function_call"]
    assert calls == record_calls(record)
    observations = [t["value"] for t in row["conversations"] if t["from"] == "observation"]
    assert observations == [m["content"] for m in record["messages"] if m["role"] == "tool"]


def test_sharegpt_splits_parallel_calls_and_drops_text_that_accompanies_them():
    row = to_sharegpt(parallel_record())
    roles = [t["from"] for t in row["conversations"]]
    assert roles == ["human", "function_call", "observation", "function_call", "observation", "gpt"]
    assert json.loads(row["conversations"][3]["value"]) == {
        "name": "search_products",
        "arguments": {"query": "shoes"},
    }
    assert row["conversations"][4]["value"] == '[{"product_id": "prd_201"}]'
    assert all("Let me search" not in t["value"] for t in row["conversations"])
    assert_llamafactory_alternation(row["conversations"])


def test_sharegpt_merges_repeated_roles_and_drops_an_unanswered_last_user_turn():
    record = parallel_record()
    record["messages"].insert(2, {"role": "user", "content": "The blue ones."})
    record["messages"].append({"role": "assistant", "content": "Anything else?"})
    record["messages"].append({"role": "user", "content": "No, bye."})
    row = to_sharegpt(record)
    conversations = row["conversations"]
    assert conversations[0] == {"from": "human", "value": "Find socks and shoes.\n\nThe blue ones."}
    assert conversations[-1] == {"from": "gpt", "value": "Both are in stock.\n\nAnything else?"}
    assert_llamafactory_alternation(conversations)


def test_sharegpt_refuses_what_cannot_alternate():
    record = parallel_record()
    record["messages"].insert(5, {"role": "user", "content": "Hurry up"})  # user after a tool
    with pytest.raises(ExportError, match="cannot follow"):
        to_sharegpt(record)
    record = parallel_record()
    del record["messages"][4]
    with pytest.raises(ExportError, match="no tool response"):
        to_sharegpt(record)


# ---- hermes -------------------------------------------------------------------------------


@pytest.mark.parametrize("record", GOLD, ids=IDS)
def test_hermes_text_round_trips_to_the_same_calls(record):
    text = to_hermes(record)["text"]
    assert text.startswith("<|im_start|>system\n" + record["messages"][0]["content"])
    assert "<tools>" in text and "</tools>" in text
    assert parse_hermes(text) == record_calls(record)
    tool_messages = [m for m in record["messages"] if m["role"] == "tool"]
    assert text.count("<tool_response>") == len(tool_messages)
    assert text.count("<|im_start|>") == text.count("<|im_end|>")


def test_hermes_groups_consecutive_tool_results_in_one_turn():
    record = parallel_record()
    text = to_hermes(record)["text"]
    assert parse_hermes(text) == record_calls(record)
    assert "Let me search both.\n<tool_call>\n" in text
    assert text.count("<|im_start|>user\n<tool_response>") == 1
    assert text.count("<|im_start|>tool") == 0
    tool_text = to_hermes(record, tool_role="tool")["text"]
    assert tool_text.count("<|im_start|>tool\n<tool_response>") == 1


def test_parse_hermes_reads_only_assistant_turns_and_rejects_bad_blocks():
    text = to_hermes(parallel_record())["text"]
    assert '<tool_call>\n{"name": <function-name>' in text  # the system instructions' example
    assert len(parse_hermes(text)) == 2
    with pytest.raises(ExportError):
        parse_hermes("<|im_start|>assistant\n<tool_call>\nnot json\n</tool_call><|im_end|>\n")


# ---- tasks --------------------------------------------------------------------------------


@pytest.mark.parametrize("record", GOLD, ids=IDS)
def test_task_holds_the_request_environment_and_expected_state(record):
    task = to_task(record)
    users = [m["content"] for m in record["messages"] if m["role"] == "user"]
    assert task["instruction"] == users[0]
    assert task["user_turns"] == users
    assert task["environment"] == record["environment"]
    assert task["scenario"] == record["scenario"]
    assert task["system"] == record["messages"][0]["content"]
    assert task["expected_final_state_sha256"] == record["verification"]["final_state_sha256"]
    assert task["expected_state_diff"] == record["verification"]["state_diff"]


def test_task_needs_an_executed_record():
    record = copy.deepcopy(GOLD[0])
    record["verification"] = None
    with pytest.raises(ExportError, match="execution on"):
        to_task(record)


# ---- writing ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["openai", "sharegpt", "hermes", "tasks"])
def test_export_records_writes_one_json_line_per_record(fmt):
    out = io.StringIO()
    assert export_records(GOLD, fmt, out) == len(GOLD)
    lines = out.getvalue().splitlines()
    assert len(lines) == len(GOLD)
    assert all(isinstance(json.loads(line), dict) for line in lines)


def test_export_records_skips_or_raises_on_records_it_cannot_represent():
    bad = copy.deepcopy(GOLD[0])
    bad["verification"] = None
    errors: list[str] = []
    out = io.StringIO()
    assert export_records([GOLD[1], bad, GOLD[2]], "tasks", out, errors=errors) == 2
    assert len(errors) == 1 and bad["id"] in errors[0]
    with pytest.raises(ExportError, match=bad["id"]):
        export_records([bad], "tasks", io.StringIO())
    with pytest.raises(ValueError, match="unknown export format"):
        export_records([], "csv", io.StringIO())


def test_export_run_reads_a_records_jsonl_run_folder(tmp_path: Path):
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in GOLD))
    target = tmp_path / "out" / "hermes.jsonl"
    assert export_run(tmp_path, "hermes", target) == RunExport(written=len(GOLD), skipped=[])
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [parse_hermes(r["text"]) for r in rows] == [record_calls(r) for r in GOLD]
    with pytest.raises(UnusableRun, match="unknown format"):
        export_run(tmp_path, "yaml", io.StringIO())
    with pytest.raises(UnusableRun, match="not a run folder"):
        export_run(tmp_path / "missing", "openai", io.StringIO())


def test_export_command_reports_rows_and_problems_on_stderr(tmp_path: Path, capsys):
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in GOLD))
    target = tmp_path / "out" / "hermes.jsonl"
    assert main(["export", str(tmp_path), "--format", "hermes", "-o", str(target)]) == 0
    assert f"wrote {len(GOLD)} hermes row(s) to {target}" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing"), "--format", "openai"]) == 2
    assert capsys.readouterr().err == f"{tmp_path / 'missing'}: not a run folder\n"
