"""Consent: tools marked `confirm_before` run only after a question and the user's yes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gem_graph.checks.consent import agrees, asks_agreement, check_consent
from gem_graph.checks.dialogue import DialogueContext, check_dialogue

CONFIRM = ["refund_order"]


def call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


def dialogue(
    *,
    question: str = "ORD-1001 is delivered, total $49.50. Shall I refund $49.50 to your card?",
    answer: str = "Yes, go ahead.",
    arguments: dict[str, Any] | None = None,
    call_text: str | None = None,
) -> list[dict[str, Any]]:
    """Look up the orders, ask, get an answer, refund; the refund is messages[6]."""
    arguments = arguments or {"customer_id": "cus_7", "order_id": "ORD-1001", "amount": 49.5}
    orders = [
        {"order_id": "ORD-1001", "total": 49.5, "status": "delivered"},
        {"order_id": "ORD-1002", "total": 60.0, "status": "delivered"},
    ]
    return [
        {"role": "system", "content": "You are the shop assistant. Refunds need a yes first."},
        {"role": "user", "content": "I want my money back for my last order. I'm cus_7."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [call("c1", "list_orders", {"customer_id": "cus_7"})],
        },
        {"role": "tool", "tool_call_id": "c1", "content": json.dumps(orders)},
        {"role": "assistant", "content": question},
        {"role": "user", "content": answer},
        {
            "role": "assistant",
            "content": call_text,
            "tool_calls": [call("c2", "refund_order", arguments)],
        },
        {"role": "tool", "tool_call_id": "c2", "content": json.dumps({"refunded": 49.5})},
        {"role": "assistant", "content": "Done: $49.50 is on its way back to your card."},
    ]


def codes_at(problems: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(p["code"], p["where"]) for p in problems]


MISSING = [("missing_confirmation", "messages[6].tool_calls[0]")]


def test_a_question_then_agreement_then_the_call_passes():
    assert check_consent(dialogue(), CONFIRM) == []


def test_ids_settled_earlier_need_not_be_repeated_in_the_question():
    # cus_7 is not in the question, but the user gave it and no other customer id is named.
    messages = dialogue(question="Shall I refund $49.50 for ORD-1001?")
    assert check_consent(messages, CONFIRM) == []


def test_a_call_in_the_same_message_as_the_question_fails():
    messages = dialogue(call_text="Shall I refund $49.50 for ORD-1001?")
    problems = check_consent(messages, CONFIRM)
    assert codes_at(problems) == MISSING
    assert "same message" in problems[0]["message"]


def test_an_amount_other_than_the_agreed_one_fails():
    arguments = {"customer_id": "cus_7", "order_id": "ORD-1001", "amount": 60}
    problems = check_consent(dialogue(arguments=arguments), CONFIRM)
    assert codes_at(problems) == MISSING
    assert "'60'" in problems[0]["message"]


def test_an_amount_never_stated_in_the_exchange_fails():
    messages = dialogue(question="Shall I refund order ORD-1001?")
    problems = check_consent(messages, CONFIRM)
    assert codes_at(problems) == MISSING
    assert "49.5" in problems[0]["message"]


def test_an_amount_the_user_names_in_the_agreement_passes():
    messages = dialogue(
        question="How much of ORD-1001 should I refund?", answer="Sure, refund $20 please."
    )
    arguments = {"customer_id": "cus_7", "order_id": "ORD-1001", "amount": 20}
    messages[6]["tool_calls"] = [call("c2", "refund_order", arguments)]
    assert check_consent(messages, CONFIRM) == []


def test_another_item_than_the_agreed_one_fails_even_if_it_was_seen_before():
    arguments = {"customer_id": "cus_7", "order_id": "ORD-1002", "amount": 49.5}
    problems = check_consent(dialogue(arguments=arguments), CONFIRM)
    assert codes_at(problems) == MISSING
    assert "ORD-1002" in problems[0]["message"]


@pytest.mark.parametrize(
    "answer", ["No, wait, let me think.", "Hmm, not yet.", "Don't, I changed my mind.", "What?"]
)
def test_no_agreement_fails(answer):
    problems = check_consent(dialogue(answer=answer), CONFIRM)
    assert codes_at(problems) == MISSING
    assert "does not agree" in problems[0]["message"]


def test_agreement_without_a_question_fails():
    messages = dialogue(question="I will now refund $49.50 for ORD-1001.", answer="OK.")
    problems = check_consent(messages, CONFIRM)
    assert codes_at(problems) == MISSING
    assert "no assistant question" in problems[0]["message"]


def test_a_call_before_any_user_turn_fails():
    messages = dialogue()
    del messages[1:6]  # system, then the refund straight away
    problems = check_consent(messages, CONFIRM)
    assert [p["where"] for p in problems] == ["messages[1].tool_calls[0]"]


def test_tools_not_marked_are_not_held_to_consent():
    messages = dialogue(call_text="Shall I refund it?", answer="no")
    assert check_consent(messages, []) == []
    assert check_consent(messages, ["cancel_order"]) == []


def test_check_dialogue_runs_the_consent_check_from_its_context():
    messages = dialogue(call_text="Shall I refund $49.50 for ORD-1001?")
    tools = [
        {
            "type": "function",
            "function": {"name": name, "description": "", "parameters": {"type": "object"}},
        }
        for name in ("list_orders", "refund_order")
    ]
    plain = check_dialogue(messages, tools, DialogueContext())
    assert "missing_confirmation" not in {p["code"] for p in plain}
    marked = check_dialogue(
        messages, tools, DialogueContext(confirm_before=frozenset({"refund_order"}))
    )
    assert ("missing_confirmation", "messages[6].tool_calls[0]") in codes_at(marked)


def test_garbage_never_raises():
    assert check_consent(None, CONFIRM) == []
    assert check_consent([None, 3, {"role": "assistant", "tool_calls": "x"}], CONFIRM) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes please.", True),
        ("Oh, I didn't realise. That's fine, cancel all of it.", True),
        ("No problem, go ahead!", True),
        ("ok", True),
        ("No, that's all. Thanks!", False),
        ("Never mind then, thanks!", False),
        ("Wait, which card is that?", False),
        ("Hmm, I don't know.", False),
        ("", False),
    ],
)
def test_agreement_words(text, expected):
    assert agrees(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Shall I go ahead?", True),
        ("Please confirm that I should cancel ORD-1001.", True),
        ("Done: ORD-1001 is cancelled.", False),
        ("", False),
    ],
)
def test_question_words(text, expected):
    assert asks_agreement(text) is expected
