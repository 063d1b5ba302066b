"""What the assistant says must be supported by the dialogue; outcomes must be real."""

from __future__ import annotations

import json
from typing import Any

import pytest
from dialogue_helpers import call, codes

from gem_graph.checks.claims import check_claims
from gem_graph.checks.dialogue import DialogueContext, check_dialogue
from gem_graph.environment import load_environment
from gem_graph.resources import data_dir
from gem_graph.verify import dialogue_context

SYSTEM = "You are the assistant of Maple Grove Library. A renewal adds 14 days to the due date."


def tool(name):
    return {
        "type": "function",
        "function": {"name": name, "description": f"The {name} tool.", "parameters": {}},
    }


def dialogue(user: str, output: Any, reply: str, name: str = "get_loan", system: str = SYSTEM):
    """system, user, one call of `name` returning `output`, the assistant's `reply`."""
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": user},
        {"role": "assistant", "content": None, "tool_calls": [call(name, {})]},
        {"role": "tool", "tool_call_id": "call_1", "content": json.dumps(output)},
        {"role": "assistant", "content": reply},
    ]


def claims(messages, **kwargs):
    return check_claims(messages, None, **kwargs)


LOAN = {"loan_id": "L-9", "title": "Dune", "due_date": "2025-03-21", "fine": 12.5}


# -- ungrounded_claim ----------------------------------------------------------------------
def test_supported_values_pass():
    reply = "Dune (L-9) is due 2025-03-21 and carries a fine of $12.50."
    assert claims(dialogue("When is Dune due?", LOAN, reply)) == []


@pytest.mark.parametrize(
    "reply, span",
    [
        ("That makes $13.75 in total.", "$13.75"),
        ("The library opens at 07:45.", "07:45"),
        ("Please return it by April 30.", "April 30"),
        ("Your locker is locker 7B.", "7B"),
        ("Your reference is #42.", "#42"),
        ("Call us on 555-0134-22.", "555-0134-22"),
        ('It is shelved under "Classic Space Opera".', "Classic Space Opera"),
        ("Renewals are free for 45 days.", "45"),
        ("Dr. Hollis can help you.", "Dr. Hollis"),
    ],
)
def test_invented_values_are_ungrounded_claims(reply, span):
    problems = claims(dialogue("When is Dune due?", LOAN, reply))
    assert codes(problems) == ["ungrounded_claim"], problems
    assert problems[0]["where"] == "messages[4]"
    assert span in problems[0]["message"]


def test_the_message_names_the_nearest_evidence():
    [found] = claims(dialogue("When is Dune due?", LOAN, "That makes $13.75 in total."))
    assert "nearest evidence searched: 14 (messages[0])" in found["message"]


def test_policy_counts_as_evidence():
    messages = dialogue("Hi", LOAN, "Late returns cost $0.25 per day.", system="Be brief.")
    assert codes(claims(messages)) == ["ungrounded_claim"]
    assert claims(messages, policy="Late fines are $0.25 per day.") == []


def test_user_turns_count_and_the_assistant_cannot_ground_itself():
    messages = dialogue("I was charged $4.20 twice.", LOAN, "I see the $4.20 charge.")
    assert claims(messages) == []
    messages.insert(2, {"role": "assistant", "content": "Was it $9.99?"})
    messages.insert(3, {"role": "user", "content": "Yes."})
    assert codes(claims(messages)) == ["ungrounded_claim"]  # messages[2]


def test_a_name_before_the_tool_returned_it_is_ungrounded():
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Which doctor can see me?"},
        {"role": "assistant", "content": "Dr. Elena Voss can see you; let me check her slots."},
        {"role": "user", "content": "Great."},
        {"role": "assistant", "content": None, "tool_calls": [call("list_doctors", {})]},
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": json.dumps([{"doctor_id": "doc_1", "full_name": "Dr. Elena Voss"}]),
        },
        {"role": "assistant", "content": "Dr. Elena Voss is available."},
    ]
    problems = claims(messages)
    assert [(p["code"], p["where"]) for p in problems] == [("ungrounded_claim", "messages[2]")]
    assert "Dr. Elena Voss" in problems[0]["message"]


def test_a_weekday_that_does_not_match_the_date_is_reported():
    slots = [{"slot_id": "s1", "starts_at": "2025-01-03T09:30:00+00:00"}]
    problems = claims(dialogue("Any slot?", slots, "There is one on Thursday, January 3."))
    assert codes(problems) == ["ungrounded_claim"]
    assert "is a Friday" in problems[0]["message"]
    assert claims(dialogue("Any slot?", slots, "There is one on Friday, January 3.")) == []


