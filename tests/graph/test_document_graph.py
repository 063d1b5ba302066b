"""The document graph end to end with a scripted model (execution off)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from library_script import (
    EXTRACT_OK,
    FILTER_OK,
    GROUND_OK,
    JUDGE_OK,
    LIBRARY_TEXT,
    NEWS_TEXT,
    good_table,
    make_model,
    settings,
)

from gem_graph import build_gem_graph
from gem_graph.graph import build_gem_state_graph

DOC = {"id": "lib", "text": LIBRARY_TEXT}
RECORD_FIELDS = {
    "id",
    "source",
    "environment",
    "scenario",
    "tools",
    "messages",
    "verification",
    "judge",
    "stats",
    "usage",
    "provenance",
}


async def run(table: dict[tuple[str, str], Any], doc: dict[str, Any] = DOC, **pipeline: Any):
    model = make_model(table)
    graph = build_gem_graph(llm=model, settings=settings(**pipeline))
    out = await graph.ainvoke({"document": doc})
    return out, model


async def test_a_procedural_text_becomes_a_record_in_the_documented_format():
    out, model = await run(good_table())
    assert out["rejects"] == []
    [record] = out["records"]
    assert set(record) == RECORD_FIELDS
    assert record["source"]["doc_id"] == "lib"
    assert len(record["source"]["text_sha256"]) == 64
    assert record["source"]["labels"]["domain"] == "education"
    assert [t["function"]["name"] for t in record["tools"]] == [
        "find_member",
        "list_loans",
        "renew_loan",
    ]
    assert record["tools"][0]["type"] == "function"
    assert record["messages"][0]["role"] == "system"
    calls = [m for m in record["messages"] if m.get("tool_calls")]
    assert calls[0]["tool_calls"][0]["function"]["arguments"] == '{"card_number": "4821-7730"}'
    assert record["messages"][3] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": GROUND_OK["messages"][3]["content"],
    }
    assert record["scenario"] == {"now": "2025-01-08T10:00:00+00:00", "rows": {}}
    assert record["judge"]["passed"] is True
    assert set(record["judge"]["rubrics"]) == {"R1", "R2", "R3", "R4"}
    assert record["stats"]["tool_calls"] == 3
    assert record["stats"]["distinct_tools"] == 3
    assert record["stats"]["refined"] is True
    assert record["messages"][1]["content"].startswith("hey, so my kid")
    for stage in ("filter", "extract", "ground", "refine", "judge"):
        assert record["usage"][stage]["calls"] == 1
        assert record["usage"][stage]["input_tokens"] > 0
    assert record["provenance"]["prompts"]["ground"] == "ground@3"
    spans = record["provenance"]["spans"]
    start, end = spans["tools"]["renew_loan"]
    assert LIBRARY_TEXT[start:end] == 'Pick the loan and press "Renew".'
    assert spans["steps"][0]["step"] == "find the member by card number"
    assert all(r["span"] for r in spans["rules"])
    json.dumps(record)  # JSON-native
    assert len(model.calls) == 5


async def test_an_irrelevant_text_is_rejected_at_the_filter_with_its_reason():
    out, model = await run(good_table(), doc={"id": "news", "text": NEWS_TEXT})
    assert out["records"] == []
    [reject] = out["rejects"]
    assert reject["stage"] == "filter"
    assert reject["code"] == "irrelevant"
    assert reject["reason"] == FILTER_NO_REASON
    assert [c.key.stage for c in model.calls] == ["filter"]


FILTER_NO_REASON = "A news report, not a procedure."


def _bad_tool_schema() -> dict[str, Any]:
    bad = copy.deepcopy(EXTRACT_OK)
    bad["tools"][2]["parameters_json"] = json.dumps(
        {
            "type": "object",
            "properties": {"loan_id": {"type": "string"}},
            "required": ["loan_id", "member_id"],
        }
    )
    return bad


def _unknown_example_tool() -> dict[str, Any]:
    bad = copy.deepcopy(EXTRACT_OK)
    bad["workflows"][0]["example_calls"][0]["tool"] = "lookup_member"
    return bad


def _made_up_quote() -> dict[str, Any]:
    bad = copy.deepcopy(EXTRACT_OK)
    bad["tools"][2]["quote"] = "Loans can be renewed by phone at any branch."
    return bad


def _with_messages(edit) -> dict[str, Any]:
    bad = copy.deepcopy(GROUND_OK)
    edit(bad["messages"])
    return bad


def _user_after_tool(messages):
    messages.insert(
        4, {"role": "user", "content": "hello?", "tool_calls": None, "tool_call_id": None}
    )


def _wrong_type(messages):
    messages[2]["tool_calls"][0]["function"]["arguments"] = json.dumps({"card_number": 48217730})


def _missing_required(messages):
    messages[8]["tool_calls"][0]["function"]["arguments"] = json.dumps({"member_id": "M-1001"})


def _hallucinated_id(messages):
    messages[4]["tool_calls"][0]["function"]["arguments"] = json.dumps({"member_id": "M-2002"})


def _unknown_tool(messages):
    messages[4]["tool_calls"][0]["function"]["name"] = "get_loans"


def _missing_tool_message(messages):
    del messages[3]


def _not_json_arguments(messages):
    messages[2]["tool_calls"][0]["function"]["arguments"] = "card_number=4821-7730"


def _too_few_patterns() -> dict[str, Any]:
    bad = copy.deepcopy(GROUND_OK)
    bad["patterns"] = ["multi_hop"]
    return bad


FAILING_FIRST_ATTEMPTS = [
    # (stage whose draft fails, bad first reply, expected problem code)
    pytest.param("filter", "Sure! It is relevant.", "invalid_output", id="filter-garbage"),
    pytest.param("extract", _bad_tool_schema(), "invalid_tool_schema", id="tool-schema"),
    pytest.param("extract", _unknown_example_tool(), "unknown_tool", id="blueprint-unknown-tool"),
    pytest.param("extract", '{"workflows": [', "invalid_output", id="extract-truncated"),
    pytest.param("extract", _made_up_quote(), "unsupported_by_source", id="made-up-quote"),
    pytest.param("ground", _with_messages(_user_after_tool), "turn_order", id="turn-order"),
    pytest.param("ground", _with_messages(_wrong_type), "invalid_arguments", id="arg-type"),
    pytest.param(
        "ground", _with_messages(_missing_required), "invalid_arguments", id="arg-required"
    ),
    pytest.param(
        "ground", _with_messages(_not_json_arguments), "malformed_arguments", id="arg-not-json"
    ),
    pytest.param("ground", _with_messages(_unknown_tool), "unknown_tool", id="unknown-tool"),
    pytest.param(
        "ground",
        _with_messages(_missing_tool_message),
        "missing_tool_response",
        id="missing-tool-message",
    ),
    pytest.param(
        "ground", _with_messages(_hallucinated_id), "ungrounded_value", id="hallucinated-id"
    ),
    pytest.param("ground", _too_few_patterns(), "pattern_quota", id="pattern-quota"),
    pytest.param(
        "refine", _with_messages(_hallucinated_id), "ungrounded_value", id="refine-hallucinated-id"
    ),
    pytest.param("judge", {"verdict": "fine"}, "invalid_output", id="judge-wrong-shape"),
]


@pytest.mark.parametrize(("stage", "bad", "code"), FAILING_FIRST_ATTEMPTS)
async def test_a_failing_check_triggers_exactly_one_retry_with_the_feedback(stage, bad, code):
    table = good_table()
    good = table[(stage, "lib")]
    table[(stage, "lib")] = [bad, good]
    out, model = await run(table)
    assert out["rejects"] == [], out["rejects"]
    assert len(out["records"]) == 1
    calls = model.calls_for(stage, "lib")
    assert [c.key.attempt for c in calls] == [1, 2]
    assert "Feedback on your previous answer" not in calls[0].prompt_text
    retry_prompt = calls[1].prompt_text
    assert "Feedback on your previous answer (attempt 1 of" in retry_prompt
    assert f"[{code}]" in retry_prompt
    assert out["records"][0]["usage"][stage]["calls"] == 2


async def test_exhausted_attempts_give_a_reject_with_stage_and_problems():
    table = good_table()
    table[("ground", "lib")] = _with_messages(_hallucinated_id)
    out, model = await run(table)
    assert out["records"] == []
    [reject] = out["rejects"]
    assert reject["stage"] == "ground"
    assert reject["attempts"] == settings().attempts.ground
    assert reject["code"] == "ungrounded_value"
    assert any(
        p["code"] == "ungrounded_value" and "M-2002" in p["message"] for p in reject["problems"]
    )
    assert len(model.calls_for("ground")) == settings().attempts.ground
    assert reject["usage"]["ground"]["calls"] == settings().attempts.ground


async def test_a_made_up_quote_is_sent_back_and_the_real_one_passes():
    table = good_table()
    table[("extract", "lib")] = [_made_up_quote(), EXTRACT_OK]
    out, model = await run(table)
    assert out["rejects"] == [] and len(out["records"]) == 1
    first, second = model.calls_for("extract", "lib")
    assert "unsupported_by_source" not in first.prompt_text
    assert "- [unsupported_by_source] tools[2].quote: tool 'renew_loan': the quote " in (
        second.prompt_text
    )
    assert "Loans can be renewed by phone at any branch." in second.prompt_text


def _consent_extract() -> dict[str, Any]:
    marked = copy.deepcopy(EXTRACT_OK)
    marked["tools"][2]["confirm_before"] = True
    return marked


def _renew_without_asking(messages):
    del messages[6:8]  # the question and the user's yes


async def test_a_confirm_before_tool_called_without_agreement_is_sent_back():
    table = good_table()
    table[("extract", "lib")] = _consent_extract()
    table[("ground", "lib")] = [_with_messages(_renew_without_asking), GROUND_OK]
    out, model = await run(table)
    assert out["rejects"] == [], out["rejects"]
    first, second = model.calls_for("ground", "lib")
    assert "- [missing_confirmation] messages[6].tool_calls[0]: renew_loan" in second.prompt_text
    assert "Tools that need the user's agreement before they are called:\nrenew_loan" in (
        first.prompt_text
    )
    judge_prompt = model.calls_for("judge", "lib")[0].prompt_text
    assert "- Consent for renew_loan:" in judge_prompt


async def test_a_failed_r4_rejects_like_the_other_rubrics():
    table = good_table()
    table[("judge", "lib")] = {
        **JUDGE_OK,
        "r4_policy_and_consent": {"passed": False, "reason": "msg 8 renews without a yes"},
    }
    out, _ = await run(table)
    [reject] = out["rejects"]
    assert reject["stage"] == "judge" and reject["code"] == "judge_failed"
    assert reject["reason"] == "R4: msg 8 renews without a yes"


async def test_a_failed_judge_rubric_rejects_and_keeps_the_reason():
    table = good_table()
    table[("judge", "lib")] = {
        **JUDGE_OK,
        "r3_context_hallucination": {
            "passed": False,
            "reason": "message 10 states a due date never returned",
        },
    }
    out, _ = await run(table)
    [reject] = out["rejects"]
    assert reject["stage"] == "judge"
    assert reject["code"] == "judge_failed"
    assert "R3: message 10 states a due date" in reject["reason"]


class FakeTransportError(Exception):
    def __init__(self, retryable: bool) -> None:
        super().__init__("HTTP 429 rate limited" if retryable else "HTTP 401 invalid api key")
        self.is_retryable = retryable


async def test_a_retryable_transport_error_is_retried_without_using_an_attempt():
    table = good_table()
    failures = {"n": 0}
    base = table[("extract", "lib")]

    def flaky(key, messages):
        if key.stage == "extract" and failures["n"] < 2:
            failures["n"] += 1
            raise FakeTransportError(retryable=True)
        from gem_graph.testing.scripted import table_responder

        return table_responder(table)(key, messages)

    from gem_graph.testing.scripted import ScriptedChatModel

    model = ScriptedChatModel(responder=flaky)
    graph = build_gem_graph(llm=model, settings=settings())
    out = await graph.ainvoke({"document": DOC})
    assert len(out["records"]) == 1
    extract_calls = model.calls_for("extract")
    assert len(extract_calls) == 3  # two transport failures, then the answer
    assert [c.key.attempt for c in extract_calls] == [1, 1, 1]
    assert "Feedback" not in extract_calls[-1].prompt_text
    assert out["records"][0]["usage"]["extract"]["calls"] == 1
    assert base is table[("extract", "lib")]


async def test_a_non_retryable_transport_error_rejects_the_document():
    table = good_table()
    table[("ground", "lib")] = FakeTransportError(retryable=False)
    out, model = await run(table)
    assert out["records"] == []
    [reject] = out["rejects"]
    assert reject["stage"] == "ground"
    assert reject["code"] == "transport"
    assert "not retryable" in reject["reason"] and "401" in reject["reason"]
    assert len(model.calls_for("ground")) == 1


async def test_retryable_errors_that_persist_reject_after_the_retry_budget():
    table = good_table()
    table[("filter", "lib")] = FakeTransportError(retryable=True)
    out, model = await run(table)
    [reject] = out["rejects"]
    assert reject["code"] == "transport" and "after retries" in reject["reason"]
    assert len(model.calls_for("filter")) == settings().model.max_transport_retries + 1


@pytest.mark.parametrize(
    "doc",
    [
        {"id": "e", "text": "   \n\t"},
        {"id": "x", "text": "x" * 50_000},
        {"text": "no id"},
        {"id": "n", "text": None},
    ],
)
async def test_bad_documents_are_rejected_with_a_reason_before_any_model_call(doc):
    out, model = await run(good_table(), doc=doc)
    [reject] = out["rejects"]
    assert reject["stage"] == "intake"
    assert reject["code"] == "invalid_input"
    assert reject["reason"]
    assert model.calls == []


async def test_refine_and_judge_can_be_switched_off():
    out, model = await run(good_table(), refine=False, judge=False)
    [record] = out["records"]
    assert record["judge"] is None
    assert record["stats"]["refined"] is False
    assert [c.key.stage for c in model.calls] == ["filter", "extract", "ground"]


def test_the_factory_validates_its_arguments_eagerly():
    with pytest.raises(TypeError, match="BaseChatModel"):
        build_gem_graph(llm="gpt-4o")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Settings"):
        build_gem_graph(llm=make_model({}), settings={"refine": False})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        build_gem_graph(make_model({}))  # type: ignore[misc]


def test_the_compiled_graph_has_a_name_narrow_schemas_and_no_checkpointer():
    graph = build_gem_graph(llm=make_model({}), settings=settings())
    assert graph.name == "gem_graph"
    assert graph.checkpointer is None
    assert set(graph.get_input_jsonschema()["properties"]) == {"document"}
    assert set(graph.get_output_jsonschema()["properties"]) == {
        "records",
        "rejects",
        "usage",
        "environments",
    }
    uncompiled = build_gem_state_graph(llm=make_model({}), settings=settings())
    assert {
        "filter",
        "extract",
        "check_blueprint",
        "ground",
        "verify",
        "refine",
        "judge",
        "emit",
        "reject",
    } <= set(uncompiled.nodes)


async def test_concurrent_documents_get_deterministic_scripted_answers():
    table = good_table()
    for i in range(6):
        for stage in ("filter", "extract", "ground", "refine", "judge"):
            table[(stage, f"lib{i}")] = table[(stage, "lib")]
    model = make_model(table)
    from gem_graph import asynthesize

    out = await asynthesize(
        [{"id": f"lib{i}", "text": LIBRARY_TEXT} for i in range(6)]
        + [{"id": "news", "text": NEWS_TEXT}],
        llm=model,
        settings=settings(),
        concurrency=4,
    )
    assert sorted(r["source"]["doc_id"] for r in out["records"]) == [f"lib{i}" for i in range(6)]
    assert [r["doc_id"] for r in out["rejects"]] == ["news"]
    assert FILTER_OK["relevant"]


async def test_a_refinement_that_never_passes_keeps_the_verified_grounded_trajectory():
    table = good_table()
    table[("refine", "lib")] = _with_messages(_hallucinated_id)
    out, model = await run(table)
    assert out["rejects"] == []
    [record] = out["records"]
    assert record["stats"]["refined"] is False
    assert record["stats"]["refine_problems"] == ["ungrounded_value"]
    assert record["messages"][1]["content"] == GROUND_OK["messages"][1]["content"]
    assert len(model.calls_for("refine")) == settings().attempts.refine
    assert len(model.calls_for("judge")) == 1


async def test_without_keep_unrefined_an_exhausted_refinement_rejects():
    table = good_table()
    table[("refine", "lib")] = _with_messages(_hallucinated_id)
    out, _ = await run(table, keep_unrefined=False)
    assert out["records"] == []
    [reject] = out["rejects"]
    assert reject["stage"] == "refine" and reject["code"] == "ungrounded_value"


async def test_checks_routes_and_records_run_on_the_event_loop_thread(monkeypatch):
    # LangGraph sends plain functions to the loop's default executor, a handful of threads:
    # at concurrency 32 the graph's own short steps would queue there behind model calls.
    import threading

    import gem_graph.graph
    import gem_graph.nodes
    import gem_graph.stages.extract

    threads: dict[str, set[int]] = {}

    def spy(module: Any, name: str) -> None:
        real = getattr(module, name)

        def recorded(*args: Any, **kwargs: Any) -> Any:
            threads.setdefault(name, set()).add(threading.get_ident())
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, recorded)

    spy(gem_graph.stages.extract, "check_blueprint")  # inside a check node
    spy(gem_graph.nodes, "route_attempt")  # a route
    spy(gem_graph.graph, "build_record")  # the emit node
    out, _ = await run(good_table())
    assert len(out["records"]) == 1
    assert threads == {
        "check_blueprint": {threading.get_ident()},
        "route_attempt": {threading.get_ident()},
        "build_record": {threading.get_ident()},
    }


def _misstated_due_date(messages):
    messages[10]["content"] = (
        "Done: The Hobbit is now due on 2025-01-31. That was its last renewal."
    )


async def test_a_misstated_value_gets_contradicts_output_feedback_and_the_retry_fixes_it():
    table = good_table()
    table[("ground", "lib")] = [_with_messages(_misstated_due_date), GROUND_OK]
    out, model = await run(table)
    assert out["rejects"] == [] and len(out["records"]) == 1
    assert "2025-01-24" in out["records"][0]["messages"][10]["content"]
    first, second = model.calls_for("ground", "lib")
    assert "contradicts_output" not in first.prompt_text
    assert "- [contradicts_output] messages[10]" in second.prompt_text
    assert "2025-01-31" in second.prompt_text and "2025-01-24" in second.prompt_text
