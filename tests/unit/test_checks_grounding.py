"""Mechanical R1: argument values and stated ids must appear earlier in the dialogue."""

from __future__ import annotations

import json

import pytest
from dialogue_helpers import call, codes

from gem_graph.checks.grounding import check_grounding, stated_ids


def tool(name, properties):
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"The {name} tool.",
            "parameters": {"type": "object", "properties": properties},
        },
    }


def dialogue(user_text, arguments, name="lookup", system="You are a support assistant."):
    """system, user, one call with `arguments`, its output, a closing assistant turn."""
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": user_text},
        {"role": "assistant", "content": None, "tool_calls": [call(name, arguments)]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"ok": true}'},
        {"role": "assistant", "content": "Done."},
    ]


def grounded(user_text, value, schema=None, system="You are a support assistant."):
    """True when `value`, passed as argument `x`, is grounded by `user_text`."""
    tools = [tool("lookup", {"x": schema or {"type": "string"}})]
    return check_grounding(dialogue(user_text, {"x": value}, system=system), tools) == []


def test_valid_dialogue_is_grounded(retail_messages, retail_tools):
    assert check_grounding(retail_messages, retail_tools) == []


def test_invented_argument_is_reported(retail_messages, retail_tools):
    retail_messages[4]["tool_calls"][0]["function"]["arguments"] = '{"order_id": "ORD-1003"}'
    problems = check_grounding(retail_messages, retail_tools)
    assert codes(problems) == ["ungrounded_value"]
    assert problems[0]["where"] == "messages[4].tool_calls[0]"
    assert "'order_id' = 'ORD-1003' does not appear earlier" in problems[0]["message"]


def test_value_from_an_earlier_tool_output_is_grounded(retail_messages, retail_tools):
    # ORD-1002 was never typed by the user, but find_orders returned it.
    retail_messages[4]["tool_calls"][0]["function"]["arguments"] = '{"order_id": "ORD-1002"}'
    assert check_grounding(retail_messages, retail_tools) == []


def test_value_only_said_later_is_not_grounded(retail_messages, retail_tools):
    retail_messages[1]["content"] = "Hi, I'd like to cancel an order."
    problems = check_grounding(retail_messages, retail_tools)
    assert codes(problems) == ["ungrounded_value"]
    assert problems[0]["where"] == "messages[2].tool_calls[0]"
    assert "jane.doe@example.com" in problems[0]["message"]