def test_instructions_in_quotes_are_free():
    reply = 'Reply "yes" to confirm, or click "Manage loans" in the portal.'
    assert claims(dialogue("Hi", LOAN, reply)) == []


ORDERS = [{"id": "a", "qty": 1}, {"id": "b", "qty": 2}, {"id": "c", "qty": 4}]
ITEMS = {"items": [{"quantity": 2, "unit_price": 24.0}, {"quantity": 1, "unit_price": 89.5}]}


# -- derivations that must be accepted -----------------------------------------------------
@pytest.mark.parametrize(
    "user, output, reply",
    [
        # products: 2 × $40 = $80
        ("Two tickets please.", {"price": 40.0}, "That is 2 × $40.00 = $80.00 in total."),
        # sums and differences
        ("Hi", {"items": [{"price": 12.5}, {"price": 7.25}]}, "Together that is $19.75."),
        ("I'll pay $5.", {"balance": 12.5}, "Paying $5.00 leaves $7.50 on your account."),
        ("Limit is $10?", {"balance": 12.5}, "Pay at least $2.51 to get below the $10.00 limit."),
        # chains: a verified derived value grounds the next step
        ("Two please.", {"price": 40.0, "fee": 5.0}, "2 × $40.00 is $80.00; plus fees, $85.00."),
        # ratios: half of $12.50
        ("Can we split the $12.50 fine?", {"ok": True}, "Half of $12.50 is $6.25 each."),
        # percentages
        ("Hi", {"price": 80.0, "discount_percent": 15}, "With 15% off, you pay $68.00."),
        ("Hi", {"price": 80.0, "discount_percent": 15}, "The discount saves you $12.00."),
        ("Hi", {"paid": 20.0, "total": 80.0}, "You have paid 25% of the total."),
        # list counts and list sums
        ("Hi", ORDERS, "You have three open orders with 7 units in total."),
        # order totals: quantity × unit price summed over the items
        ("Hi", ITEMS, "The items come to $137.50."),
    ],
)
def test_arithmetic_from_supported_values_is_accepted(user, output, reply):
    assert claims(dialogue(user, output, reply, system="You help.")) == []


@pytest.mark.parametrize(
    "now, user, reply",
    [
        ("2025-01-01T09:00:00+00:00", "Hi", "Renewed: Dune is now due on 2025-04-04."),  # + 14 days
        ("2025-03-10T09:00:00+00:00", "Hi", "You can pick it up tomorrow, March 11."),
        ("2025-03-10T09:00:00+00:00", "Can I come in 3 days?", "Yes, on March 13 we are open."),
        ("2025-03-10T09:00:00+00:00", "Next Friday?", "Friday, March 14 works."),
    ],
)
def test_date_arithmetic_is_accepted(now, user, reply):
    assert claims(dialogue(user, LOAN, reply), scenario_now=now) == []


def test_durations_between_supported_dates_and_times_are_accepted():
    now = "2025-01-01T09:00:00+00:00"
    reply = "Dune is due on March 21, in 79 days."
    assert claims(dialogue("Hi", LOAN, reply), scenario_now=now) == []
    flight = {"departs": "2025-02-01T10:15:00+00:00", "arrives": "2025-02-01T21:45:00+00:00"}
    reply = "It departs at 10:15 and lands at 21:45: 11 hours and 30 minutes."
    assert claims(dialogue("Hi", flight, reply)) == []
    wrong = "It departs at 10:15 and lands at 21:45: 12 hours and 30 minutes."
    assert codes(claims(dialogue("Hi", flight, wrong))) == ["ungrounded_claim"]


def test_hours_that_make_whole_days_count_as_days():
    system = "Free cancellation up to 48 hours before check-in."
    booking = {"booking_id": "BK-1", "check_in": "2025-03-20"}
    reply = "You can cancel BK-1 for free until March 18."
    assert claims(dialogue("Hi", booking, reply, system=system)) == []


def test_numbers_offered_in_a_question_are_proposals():
    error = {"error": "insufficient funds: balance is 150.25"}
    assert claims(dialogue("Send $200.", error, "Would you like to send $150.00 instead?")) == []
    assert codes(claims(dialogue("Send $200.", error, "I can send $150.00 instead."))) == [
        "ungrounded_claim"
    ]


def test_quoted_values_match_with_underscores_and_spacing():
    output = {"order_id": "A1", "status": "in_transit"}
    assert claims(dialogue("Where is A1?", output, 'A1 is "in transit".')) == []


