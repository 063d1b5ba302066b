"""Source faithfulness: blueprint quotes must occur in the text; records locate them."""

from __future__ import annotations

import copy

import pytest

from gem_graph.checks.blueprint import check_blueprint
from gem_graph.checks.source import MAX_QUOTE_CHARS, check_quotes, find_quote, source_spans
from gem_graph.stages.extract import blueprint_from_draft


def test_a_quote_matches_across_case_and_whitespace_and_maps_back_to_the_text():
    text = "Step 2.  Pending orders can be\n   CANCELLED; shipped ones cannot."
    span = find_quote(text, "pending orders can be cancelled;")
    assert span is not None
    start, end = span
    assert text[start:end] == "Pending orders can be\n   CANCELLED;"


def test_typographic_quotes_and_case_folding_keep_offsets_right():
    text = "Die Straße ist gesperrt. We can’t ship there."
    assert find_quote(text, "we can't ship") == (25, 38)
    start, end = find_quote(text, "STRASSE ist")  # type: ignore[misc]
    assert text[start:end] == "Straße ist"


@pytest.mark.parametrize("quote", ["", "   ", "ancel", "orders can be cancelled, always", None])
def test_fragments_empty_and_made_up_quotes_are_not_found(quote):
    assert find_quote("Pending orders can be cancelled.", quote) is None


def test_the_retail_blueprint_quotes_its_source(retail_blueprint, retail_source):
    assert check_blueprint(retail_blueprint, retail_source) == []


def test_a_made_up_tool_quote_is_unsupported_and_names_the_tool(retail_blueprint, retail_source):
    retail_blueprint["tools"][2]["quote"] = "Orders can be cancelled at any time by phone."
    problems = check_blueprint(retail_blueprint, retail_source)
    assert [(p["code"], p["where"]) for p in problems] == [
        ("unsupported_by_source", "tools[2].quote")
    ]
    assert "'cancel_order'" in problems[0]["message"]
    assert "does not occur in the text" in problems[0]["message"]


def test_made_up_step_and_rule_quotes_are_unsupported(retail_blueprint, retail_source):
    retail_blueprint["workflows"][0]["steps"][1]["quote"] = "Call us to check the status."
    retail_blueprint["rules"][0]["quote"] = "Only pending orders qualify."
    problems = check_blueprint(retail_blueprint, retail_source)
    assert [p["where"] for p in problems] == [
        "workflows[0].steps[1].quote",
        "rules[0].quote",
    ]
    assert "workflow 'cancel_order' step 1" in problems[0]["message"]
    assert {p["code"] for p in problems} == {"unsupported_by_source"}


def test_quotes_are_required_even_without_the_text(retail_blueprint):
    del retail_blueprint["tools"][0]["quote"]
    retail_blueprint["rules"][0]["quote"] = "x"
    problems = check_blueprint(retail_blueprint)
    assert [(p["code"], p["where"]) for p in problems] == [
        ("unsupported_by_source", "tools[0].quote"),
        ("unsupported_by_source", "rules[0].quote"),
    ]
    assert "has no quote" in problems[0]["message"]
    assert "single word" in problems[1]["message"]


def test_a_quote_of_the_whole_document_is_too_long(retail_blueprint):
    retail_blueprint["tools"][0]["quote"] = "word " * (MAX_QUOTE_CHARS // 4)
    problems = check_quotes(retail_blueprint, None)
    assert [p["where"] for p in problems] == ["tools[0].quote"]


def test_blueprints_from_before_quotes_load_and_get_clear_feedback(retail_blueprint, retail_source):
    old = copy.deepcopy(retail_blueprint)
    for tool in old["tools"]:
        del tool["quote"], tool["confirm_before"]
    old["workflows"][0]["steps"] = [s["step"] for s in old["workflows"][0]["steps"]]
    old["rules"] = [r["rule"] for r in old["rules"]]
    problems = check_blueprint(old, retail_source)
    assert {p["code"] for p in problems} == {"unsupported_by_source"}
    assert "workflows[0].steps[0]" in {p["where"] for p in problems}
    assert any('{"step", "quote"}' in p["message"] for p in problems)
    blueprint = blueprint_from_draft(old)  # still converts
    assert blueprint["workflows"][0]["steps"][0] == "Find the customer's orders by email."
    assert blueprint["rules"] == ["An order can be cancelled only while its status is pending."]
    assert blueprint["confirm_before"] == []
    assert source_spans(blueprint, retail_source)["tools"]["find_orders"] is None  # type: ignore[index]


def test_confirm_before_marks_only_write_tools(retail_blueprint, retail_source):
    retail_blueprint["tools"][1]["confirm_before"] = True  # get_order is read-only
    problems = check_blueprint(retail_blueprint, retail_source)
    assert [(p["code"], p["where"]) for p in problems] == [
        ("invalid_blueprint", "tools[1].confirm_before")
    ]
    retail_blueprint["tools"][1]["confirm_before"] = "yes"
    problems = check_blueprint(retail_blueprint, retail_source)
    assert [p["where"] for p in problems] == ["tools[1].confirm_before"]


def test_the_blueprint_carries_consent_and_quotes_and_spans_locate_them(
    retail_blueprint, retail_source
):
    blueprint = blueprint_from_draft(retail_blueprint)
    assert blueprint["confirm_before"] == ["cancel_order"]
    assert blueprint["workflows"][0]["steps"] == [
        "Find the customer's orders by email.",
        "Check the order's status with get_order.",
        "Cancel it if it is still pending.",
    ]
    spans = source_spans(blueprint, retail_source)
    assert spans is not None
    start, end = spans["tools"]["cancel_order"]
    assert retail_source[start:end] == "Choose a reason and confirm: a cancellation is final"
    assert [s["step"] for s in spans["steps"]] == blueprint["workflows"][0]["steps"]
    assert all(s["workflow"] == "cancel_order" and s["span"] for s in spans["steps"])
    [rule] = spans["rules"]
    start, end = rule["span"]
    assert retail_source[start:end] == "Pending orders can be cancelled; shipped orders cannot."
    assert rule["rule"] == blueprint["rules"][0]


def test_no_quotes_no_spans():
    assert source_spans({"tools": [], "rules": ["r"]}, "text") is None
    assert source_spans(None, "text") is None
