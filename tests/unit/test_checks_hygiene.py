"""Dialogue hygiene: loops of identical calls, runaway length, tool code in the prompt."""

from __future__ import annotations

import json

import pytest

from gem_graph.checks.dialogue import DialogueContext, check_dialogue
from gem_graph.checks.hygiene import check_hygiene

TOOLS_PY = '''from gem_graph.runtime import ToolError


def get_order(db, order_id):
    """Return one order."""
    row = db.execute("SELECT id, status FROM orders WHERE id = ?", (order_id,)).fetchone()
    if row is None:
        raise ToolError("no such order")
    return {"order_id": row[0], "status": row[1]}
'''


def codes(problems):
    return sorted({p["code"] for p in problems})


def call(arguments, call_id, name="get_order"):
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


def looping(times, arguments=None, user_between=False):
    """A dialogue calling get_order `times` times in a row."""
    messages = [
        {"role": "system", "content": "You help with orders."},
        {"role": "user", "content": "Where is order A1?"},
    ]
    for n in range(times):
        if user_between and n:
            messages.append({"role": "assistant", "content": "Still pending."})
            messages.append({"role": "user", "content": "Check again?"})
        args = arguments(n) if arguments else {"order_id": "A1"}
        messages.append({"role": "assistant", "content": None, "tool_calls": [call(args, f"c{n}")]})
        messages.append({"role": "tool", "tool_call_id": f"c{n}", "content": '{"status": "x"}'})
    messages.append({"role": "assistant", "content": "It is pending."})
    return messages


def test_a_run_of_identical_calls_beyond_the_limit_is_repetition():
    assert check_hygiene(looping(3), max_identical_calls=3) == []
    problems = check_hygiene(looping(5), max_identical_calls=3)
    assert [(p["code"], p["where"]) for p in problems] == [
        ("repetition", "messages[8].tool_calls[0]")
    ]
    assert "4 times in a row" in problems[0]["message"]


def test_arguments_are_compared_as_json():
    def reordered(n):
        return {"order_id": "A1", "verbose": True} if n % 2 else {"verbose": True, "order_id": "A1"}

    assert codes(check_hygiene(looping(4, reordered), max_identical_calls=3)) == ["repetition"]


def test_different_arguments_or_a_user_turn_break_the_run():
    assert check_hygiene(looping(6, lambda n: {"order_id": f"A{n}"}), max_identical_calls=3) == []
    assert check_hygiene(looping(6, user_between=True), max_identical_calls=3) == []


def test_more_messages_than_the_limit_is_too_long():
    messages = looping(2)
    assert check_hygiene(messages, max_messages=len(messages)) == []
    problems = check_hygiene(messages, max_messages=len(messages) - 1)
    assert [(p["code"], p["where"]) for p in problems] == [("too_long", "messages")]


def test_a_tool_definition_in_the_system_prompt_is_a_leak():
    messages = looping(1)
    messages[0]["content"] = "You help with orders. Tools:\ndef get_order(db, order_id): ..."
    problems = check_hygiene(messages, tool_sources=TOOLS_PY)
    assert [(p["code"], p["where"]) for p in problems] == [("leak", "messages[0]")]
    assert "'def get_order('" in problems[0]["message"]


def test_copied_lines_of_tool_code_are_a_leak():
    messages = looping(1)
    body = TOOLS_PY.split('"""Return one order."""')[1]
    messages[0]["content"] = "You help with orders. The lookup works like this:" + body
    assert codes(check_hygiene(messages, tool_sources=TOOLS_PY)) == ["leak"]


def test_describing_the_tools_is_not_a_leak():
    messages = looping(1)
    messages[0]["content"] = (
        "You help with orders. Use get_order(order_id) to look an order up; it fails with "
        "'no such order' when the id is unknown. Never write code like def helper(x)."
    )
    assert check_hygiene(messages, tool_sources=TOOLS_PY) == []
    assert check_hygiene(messages, tool_sources=None) == []


def test_check_dialogue_applies_the_context_limits():
    context = DialogueContext(max_identical_calls=2, max_messages=8, tool_sources=TOOLS_PY)
    problems = check_dialogue(looping(3), None, context)
    assert {"repetition", "too_long"} <= set(codes(problems))


@pytest.mark.parametrize("messages", [None, "x", 3, [None, 7, "hi", {"role": 1}]])
def test_garbage_never_raises(messages):
    problems = check_hygiene(messages, max_messages=10, tool_sources="def f(:")
    assert problems == []