def test_a_possessive_is_not_a_different_name():
    doctors = [{"doctor_id": "doc_1", "full_name": "Dr. Elena Voss"}]
    assert claims(dialogue("Who?", doctors, "You are on Dr. Elena Voss's list.")) == []
    assert claims(dialogue("Who?", doctors, "You are on Elena Voss's list.")) == []


def test_date_arithmetic_needs_a_stated_number_of_days():
    reply = "Come back on 2025-04-11."  # due date + 21 days: nobody said 21
    problems = claims(dialogue("Hi", LOAN, reply), scenario_now="2025-03-10T09:00:00+00:00")
    assert codes(problems) == ["ungrounded_claim"]


def test_a_slot_end_time_is_start_plus_its_length():
    slots = [{"slot_id": "s1", "starts_at": "2025-01-03T09:30:00+00:00", "minutes": 30}]
    assert claims(dialogue("Hi", slots, "The visit runs from 09:30 to 10:00.")) == []
    assert codes(claims(dialogue("Hi", slots, "The visit runs from 09:30 to 10:15."))) == [
        "ungrounded_claim"
    ]


# -- contradicts_output ------------------------------------------------------------------------
def test_a_due_date_that_differs_from_the_output_contradicts_it():
    problems = claims(dialogue("When is Dune due?", LOAN, "Dune (L-9) is due 2025-03-14."))
    assert codes(problems) == ["contradicts_output"]
    assert "'due_date' = 2025-03-21" in problems[0]["message"]
    assert problems[0]["where"] == "messages[4]"


def test_a_contradiction_counts_even_when_the_value_appears_elsewhere():
    loans = [LOAN, {"loan_id": "L-10", "title": "Emma", "due_date": "2025-03-14"}]
    problems = claims(dialogue("When is Dune due?", loans, "Dune is due on March 14."))
    assert codes(problems) == ["contradicts_output"]
    assert claims(dialogue("When is Dune due?", loans, "Dune is due on March 21.")) == []
    assert claims(dialogue("When is Emma due?", loans, "Emma is due on March 14.")) == []


def test_an_amount_whose_label_matches_a_field_contradicts_it():
    output = {"order_id": "A1", "status": "cancelled", "refund_amount": 45.0}
    problems = claims(dialogue("Cancel A1", output, "Done, a refund of $54.00 is on its way."))
    assert codes(problems) == ["contradicts_output"]
    assert "'refund_amount' = 45" in problems[0]["message"]


def test_a_later_value_of_the_same_object_is_no_contradiction():
    messages = dialogue("Renew Dune", LOAN, "Dune (L-9) is due 2025-03-21.")
    messages[4:] = [
        {"role": "assistant", "content": None, "tool_calls": [call("renew_loan", {}, "c2")]},
        {
            "role": "tool",
            "tool_call_id": "c2",
            "content": json.dumps({"loan_id": "L-9", "due_date": "2025-04-04"}),
        },
        {"role": "assistant", "content": "Done: Dune is now due on 2025-04-04."},
    ]
    assert claims(messages) == []


def test_a_title_that_differs_from_the_output_contradicts_it():
    problems = claims(dialogue("What do I have?", LOAN, "You have Dune Messiah, loan L-9."))
    assert codes(problems) == ["contradicts_output"]
    assert "'title' = 'Dune'" in problems[0]["message"]


def test_a_misspelt_name_contradicts_the_output():
    doctors = [{"doctor_id": "doc_1", "full_name": "Dr. Elena Voss"}]
    problems = claims(dialogue("Who?", doctors, "You will see Dr. Elena Ross."))
    assert codes(problems) == ["contradicts_output"]
    assert claims(dialogue("Who?", doctors, "You will see Dr. Voss.")) == []


# -- false_success -----------------------------------------------------------------------------
ERROR = {"error": "another member has placed a hold on Dune"}


@pytest.mark.parametrize(
    "reply",
    [
        "Done! Enjoy your book.",
        "Dune has been renewed.",
        "I've renewed Dune for you.",
        "Your loan was renewed successfully.",
    ],
)
def test_success_after_an_error_is_false_success(reply):
    problems = claims(dialogue("Renew Dune please", ERROR, reply, name="renew_loan"))
    assert codes(problems) == ["false_success"]
    assert "'renew_loan'" in problems[0]["message"] and "messages[3]" in problems[0]["message"]


@pytest.mark.parametrize(
    "reply",
    [
        "I'm sorry, Dune could not be renewed: another member has a hold on it.",
        "I tried, but the hold is still there, so Dune cannot be renewed.",
        "Once the hold is gone, it can be renewed.",
        "Would you like me to try again tomorrow?",
    ],
)
def test_reporting_the_failure_is_fine(reply):
    assert claims(dialogue("Renew Dune please", ERROR, reply, name="renew_loan")) == []


