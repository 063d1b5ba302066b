"""Tool-definition checks and the conversion of drafted tools."""

from __future__ import annotations

import json

import pytest

from gem_graph.checks.tools import (
    check_tool,
    check_tools,
    read_only_names,
    tool_parameters,
    tools_from_drafts,
)


def codes(problems):
    return sorted({p["code"] for p in problems})


def params(tools, index=0):
    return tools[index]["function"]["parameters"]


def test_valid_tools_pass(retail_tools):
    assert check_tools(retail_tools) == []


def test_tool_without_arguments_passes():
    tool = {
        "type": "function",
        "function": {
            "name": "list_categories",
            "description": "List every product category.",
            "parameters": {"type": "object", "properties": {}},
        },
    }
    assert check_tool(tool) == []


@pytest.mark.parametrize("garbage", [None, "tools", 3, {"type": "function"}])
def test_tools_must_be_a_list(garbage):
    assert codes(check_tools(garbage)) == ["invalid_tool_schema"]


@pytest.mark.parametrize("entry", [None, "get_order", 7, [], {}])
def test_garbage_entries_are_problems(retail_tools, entry):
    problems = check_tools([*retail_tools, entry])
    assert codes(problems) == ["invalid_tool_schema"]
    assert all(p["where"].startswith("tools[3]") for p in problems)


def test_type_must_be_function(retail_tools):
    retail_tools[0]["type"] = "tool"
    problems = check_tools(retail_tools)
    assert codes(problems) == ["invalid_tool_schema"]
    assert "find_orders" in problems[0]["message"]


def test_function_must_be_an_object(retail_tools):
    retail_tools[1]["function"] = "get_order"
    assert codes(check_tools(retail_tools)) == ["invalid_tool_schema"]


@pytest.mark.parametrize("name", ["GetOrder", "get-order", "1get", "", "a" * 65, None, 5])
def test_names_are_snake_case(retail_tools, name):
    retail_tools[1]["function"]["name"] = name
    problems = check_tools(retail_tools)
    assert codes(problems) == ["invalid_tool_schema"]
    assert problems[0]["where"] == "tools[1].function.name"


def test_names_are_unique(retail_tools):
    retail_tools[2]["function"]["name"] = "get_order"
    problems = check_tools(retail_tools)
    assert codes(problems) == ["invalid_tool_schema"]
    assert "defined twice" in problems[0]["message"]
    assert problems[0]["where"] == "tools[2]"


@pytest.mark.parametrize("description", ["", "   ", None, 12])
def test_description_is_required(retail_tools, description):
    retail_tools[0]["function"]["description"] = description
    problems = check_tools(retail_tools)
    assert codes(problems) == ["invalid_tool_schema"]
    assert problems[0]["where"] == "tools[0].function.description"


@pytest.mark.parametrize("parameters", [None, "{}", [], 3])
def test_parameters_must_be_an_object(retail_tools, parameters):
    retail_tools[0]["function"]["parameters"] = parameters
    assert codes(check_tools(retail_tools)) == ["invalid_tool_schema"]


def test_parameters_are_meta_validated(retail_tools):
    params(retail_tools)["properties"]["email"]["type"] = "strng"
    problems = check_tools(retail_tools)
    assert codes(problems) == ["invalid_tool_schema"]
    assert "not a valid JSON Schema" in problems[0]["message"]


def test_parameters_type_must_be_object(retail_tools):
    params(retail_tools)["type"] = "array"
    problems = check_tools(retail_tools)
    assert codes(problems) == ["invalid_tool_schema"]
    assert '"type": "object"' in problems[0]["message"]


def test_parameters_need_properties(retail_tools):
    del params(retail_tools)["properties"]
    del params(retail_tools)["required"]
    assert codes(check_tools(retail_tools)) == ["invalid_tool_schema"]


def test_required_names_declared_properties(retail_tools):
    params(retail_tools, 1)["required"] = ["order_id", "customer_id"]
    problems = check_tools(retail_tools)
    assert codes(problems) == ["invalid_tool_schema"]
    assert "'customer_id'" in problems[0]["message"]
    assert problems[0]["where"] == "tools[1].function.parameters.required"


@pytest.mark.parametrize("required", ["order_id", [{}], [None]])
def test_required_must_list_names(retail_tools, required):
    params(retail_tools, 1)["required"] = required
    assert codes(check_tools(retail_tools)) == ["invalid_tool_schema"]


def test_every_property_has_a_type(retail_tools):
    del params(retail_tools, 1)["properties"]["order_id"]["type"]
    problems = check_tools(retail_tools)
    assert codes(problems) == ["invalid_tool_schema"]
    assert problems[0]["where"] == "tools[1].function.parameters.properties.order_id"


def test_enum_counts_as_a_type(retail_tools):
    del params(retail_tools, 2)["properties"]["reason"]["type"]
    assert check_tools(retail_tools) == []


@pytest.mark.parametrize("name", ["order-id", "class", "db", "2nd"])
def test_property_names_work_as_keyword_arguments(retail_tools, name):
    parameters = params(retail_tools, 1)
    parameters["properties"][name] = {"type": "string", "description": "x"}
    problems = check_tools(retail_tools)
    assert codes(problems) == ["invalid_tool_schema"]
    assert name in problems[0]["message"]


def test_drafts_convert_to_openai_tools(retail_drafts, retail_tools):
    tools, problems = tools_from_drafts(retail_drafts)
    assert problems == []
    assert tools == retail_tools


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"object"', None, {"type": "object"}])
def test_unusable_parameters_json_is_reported_and_dropped(retail_drafts, raw):
    retail_drafts[1]["parameters_json"] = raw
    tools, problems = tools_from_drafts(retail_drafts)
    assert codes(problems) == ["invalid_tool_schema"]
    assert problems[0]["where"] == "tools[1].parameters_json"
    assert "get_order" in problems[0]["message"]
    assert [t["function"]["name"] for t in tools] == ["find_orders", "cancel_order"]


@pytest.mark.parametrize("drafts", [None, "tools", [None], [{"description": "no name"}]])
def test_garbage_drafts_are_problems(drafts):
    tools, problems = tools_from_drafts(drafts)
    assert tools == []
    assert codes(problems) == ["invalid_tool_schema"]


def test_read_only_names(retail_drafts):
    assert read_only_names(retail_drafts) == ["find_orders", "get_order"]


def test_read_only_names_needs_a_true_flag(retail_drafts):
    retail_drafts[0]["read_only"] = "yes"
    assert read_only_names([*retail_drafts, None, {"read_only": True}]) == ["get_order"]
    assert read_only_names(None) == []


def test_tool_parameters_skips_garbage(retail_tools):
    found = tool_parameters([None, *retail_tools, {"function": {"name": 3}}])
    assert sorted(found) == ["cancel_order", "find_orders", "get_order"]
    assert found["get_order"] == params(retail_tools, 1)
    assert tool_parameters("x") == {}


def test_problems_are_json_serialisable(retail_tools):
    retail_tools[0]["function"]["parameters"] = {"type": 5}
    json.dumps(check_tools(retail_tools))
