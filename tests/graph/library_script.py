"""Scripted (hand-written) model replies for a small library-renewal document.

The graph, the checks and the parsers are real; only the model's answers are scripted.
These tests run with execution off; the execution path has its own tests.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from gem_graph.settings import PipelineSettings, SandboxSettings, Settings
from gem_graph.testing.scripted import ScriptedChatModel, table_responder

LIBRARY_TEXT = """How to renew a borrowed book online
1. Sign in to the library portal with your library card number.
2. Open "My loans" to see what you have borrowed and when each item is due.
3. Pick the loan and press "Renew". A loan can be renewed at most twice, and not when
   another member has reserved the book.
4. The new due date is shown on screen. Fines for late items must be paid first.
"""

NEWS_TEXT = "The city council met on Tuesday and approved the new budget for parks."


def _tool(
    name: str, description: str, props: dict[str, Any], read_only: bool, quote: str
) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "parameters_json": json.dumps(
            {
                "type": "object",
                "properties": props,
                "required": list(props),
                "additionalProperties": False,
            }
        ),
        "read_only": read_only,
        "confirm_before": False,
        "quote": quote,
    }


SIGN_IN = "Sign in to the library portal with your library card number."
MY_LOANS = 'Open "My loans" to see what you have borrowed and when each item is due.'
RENEW = 'Pick the loan and press "Renew".'


FILTER_OK = {
    "relevant": True,
    "reason": "Multi-step procedure in a library web portal.",
    "summary": "Renew a borrowed library book online.",
    "platform": "computer",
    "domain": "education",
    "category": "account_management",
}
FILTER_NO = {
    "relevant": False,
    "reason": "A news report, not a procedure.",
    "summary": "City council approves budget.",
    "platform": "other",
    "domain": "government",
    "category": "information_lookup",
}

EXTRACT_OK = {
    "workflows": [
        {
            "name": "renew_loan",
            "description": "Sign in, list loans, renew one.",
            "steps": [
                {"step": "find the member by card number", "quote": SIGN_IN},
                {"step": "list the member's loans", "quote": MY_LOANS},
                {"step": "renew the chosen loan", "quote": RENEW},
            ],
            "graph": "(find_member)->(list_loans)->(renew_loan)",
            "constraints": [
                "find_member before list_loans",
                "at most two renewals per loan",
                "no renewal when the book is reserved",
            ],
            "example_calls": [
                {"tool": "find_member", "arguments_json": json.dumps({"card_number": "4821-7730"})},
                {"tool": "list_loans", "arguments_json": json.dumps({"member_id": "M-1001"})},
                {
                    "tool": "renew_loan",
                    "arguments_json": json.dumps({"member_id": "M-1001", "loan_id": "L-77"}),
                },
            ],
        }
    ],
    "tools": [
        _tool(
            "find_member",
            "Look up a member by library card number.",
            {"card_number": {"type": "string", "description": "Library card number."}},
            True,
            SIGN_IN,
        ),
        _tool(
            "list_loans",
            "List a member's current loans with due dates and renewals.",
            {"member_id": {"type": "string", "description": "Member id."}},
            True,
            MY_LOANS,
        ),
        _tool(
            "renew_loan",
            "Renew one loan; refused after two renewals or when reserved.",
            {
                "member_id": {"type": "string", "description": "Member id."},
                "loan_id": {"type": "string", "description": "Loan id."},
            },
            False,
            RENEW,
        ),
    ],
    "rules": [
        {"rule": "A loan can be renewed at most twice.", "quote": "renewed at most twice"},
        {
            "rule": "A reserved book cannot be renewed.",
            "quote": "not when another member has reserved the book",
        },
        {
            "rule": "Fines must be paid before renewing.",
            "quote": "Fines for late items must be paid first.",
        },
    ],
}


def _call(call_id: str, name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(args)},
    }


def _msg(
    role: str,
    content: str | None,
    calls: list[dict[str, Any]] | None = None,
    call_id: str | None = None,
) -> dict[str, Any]:
    return {"role": role, "content": content, "tool_calls": calls, "tool_call_id": call_id}


GROUND_OK = {
    "messages": [
        _msg(
            "system",
            "You are the Riverside Library assistant. Rules: a loan can be renewed "
            "at most twice; reserved books cannot be renewed; fines must be paid first.",
        ),
        _msg("user", "Hi, I'd like to renew The Hobbit. My card is 4821-7730."),
        _msg("assistant", None, [_call("call_1", "find_member", {"card_number": "4821-7730"})]),
        _msg(
            "tool",
            json.dumps({"member_id": "M-1001", "name": "Ana Ruiz", "fines": 0}),
            call_id="call_1",
        ),
        _msg("assistant", None, [_call("call_2", "list_loans", {"member_id": "M-1001"})]),
        _msg(
            "tool",
            json.dumps(
                {
                    "loans": [
                        {
                            "loan_id": "L-77",
                            "title": "The Hobbit",
                            "due": "2025-01-10",
                            "renewals": 1,
                        }
                    ]
                }
            ),
            call_id="call_2",
        ),
        _msg(
            "assistant",
            "I found The Hobbit (loan L-77), renewed once so far. Shall I renew "
            "it now? This is its last possible renewal.",
        ),
        _msg("user", "Yes please."),
        _msg(
            "assistant",
            None,
            [_call("call_3", "renew_loan", {"member_id": "M-1001", "loan_id": "L-77"})],
        ),
        _msg(
            "tool",
            json.dumps({"loan_id": "L-77", "due": "2025-01-24", "renewals": 2}),
            call_id="call_3",
        ),
        _msg("assistant", "Done: The Hobbit is now due on 2025-01-24. That was its last renewal."),
    ],
    "scenario": {"now": "2025-01-08T10:00:00+00:00", "rows_json": "{}"},
    "patterns": ["clarification", "multi_hop", "rule_awareness"],
    "new_tools": [],
}

JUDGE_OK = {
    "r1_tool_call_hallucination": {"passed": True, "reason": "All values come from context."},
    "r2_capability_hallucination": {"passed": True, "reason": "Uses the tools as defined."},
    "r3_context_hallucination": {"passed": True, "reason": "Ids and dates stay consistent."},
    "r4_policy_and_consent": {"passed": True, "reason": "Rules kept; the renewal was agreed."},
}


def refine_ok() -> dict[str, Any]:
    """A harder rewrite: the user first gives a wrong card, then corrects it."""
    refined = copy.deepcopy(GROUND_OK)
    messages = refined["messages"]
    messages[1]["content"] = (
        "hey, so my kid says The Hobbit is due soon?? can u renew it, card 4821-7730 I think"
    )
    return refined


def settings(**pipeline: Any) -> Settings:
    """Execution off (these tests are about the graph and its checks); fast retries."""
    return Settings(
        pipeline=PipelineSettings(execute=False, **pipeline),
        sandbox=SandboxSettings(),
    ).model_copy(
        update={
            "model": Settings().model.model_copy(
                update={"retry_initial_s": 0.01, "retry_max_s": 0.02, "max_transport_retries": 2}
            )
        }
    )


def good_table(doc_id: str = "lib") -> dict[tuple[str, str], Any]:
    return {
        ("filter", doc_id): FILTER_OK,
        ("extract", doc_id): EXTRACT_OK,
        ("ground", doc_id): GROUND_OK,
        ("refine", doc_id): refine_ok(),
        ("judge", doc_id): JUDGE_OK,
        ("filter", "news"): FILTER_NO,
    }


def make_model(table: dict[tuple[str, str], Any]) -> ScriptedChatModel:
    return ScriptedChatModel(responder=table_responder(table))