def test_a_successful_retry_makes_success_true():
    messages = dialogue("Renew Dune please", ERROR, "Done: Dune is renewed.", name="renew_loan")
    messages[4:4] = [
        {"role": "assistant", "content": None, "tool_calls": [call("renew_loan", {}, "c2")]},
        {"role": "tool", "tool_call_id": "c2", "content": json.dumps(LOAN)},
    ]
    assert claims(messages) == []


# -- unbacked_action ---------------------------------------------------------------------------
def test_an_action_never_called_is_unbacked():
    messages = dialogue("Renew Dune please", LOAN, "I've renewed Dune for you.")
    problems = check_claims(messages, [tool("get_loan"), tool("renew_loan")], read_only_tools=set())
    assert codes(problems) == ["unbacked_action"]
    assert "'renew_loan'" in problems[0]["message"]
    messages = dialogue("Cancel my hold", LOAN, "Your hold has been cancelled.")
    tools = [tool("get_loan"), tool("cancel_hold")]
    problems = check_claims(messages, tools, read_only_tools={"get_loan"})
    assert codes(problems) == ["unbacked_action"]
    assert "'cancel_hold'" in problems[0]["message"]


def test_a_synonym_of_the_tool_verb_is_a_claim_of_it():
    tools = [tool("list_payees"), tool("transfer_funds")]
    payees = [{"payee_id": "p1", "name": "Anna Kowalski"}]
    reply = "Done: $2,500.00 has been sent to Anna Kowalski."
    messages = dialogue("Send Anna $2,500.", payees, reply, name="list_payees")
    problems = check_claims(messages, tools, read_only_tools={"list_payees"})
    assert codes(problems) == ["unbacked_action"]
    assert "'transfer_funds'" in problems[0]["message"]


def test_describing_earlier_states_claims_no_action():
    tools = [tool("list_cards"), tool("block_card"), tool("cancel_card")]
    cards = [{"card_id": "c1", "status": "frozen"}, {"card_id": "c2", "status": "cancelled"}]
    reply = "Card c2 has been cancelled, and both were blocked earlier. I changed nothing."
    messages = dialogue("Status?", cards, reply, name="list_cards")
    assert check_claims(messages, tools, read_only_tools={"list_cards"}) == []


def test_unbacked_action_needs_to_know_the_write_tools():
    messages = dialogue("Cancel my hold", LOAN, "Your hold has been cancelled.")
    tools = [tool("get_loan"), tool("cancel_hold")]
    assert check_claims(messages, tools, read_only_tools=None) == []


def test_a_backed_action_and_a_reported_state_are_fine():
    tools = [tool("get_order"), tool("cancel_order")]
    messages = dialogue("Cancel A1", {"order_id": "A1"}, "Order A1 is cancelled.", "cancel_order")
    assert check_claims(messages, tools, read_only_tools={"get_order"}) == []
    # the status comes from a read tool: describing it is not claiming the action
    messages = dialogue("Status?", {"order_id": "A1", "status": "cancelled"}, "A1 was cancelled.")
    messages[2]["tool_calls"] = [call("get_order", {})]
    assert check_claims(messages, tools, read_only_tools={"get_order"}) == []


# -- the whole dialogue check, and the gold dialogues -------------------------------------------
def gold_cases():
    for env_dir in sorted(data_dir("environments").iterdir()):
        path = env_dir / "trajectories.jsonl"
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    yield pytest.param(env_dir, json.loads(line), id=json.loads(line)["id"])


@pytest.mark.parametrize("env_dir, record", list(gold_cases()))
def test_gold_dialogues_have_no_problems(env_dir, record):
    environment = load_environment(env_dir)
    manifest = environment.manifest
    context = DialogueContext(
        scenario_now=record["scenario"]["now"],
        read_only_tools=frozenset(manifest.read_only_tools),
        policy=manifest.policy,
        tool_sources=environment.tools_py,
    )
    assert check_dialogue(record["messages"], record["tools"], context) == []
    # and with everything verification knows (confirmations, limits from the settings)
    context = dialogue_context(environment, record["scenario"])
    assert check_dialogue(record["messages"], record["tools"], context) == []


@pytest.mark.parametrize("messages", [None, "x", 3, [None, 7, "hi", {"role": 1}]])
def test_garbage_messages_never_raise(messages):
    assert check_claims(messages, None, read_only_tools=set()) == []
