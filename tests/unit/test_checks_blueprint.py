"""Checks on the extraction output (workflows, drafted tools, rules)."""

from __future__ import annotations

import json

import pytest

from gem_graph.checks.blueprint import check_blueprint


def codes(problems):
    return sorted({p["code"] for p in problems})


def example(blueprint, index):
    return blueprint["workflows"][0]["example_calls"][index]


def step(text):
    return {"step": text, "quote": "Pending orders can be cancelled"}


def test_valid_blueprint_passes(retail_blueprint):
    assert check_blueprint(retail_blueprint) == []


@pytest.mark.parametrize("garbage", [None, [], "blueprint", 0])
def test_blueprint_must_be_an_object(garbage):
    assert codes(check_blueprint(garbage)) == ["invalid_blueprint"]


def test_garbage_fields_are_problems_not_exceptions():
    for workflows in ("none", 1.5, {"a": 1}):
        problems = check_blueprint({"workflows": workflows, "tools": "x", "rules": None})
        assert codes(problems) == ["invalid_blueprint"]
    problems = check_blueprint({"workflows": [None, {"example_calls": [None, 3]}], "tools": []})
    assert "invalid_blueprint" in codes(problems)
    assert "malformed_arguments" in codes(problems)


def test_needs_a_workflow(retail_blueprint):
    retail_blueprint["workflows"] = []
    problems = check_blueprint(retail_blueprint)
    assert "invalid_blueprint" in codes(problems)
    assert any(p["where"] == "workflows" for p in problems)


def test_needs_a_multi_step_workflow(retail_blueprint):
    retail_blueprint["workflows"][0]["steps"] = [step("Cancel the order with cancel_order.")]
    problems = check_blueprint(retail_blueprint)
    assert codes(problems) == ["invalid_blueprint"]
    assert "2 or more steps" in problems[0]["message"]


def test_needs_a_read_tool(retail_blueprint):
    for draft in retail_blueprint["tools"]:
        draft["read_only"] = False
    problems = check_blueprint(retail_blueprint)
    assert codes(problems) == ["invalid_blueprint"]
    assert "read-only" in problems[0]["message"]


def test_needs_a_write_tool(retail_blueprint):
    for draft in retail_blueprint["tools"]:
        draft["read_only"] = True
        draft["confirm_before"] = False
    problems = check_blueprint(retail_blueprint)
    assert codes(problems) == ["invalid_blueprint"]
    assert "changes state" in problems[0]["message"]


def test_tool_schema_problems_point_at_the_draft(retail_blueprint):
    retail_blueprint["tools"][1]["parameters_json"] = json.dumps(
        {"type": "object", "properties": {"order_id": {"description": "no type"}}}
    )
    problems = check_blueprint(retail_blueprint)
    assert codes(problems) == ["invalid_tool_schema"]
    assert problems[0]["where"] == "tools[1].parameters_json.properties.order_id"


@pytest.mark.parametrize(
    "raw", ["{broken", '{"type": "object", "properties": {"order_id": {"type": "date"}}}']
)
def test_broken_tool_schema_is_reported_once(retail_blueprint, raw):
    retail_blueprint["tools"][1]["parameters_json"] = raw
    problems = check_blueprint(retail_blueprint)
    # The example call to get_order is not also reported (unknown tool, unusable schema).
    assert len(problems) == 1
    assert codes(problems) == ["invalid_tool_schema"]
    assert problems[0]["where"].startswith("tools[1].parameters_json")


def test_duplicate_tool_names(retail_blueprint):
    retail_blueprint["tools"].append(dict(retail_blueprint["tools"][0]))
    problems = check_blueprint(retail_blueprint)
    assert codes(problems) == ["invalid_tool_schema"]
    assert "defined twice" in problems[0]["message"]


def test_example_call_names_a_defined_tool(retail_blueprint):
    example(retail_blueprint, 1)["tool"] = "lookup_order"
    problems = check_blueprint(retail_blueprint)
    assert codes(problems) == ["unknown_tool"]
    assert problems[0]["where"] == "workflows[0].example_calls[1]"
    assert "lookup_order" in problems[0]["message"]


@pytest.mark.parametrize("raw", ["{order_id: ORD-1}", "[]", "", None, {"order_id": "ORD-1"}])
def test_example_arguments_must_be_a_json_object_string(retail_blueprint, raw):
    example(retail_blueprint, 1)["arguments_json"] = raw
    assert codes(check_blueprint(retail_blueprint)) == ["malformed_arguments"]


@pytest.mark.parametrize(
    "arguments",
    [
        {},
        {"order_id": 1001},
        {"order_id": "ORD-1001", "customer": "jane"},
    ],
)
def test_example_arguments_validate(retail_blueprint, arguments):
    example(retail_blueprint, 1)["arguments_json"] = json.dumps(arguments)
    assert codes(check_blueprint(retail_blueprint)) == ["invalid_arguments"]


def test_every_tool_is_used(retail_blueprint):
    retail_blueprint["tools"].append(
        {
            "name": "update_address",
            "description": "Change the shipping address of a pending order.",
            "parameters_json": '{"type": "object", "properties": {}}',
            "read_only": False,
            "confirm_before": False,
            "quote": "shipped orders cannot",
        }
    )
    problems = check_blueprint(retail_blueprint)
    assert codes(problems) == ["invalid_blueprint"]
    assert "update_address" in problems[0]["message"]
    assert problems[0]["where"] == "tools[3]"
    retail_blueprint["workflows"][0]["steps"].append(step("Optionally call update_address."))
    assert check_blueprint(retail_blueprint) == []


def test_mention_in_graph_counts_as_use(retail_blueprint):
    retail_blueprint["workflows"][0]["example_calls"] = []
    retail_blueprint["workflows"][0]["steps"] = [step("Look up."), step("Cancel.")]
    assert check_blueprint(retail_blueprint) == []
    retail_blueprint["workflows"][0]["graph"] = "(find_orders)->(cancel_order)"
    problems = check_blueprint(retail_blueprint)
    assert codes(problems) == ["invalid_blueprint"]
    assert "get_order" in problems[0]["message"]


def test_needs_constraints_or_rules(retail_blueprint):
    retail_blueprint["rules"] = []
    assert check_blueprint(retail_blueprint) == []
    retail_blueprint["workflows"][0]["constraints"] = ["  "]
    problems = check_blueprint(retail_blueprint)
    assert codes(problems) == ["invalid_blueprint"]
    assert problems[0]["where"] == "rules"