def test_assistant_cannot_ground_itself():
    messages = [
        {"role": "system", "content": "You help customers."},
        {"role": "user", "content": "Where is my order?"},
        {"role": "assistant", "content": "Is your order number ORD-4821?"},
        {"role": "user", "content": "Yes."},
        {"role": "assistant", "content": None, "tool_calls": [call("lookup", {"x": "ORD-4821"})]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{}"},
        {"role": "assistant", "content": "Found it."},
    ]
    problems = check_grounding(messages, [tool("lookup", {"x": {"type": "string"}})])
    assert [p["where"] for p in problems] == ["messages[2]", "messages[4].tool_calls[0]"]
    assert codes(problems) == ["ungrounded_value"]


def test_system_prompt_grounds_values():
    assert grounded("What's on?", "Berlin-Mitte", system="Our store: Berlin-Mitte.")


def test_enum_values_are_exempt(retail_messages, retail_tools):
    arguments = {"order_id": "ORD-1001", "reason": "too_late"}
    retail_messages[8]["tool_calls"][0]["function"]["arguments"] = json.dumps(arguments)
    assert check_grounding(retail_messages, retail_tools) == []


def test_const_and_default_values_are_exempt():
    assert grounded("Hi", "express_shipping", {"type": "string", "const": "express_shipping"})
    assert grounded("Hi", 25, {"type": "integer", "default": 25})
    assert not grounded("Hi", 26, {"type": "integer", "default": 25})


def test_booleans_and_null_are_exempt():
    assert grounded("Hi", True, {"type": "boolean"})
    assert grounded("Hi", None, {"type": "null"})
    assert grounded("Hi", "", {"type": "string"})


def test_small_integers_and_short_strings_must_be_grounded():
    # Exempt before: a 2-character id or a small integer could be invented.
    assert not grounded("Hi", 3, {"type": "integer"})
    assert not grounded("Hi", -9, {"type": "integer"})
    assert not grounded("Hi", "EU", {"type": "string"})
    assert grounded("Ship it to the EU.", "EU", {"type": "string"})
    assert grounded("Table for three.", 3, {"type": "integer"})


def counted(name, value, schema=None):
    """True when `value` of property `name` is grounded by a user turn that says nothing."""
    tools = [tool("lookup", {name: schema or {"type": "integer"}})]
    return check_grounding(dialogue("Hi", {name: value}), tools) == []


def test_counts_that_identify_nothing_are_exempt():
    assert counted("quantity", 3)
    assert counted("guests", 2)
    assert counted("number_of_nights", 4)
    assert counted("partySize", 4)
    assert counted("n", 2, {"type": "integer", "description": "How many seats to hold."})
    assert counted("limit", 50)
    assert counted("page", 12)
    # a quantity beyond 9 must be said; a negative count is no count
    assert not counted("quantity", 25)
    assert not counted("quantity", -1)


def test_ids_are_checked_at_any_length():
    assert not counted("room_id", 3)
    assert not counted("table_number", 4)
    assert not counted("seat", "4B", {"type": "string"})
    assert not counted("count_id", 2)  # named like an id: never a count
    assert not counted("code", "A7", {"type": "string"})


def test_the_sign_matters():
    assert grounded("Adjust it by -5.", -5, {"type": "integer"})
    assert not grounded("Adjust it by 5.", -5, {"type": "integer"})
    assert not grounded("Adjust it by -5.", 5, {"type": "integer"})


def test_a_number_inside_another_token_grounds_nothing():
    assert not grounded("My order is ORD-1001.", 1001, {"type": "integer"})
    assert not grounded("My order is ORD-1001.", "1001")
    assert not grounded("Deliver on 2025-03-14.", 14, {"type": "integer"})
    assert not grounded("The 3-pack, please.", 30, {"type": "integer"})
    assert grounded("Order #1001, please.", 1001, {"type": "integer"})
    assert grounded("It weighs 10kg.", 10, {"type": "integer"})


def test_years_are_checked():
    assert grounded("Born 12 April 1986.", 1986, {"type": "integer"})
    assert not grounded("Born 12 April 1986.", 1987, {"type": "integer"})
    # a date said without a year stands for the scenario's year
    assert grounded("Book it for March 20.", "2025-03-20")
    assert not grounded("Book it for March 20.", "2026-03-20")


def test_times_of_day_are_checked():
    assert grounded("Book March 20 at 14:00.", "2025-03-20T14:00:00")
    assert grounded("Book March 20 at 2pm.", "2025-03-20T14:00:00+00:00")
    assert grounded("Book March 20 at 2 please.", "2025-03-20T14:00:00")
    assert grounded("Book it for March 20.", "2025-03-20T00:00:00")  # midnight: no time given
    assert not grounded("Book March 20 at 14:00.", "2025-03-20T15:00:00")
    assert grounded("Any time after 9:30 am works.", "09:30")
    assert not grounded("Any time after 9:30 am works.", "10:30")


def test_numbers_match_as_printed():
    assert grounded("I'd like 12 of them.", 12, {"type": "integer"})
    assert grounded("It cost $42.50.", 42.5, {"type": "number"})
    assert grounded("Budget is 1,250 dollars.", 1250, {"type": "number"})
    assert grounded("I need twelve.", 12, {"type": "integer"})
    assert not grounded("I need 15.", 12, {"type": "integer"})
    assert not grounded("Order 1120.", 12, {"type": "integer"})
    assert not grounded("Hi", 0.5, {"type": "number"})


def test_numeric_strings_match_numbers():
    assert grounded("Pay 30 euros.", "30.00")
    assert not grounded("Pay 30 euros.", "31.00")


def test_strings_match_case_and_space_insensitively():
    assert grounded("My email is Jane.Doe@Example.com", "jane.doe@example.com")
    assert grounded("I live at 12   Main  Street, Springfield", "12 Main Street")


def test_ids_match_whole_tokens_only():
    assert not grounded("My order is ORD-1001.", "ORD-100")
    assert not grounded("My order is ORD-1001.", "ORD-10011")
    assert grounded("My order is ORD-1001.", "ORD-1001")


def test_dates_match_in_other_formats():
    assert grounded("Book it for March 20, 2025 please.", "2025-03-20")
    assert grounded("Book it for the 20th of March.", "2025-03-20")
    assert grounded("Book it for 3/20/2025.", "2025-03-20")
    assert grounded("Book it for 20.03.2025 at 14:00.", "2025-03-20T14:00:00")
    assert not grounded("Book it for March 21, 2025.", "2025-03-20")
    assert not grounded("Book it soon.", "2025-03-20")


def relative(user_text, value, now="2025-03-14T10:00:00+00:00"):
    """True when date `value` is grounded by `user_text` on Friday 2025-03-14 (the clock)."""
    tools = [tool("lookup", {"x": {"type": "string"}})]
    messages = dialogue(user_text, {"x": value})
    return check_grounding(messages, tools, scenario_now=now) == []


def test_relative_dates_are_resolved_against_the_scenario_clock():
    assert relative("Book it for next Thursday.", "2025-03-20")
    assert relative("Book it for next Thursday.", "2025-03-27")
    assert not relative("Book it for next Thursday.", "2025-03-21")
    assert relative("Can I come tomorrow?", "2025-03-15")
    assert relative("Can I come tomorrow at 10:00?", "2025-03-15T10:00:00+00:00")
    assert not relative("Can I come tomorrow?", "2025-03-16")
    assert relative("Today, please.", "2025-03-14")
    assert relative("In 3 days?", "2025-03-17")
    assert relative("Sometime next week.", "2025-03-19")
    assert not relative("Sometime next week.", "2025-03-26")
    assert relative("By the end of the month.", "2025-03-31")
    # without a scenario clock, the runtime default (2025-01-01, a Wednesday) is today
    assert relative("Friday works.", "2025-01-03", now=None)
    # relative words in the system prompt alone do not resolve anything
    assert not grounded("Book it soon.", "2025-03-20", system="Today is 2025-03-14.")


def test_a_said_date_plus_a_said_number_of_days_is_grounded():
    assert grounded("Check in March 20 for 3 nights.", "2025-03-23")
    assert not grounded("Check in March 20 for 3 nights.", "2025-03-24")


def test_phone_numbers_match_by_digits():
    assert grounded("Call me on (555) 123-4567.", "555-123-4567")
    assert grounded("Call me on 555 123 4567.", "+1 555 123 4567")
    assert not grounded("Call me on 555 123 4567.", "555-123-9999")


def test_free_text_checks_only_ids_and_numbers():
    assert grounded("It arrived broken.", "Customer reports the item arrived damaged")
    assert not grounded("It arrived broken.", "Damaged item from order ORD-7731")
    assert not grounded("It arrived broken.", "Refund of 45 dollars requested by customer")
    assert grounded("It cost 45 dollars.", "Refund of 45 dollars requested by customer")


def test_names_in_title_case_must_be_given():
    assert grounded("This is jane doe speaking.", "Jane Doe")
    assert not grounded("This is Jane speaking.", "Jane Smith")


def test_single_words_must_appear():
    assert grounded("I want the blue one.", "blue")
    assert not grounded("I want the blue one.", "green")


def test_nested_arguments_are_walked():
    schema = {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "sku": {"type": "string"},
                "size": {"type": "string", "enum": ["S", "M", "XL"]},
            },
        },
    }
    value = [{"sku": "SKU-88", "size": "XL"}, {"sku": "SKU-99", "size": "M"}]
    tools = [tool("lookup", {"x": schema})]
    problems = check_grounding(dialogue("Two of SKU-88 please.", {"x": value}), tools)
    assert codes(problems) == ["ungrounded_value"]
    assert len(problems) == 1
    assert "'x[1].sku' = 'SKU-99'" in problems[0]["message"]


