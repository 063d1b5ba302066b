"""Structural checks on dialogues: roles, turn order, tool calls and their arguments."""

from __future__ import annotations

import json

import pytest

from gem_graph.checks.messages import ToolCallSite, find_response, iter_tool_calls, message_text
from gem_graph.checks.trajectory import check_trajectory


def codes(problems):
    return sorted({p["code"] for p in problems})


def set_arguments(messages, index, arguments):
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    messages[index]["tool_calls"][0]["function"]["arguments"] = raw


def test_valid_dialogue_passes(retail_messages, retail_tools):
    assert check_trajectory(retail_messages, retail_tools) == []


def test_extra_keys_and_content_parts_are_accepted(retail_messages, retail_tools):
    for message in retail_messages:
        message["name"] = "x"
        message["refusal"] = None
    retail_messages[1]["content"] = [{"type": "text", "text": "Cancel ORD-1001 please."}]
    assert check_trajectory(retail_messages, retail_tools) == []


# ---- garbage ----------------------------------------------------------------------------


@pytest.mark.parametrize("messages", [None, "hello", {"role": "user"}, 3, []])
def test_messages_must_be_a_non_empty_list(messages, retail_tools):
    assert codes(check_trajectory(messages, retail_tools)) == ["turn_order"]


@pytest.mark.parametrize("entry", [None, "hi", 5, ["user", "hi"]])
def test_non_dict_messages_are_problems(retail_messages, retail_tools, entry):
    retail_messages.insert(7, entry)
    problems = check_trajectory(retail_messages, retail_tools)
    assert "turn_order" in codes(problems)
    assert any(p["where"] == "messages[7]" for p in problems)


@pytest.mark.parametrize("role", ["bot", "function", None, "ASSISTANT"])
def test_role_must_be_known(retail_messages, retail_tools, role):
    retail_messages[12]["role"] = role
    problems = check_trajectory(retail_messages, retail_tools)
    assert codes(problems) == ["turn_order"]
    assert any("role" in p["message"] for p in problems if p["where"] == "messages[12]")


@pytest.mark.parametrize("tools", [None, "tools", [None, 3]])
def test_garbage_tools_make_calls_unknown(retail_messages, tools):
    assert codes(check_trajectory(retail_messages, tools)) == ["unknown_tool"]


@pytest.mark.parametrize("call", [None, "find_orders", 3])
def test_garbage_calls_are_problems(retail_messages, retail_tools, call):
    retail_messages[2]["tool_calls"] = [call]
    problems = check_trajectory(retail_messages, retail_tools)
    assert "turn_order" in codes(problems)  # the bad call, and the now-orphan tool message


def test_tool_calls_must_be_a_list(retail_messages, retail_tools):
    retail_messages[6]["tool_calls"] = "none"
    problems = check_trajectory(retail_messages, retail_tools)
    assert codes(problems) == ["turn_order"]
    assert problems[0]["where"] == "messages[6]"


# ---- message contents ---------------------------------------------------------------------


@pytest.mark.parametrize("index", [0, 1])
def test_system_and_user_need_text(retail_messages, retail_tools, index):
    retail_messages[index]["content"] = "  "
    problems = check_trajectory(retail_messages, retail_tools)
    assert codes(problems) == ["turn_order"]
    assert problems[0]["where"] == f"messages[{index}]"


def test_assistant_needs_text_or_calls(retail_messages, retail_tools):
    retail_messages[6]["content"] = None
    problems = check_trajectory(retail_messages, retail_tools)
    assert codes(problems) == ["turn_order"]
    assert "neither text content nor tool calls" in problems[0]["message"]
    retail_messages[6]["tool_calls"] = []
    assert codes(check_trajectory(retail_messages, retail_tools)) == ["turn_order"]


def test_tool_content_must_be_a_string(retail_messages, retail_tools):
    retail_messages[3]["content"] = {"orders": []}
    problems = check_trajectory(retail_messages, retail_tools)
    assert codes(problems) == ["turn_order"]
    assert problems[0]["where"] == "messages[3]"


def test_only_assistants_call_tools(retail_messages, retail_tools):
    retail_messages[7]["tool_calls"] = retail_messages[8]["tool_calls"]
    assert "turn_order" in codes(check_trajectory(retail_messages, retail_tools))


def test_call_type_must_be_function(retail_messages, retail_tools):
    retail_messages[2]["tool_calls"][0]["type"] = "code"
    problems = check_trajectory(retail_messages, retail_tools)
    assert codes(problems) == ["turn_order"]
    assert problems[0]["where"] == "messages[2].tool_calls[0]"


def test_calls_need_ids(retail_messages, retail_tools):
    del retail_messages[2]["tool_calls"][0]["id"]
    problems = check_trajectory(retail_messages, retail_tools)
    assert codes(problems) == ["orphan_tool_response", "turn_order"]


# ---- turn order ---------------------------------------------------------------------------


def test_system_comes_first(retail_messages, retail_tools):
    retail_messages.insert(0, retail_messages.pop(1))
    problems = check_trajectory(retail_messages, retail_tools)
    assert codes(problems) == ["turn_order"]
    assert any(p["where"] == "messages[0]" for p in problems)


def test_only_one_system_message(retail_messages, retail_tools):
    retail_messages.insert(7, {"role": "system", "content": "New rules."})
    problems = check_trajectory(retail_messages, retail_tools)
    assert codes(problems) == ["turn_order"]
    assert problems[0]["where"] == "messages[7]"


def test_assistant_may_open_after_system(retail_messages, retail_tools):
    retail_messages.insert(1, {"role": "assistant", "content": "Hello, how can I help?"})
    assert check_trajectory(retail_messages, retail_tools) == []


def test_two_user_turns_in_a_row(retail_messages, retail_tools):
    retail_messages.insert(2, {"role": "user", "content": "Also, hurry."})
    problems = check_trajectory(retail_messages, retail_tools)
    assert codes(problems) == ["turn_order"]
    assert problems[0]["where"] == "messages[2]"


def test_no_user_turn_straight_after_a_tool_turn(retail_messages, retail_tools):
    del retail_messages[6]  # the assistant's reply to the get_order output
    problems = check_trajectory(retail_messages, retail_tools)
    assert codes(problems) == ["turn_order"]
    assert "directly after a tool turn" in problems[0]["message"]


def test_two_assistant_turns_in_a_row(retail_messages, retail_tools):
    retail_messages.insert(7, {"role": "assistant", "content": "Hello?"})
    problems = check_trajectory(retail_messages, retail_tools)
    assert codes(problems) == ["turn_order"]
    assert problems[0]["where"] == "messages[7]"


def test_assistant_may_call_again_after_tool_output(retail_messages, retail_tools):
    # messages[4] calls get_order right after the find_orders output: that is allowed.
    assert retail_messages[4]["tool_calls"]
    assert check_trajectory(retail_messages, retail_tools) == []


def test_dialogue_ends_with_an_assistant_text_turn(retail_messages, retail_tools):
    del retail_messages[12]
    problems = check_trajectory(retail_messages, retail_tools)
    assert codes(problems) == ["turn_order"]
    assert "must end with an assistant message" in problems[0]["message"]


def test_dialogue_cannot_end_on_a_tool_turn(retail_messages, retail_tools):
    del retail_messages[10:]
    assert codes(check_trajectory(retail_messages, retail_tools)) == ["turn_order"]


def test_needs_a_user_turn(retail_tools):
    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "assistant", "content": "Hello."},
    ]
    problems = check_trajectory(messages, retail_tools)
    assert codes(problems) == ["turn_order"]
    assert "no user turn" in problems[0]["message"]


# ---- tool responses -----------------------------------------------------------------------


def test_every_call_needs_a_response(retail_messages, retail_tools):
    del retail_messages[3]
    problems = check_trajectory(retail_messages, retail_tools)
    assert codes(problems) == ["missing_tool_response"]
    assert problems[0]["where"] == "messages[2]"
    assert "'call_1'" in problems[0]["message"]