def test_assistant_stating_an_invented_id_is_reported(retail_messages, retail_tools):
    retail_messages[10]["content"] = "Done: ORD-1001 is cancelled, refund ref_7 is on its way."
    problems = check_grounding(retail_messages, retail_tools)
    assert codes(problems) == ["ungrounded_value"]
    assert problems[0]["where"] == "messages[10]"
    assert "'ref_7'" in problems[0]["message"]


def test_assistant_stating_an_id_before_the_tool_returns_it(retail_messages, retail_tools):
    retail_messages[8]["content"] = "Cancelling now; your refund will be ref_1."
    problems = check_grounding(retail_messages, retail_tools)
    assert [p["where"] for p in problems] == ["messages[8]"]


def test_stated_ids():
    text = (
        "Order ORD-1001 (ticket #4521, code A7X9K2, id order_17, ref 48213) ships on "
        "2025-03-14T10:00:00Z at 10:30am or 3pm, the 2nd box weighs 5kg; call 555-0199; "
        "mp3 and year 2025."
    )
    assert stated_ids(text) == ["ORD-1001", "#4521", "A7X9K2", "order_17", "48213"]
    assert stated_ids(None) == []


def test_tool_names_are_not_ids():
    tools = [tool("get_v2_status", {"x": {"type": "string"}})]
    messages = dialogue("Check it.", {"x": "Check"})
    messages[4]["content"] = "I used get_v2_status."
    assert check_grounding(messages, tools) == []


@pytest.mark.parametrize("messages", [None, "x", 3, [None, 7, "hi", {"role": 1}]])
def test_garbage_messages_never_raise(messages, retail_tools):
    assert check_grounding(messages, retail_tools) == []


@pytest.mark.parametrize("arguments", [None, 3, {"order_id": "ORD-9"}, "{bad", "[1]"])
def test_garbage_arguments_are_left_to_the_structure_check(
    retail_messages, retail_tools, arguments
):
    retail_messages[4]["tool_calls"][0]["function"]["arguments"] = arguments
    assert check_grounding(retail_messages, retail_tools) == []


def test_garbage_tools_still_check_values(retail_messages):
    retail_messages[4]["tool_calls"][0]["function"]["arguments"] = '{"order_id": "ORD-1003"}'
    assert codes(check_grounding(retail_messages, None)) == ["ungrounded_value"]