def test_response_must_come_before_the_next_turn(retail_messages, retail_tools):
    # The answer to call_1 arrives after an intervening assistant turn.
    retail_messages.insert(3, {"role": "assistant", "content": "One moment."})
    problems = check_trajectory(retail_messages, retail_tools)
    assert "missing_tool_response" in codes(problems)
    assert "orphan_tool_response" in codes(problems)


def test_parallel_calls_are_each_answered(retail_messages, retail_tools):
    second = json.loads(json.dumps(retail_messages[4]["tool_calls"][0]))
    retail_messages[2]["tool_calls"].append(second)
    del retail_messages[4]  # the separate get_order call; its response now answers call_2
    assert check_trajectory(retail_messages, retail_tools) == []
    del retail_messages[4]  # drop the answer to call_2
    assert codes(check_trajectory(retail_messages, retail_tools)) == ["missing_tool_response"]


def test_tool_message_with_unknown_id_is_orphan(retail_messages, retail_tools):
    retail_messages[3]["tool_call_id"] = "call_9"
    problems = check_trajectory(retail_messages, retail_tools)
    assert codes(problems) == ["missing_tool_response", "orphan_tool_response"]


@pytest.mark.parametrize("call_id", [None, 1, ""])
def test_tool_message_without_usable_id_is_orphan(retail_messages, retail_tools, call_id):
    retail_messages[3]["tool_call_id"] = call_id
    assert "orphan_tool_response" in codes(check_trajectory(retail_messages, retail_tools))


def test_second_answer_to_a_call_is_orphan(retail_messages, retail_tools):
    retail_messages.insert(4, dict(retail_messages[3]))
    problems = check_trajectory(retail_messages, retail_tools)
    assert codes(problems) == ["orphan_tool_response"]
    assert problems[0]["where"] == "messages[4]"


def test_tool_message_after_user_is_orphan(retail_messages, retail_tools):
    retail_messages.insert(8, {"role": "tool", "tool_call_id": "call_3", "content": "{}"})
    assert "orphan_tool_response" in codes(check_trajectory(retail_messages, retail_tools))


def test_call_ids_are_unique(retail_messages, retail_tools):
    retail_messages[4]["tool_calls"][0]["id"] = "call_1"
    retail_messages[5]["tool_call_id"] = "call_1"
    problems = check_trajectory(retail_messages, retail_tools)
    assert "turn_order" in codes(problems)
    assert any("already used" in p["message"] for p in problems)


# ---- tool names and arguments ------------------------------------------------------------


def test_calls_name_defined_tools(retail_messages, retail_tools):
    retail_messages[4]["tool_calls"][0]["function"]["name"] = "lookup_order"
    problems = check_trajectory(retail_messages, retail_tools)
    assert codes(problems) == ["unknown_tool"]
    assert problems[0]["where"] == "messages[4].tool_calls[0]"
    assert "lookup_order" in problems[0]["message"]


def test_call_without_function_is_unknown_tool(retail_messages, retail_tools):
    del retail_messages[4]["tool_calls"][0]["function"]
    assert codes(check_trajectory(retail_messages, retail_tools)) == ["unknown_tool"]


@pytest.mark.parametrize("raw", ["{order_id: 'ORD-1001'}", "[]", '"ORD-1001"', "", "null"])
def test_arguments_must_be_a_json_object(retail_messages, retail_tools, raw):
    set_arguments(retail_messages, 4, raw)
    problems = check_trajectory(retail_messages, retail_tools)
    assert codes(problems) == ["malformed_arguments"]
    assert problems[0]["where"] == "messages[4].tool_calls[0]"


@pytest.mark.parametrize("raw", [{"order_id": "ORD-1001"}, None, 42])
def test_arguments_must_be_a_string(retail_messages, retail_tools, raw):
    retail_messages[4]["tool_calls"][0]["function"]["arguments"] = raw
    assert codes(check_trajectory(retail_messages, retail_tools)) == ["malformed_arguments"]


def test_argument_type_is_checked(retail_messages, retail_tools):
    set_arguments(retail_messages, 4, {"order_id": 1001})
    problems = check_trajectory(retail_messages, retail_tools)
    assert codes(problems) == ["invalid_arguments"]
    assert "'order_id'" in problems[0]["message"]
    assert "string" in problems[0]["message"]


def test_required_arguments_are_checked(retail_messages, retail_tools):
    set_arguments(retail_messages, 8, {"order_id": "ORD-1001"})
    problems = check_trajectory(retail_messages, retail_tools)
    assert codes(problems) == ["invalid_arguments"]
    assert "missing required argument 'reason'" in problems[0]["message"]


def test_enum_is_checked(retail_messages, retail_tools):
    set_arguments(retail_messages, 8, {"order_id": "ORD-1001", "reason": "bored"})
    assert codes(check_trajectory(retail_messages, retail_tools)) == ["invalid_arguments"]


def test_unexpected_argument_with_additional_properties_false(retail_messages, retail_tools):
    set_arguments(retail_messages, 4, {"order_id": "ORD-1001", "verbose": True})
    problems = check_trajectory(retail_messages, retail_tools)
    assert codes(problems) == ["invalid_arguments"]
    assert len(problems) == 1  # reported once, not also by jsonschema
    assert "unexpected argument 'verbose'" in problems[0]["message"]


def test_undeclared_argument_is_invalid_even_without_additional_properties(
    retail_messages, retail_tools
):
    assert "additionalProperties" not in retail_tools[2]["function"]["parameters"]
    set_arguments(retail_messages, 8, {"order_id": "ORD-1001", "reason": "changed_mind", "x": 1})
    problems = check_trajectory(retail_messages, retail_tools)
    assert codes(problems) == ["invalid_arguments"]
    assert "'x'" in problems[0]["message"]


def test_optional_arguments_may_be_given(retail_messages, retail_tools):
    set_arguments(
        retail_messages, 8, {"order_id": "ORD-1001", "reason": "changed_mind", "notify": False}
    )
    assert check_trajectory(retail_messages, retail_tools) == []


def test_broken_tool_schema_does_not_crash(retail_messages, retail_tools):
    retail_tools[1]["function"]["parameters"] = {"type": "object", "properties": {}, "minimum": "x"}
    problems = check_trajectory(retail_messages, retail_tools)
    assert "invalid_tool_schema" in codes(problems)


# ---- helpers ------------------------------------------------------------------------------


def test_iter_tool_calls_pairs_calls_with_responses(retail_messages):
    sites = list(iter_tool_calls(retail_messages))
    assert [(s.message_index, s.call_index) for s in sites] == [(2, 0), (4, 0), (8, 0)]
    assert all(isinstance(s, ToolCallSite) for s in sites)
    message_index, call_index, call, response = sites[1]
    assert (message_index, call_index) == (4, 0)
    assert call["function"]["name"] == "get_order"
    assert response is retail_messages[5]


def test_iter_tool_calls_reports_missing_responses_as_none(retail_messages):
    del retail_messages[9]
    sites = list(iter_tool_calls(retail_messages))
    assert sites[2].response is None


@pytest.mark.parametrize("garbage", [None, "x", [None, 1, {"role": "assistant"}]])
def test_iter_tool_calls_skips_garbage(garbage):
    assert list(iter_tool_calls(garbage)) == []


def test_find_response(retail_messages):
    assert find_response(retail_messages, 2, "call_1") == 3
    assert find_response(retail_messages, 2, "call_2") is None
    assert find_response(retail_messages, 2, None) is None
    assert find_response(None, 0, "call_1") is None


def test_message_text():
    assert message_text({"content": "hi"}) == "hi"
    assert message_text({"content": [{"type": "text", "text": "a"}, {"x": 1}, "b"]}) == "a"
    assert message_text({"content": None}) == ""
    assert message_text(None) == ""
