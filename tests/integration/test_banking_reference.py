"""Every reference environment's gold verifies clean; broken copies earn their problem code.

The gold records of all reference environments go through `verify_records`, as
`gem-graph verify` runs them, and must come back without a single problem. Then each case
below copies one banking gold record, breaks it in one way and expects its code among the
record's problems. The copies are built here from the gold, so they follow it when it
changes. All copies are verified in one `verify_records` batch per settings variant.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from gem_graph.checks.problems import CODES
from gem_graph.environment import load_environment
from gem_graph.resources import data_dir
from gem_graph.sandbox import probe
from gem_graph.settings import PipelineSettings, SandboxSettings, Settings
from gem_graph.verify import verify_records

ENVIRONMENTS = data_dir("environments")
NAMES = ("retail", "clinic", "banking")
BANKING = ENVIRONMENTS / "banking"
TIER = "standard"
SETTINGS = Settings(sandbox=SandboxSettings(tier="standard", call_timeout_s=2.0, prestart=1))

_tiers = probe()["tiers"]
pytestmark = pytest.mark.skipif(_tiers[TIER] is not True, reason=f"{TIER}: {_tiers[TIER]}")


def gold(name: str) -> list[dict[str, Any]]:
    lines = (ENVIRONMENTS / name / "trajectories.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


GOLD = {record["id"]: record for record in gold("banking")}

# ---- the gold itself -----------------------------------------------------------------------


async def verify_all(env_name: str, records: list[Any], settings: Settings) -> list[dict]:
    return [r async for r in verify_records(ENVIRONMENTS / env_name, records, settings)]


@pytest.mark.parametrize("name", NAMES)
async def test_gold_records_verify_without_problems(name: str) -> None:
    records = gold(name)
    results = await verify_all(name, records, SETTINGS)
    assert [r["id"] for r in results] == [r["id"] for r in records]
    found = {r["id"]: r["problems"] for r in results if r["problems"]}
    assert found == {}
    for record, result in zip(records, results, strict=True):
        assert result["final_state_sha256"] == record["verification"]["final_state_sha256"]


def test_banking_gold_covers_the_behaviours_it_is_meant_to_teach() -> None:
    env = load_environment(BANKING)
    records = list(GOLD.values())
    assert len(records) >= 5
    messages = [m for r in records for m in r["messages"]]
    # parallel calls
    assert any(len(m.get("tool_calls") or []) >= 2 for m in messages)
    # an error the assistant recovers from: a refused call, later the same tool succeeds
    assert any(r["stats"]["errors_recovered"] for r in records)
    # every write tool is exercised, and every tool at least once
    called = {c["tool"] for r in records for c in r["verification"]["calls"]}
    assert called == set(env.manifest.tool_names)
    assert set(env.manifest.confirm_before) == {"freeze_card", "transfer_funds", "open_dispute"}
    for record in records:
        assert record["environment"]["name"] == "banking"
        assert record["scenario"]["now"]
        # each call that changes state comes in a later message than the user's agreement
        for index, message in enumerate(record["messages"]):
            for call in message.get("tool_calls") or []:
                if call["function"]["name"] in env.manifest.read_only_tools:
                    continue
                if call["function"]["name"] == "verify_customer":
                    continue
                before = [m for m in record["messages"][:index] if m["role"] != "tool"]
                assert before[-1]["role"] == "user", (record["id"], index)
                assert "?" in before[-2]["content"], (record["id"], index)


# ---- editing a copy of the gold ------------------------------------------------------------

DELETE = object()


def calls_of(record: dict[str, Any], tool: str) -> list[tuple[int, dict[str, Any]]]:
    """(message index, call) of every call of `tool`, in dialogue order."""
    return [
        (index, call)
        for index, message in enumerate(record["messages"])
        for call in message.get("tool_calls") or []
        if call["function"]["name"] == tool
    ]


def response_of(record: dict[str, Any], call: dict[str, Any]) -> dict[str, Any]:
    return next(m for m in record["messages"] if m.get("tool_call_id") == call["id"])


def set_arguments(record: dict[str, Any], tool: str, nth: int = 0, **changes: Any) -> None:
    _, call = calls_of(record, tool)[nth]
    arguments = json.loads(call["function"]["arguments"])
    for key, value in changes.items():
        if value is DELETE:
            del arguments[key]
        else:
            arguments[key] = value
    call["function"]["arguments"] = json.dumps(arguments)


def set_output(record: dict[str, Any], tool: str, value: Any, nth: int = 0) -> None:
    _, call = calls_of(record, tool)[nth]
    response_of(record, call)["content"] = json.dumps(value)


def edit_output(
    record: dict[str, Any], tool: str, edit: Callable[[Any], None], nth: int = 0
) -> None:
    _, call = calls_of(record, tool)[nth]
    response = response_of(record, call)
    value = json.loads(response["content"])
    edit(value)
    response["content"] = json.dumps(value)


def rewrite(record: dict[str, Any], old: str, new: str, role: str = "assistant") -> None:
    """Replace `old` in the one `role` message whose text contains it."""
    [message] = [
        m for m in record["messages"] if m["role"] == role and old in (m.get("content") or "")
    ]
    message["content"] = message["content"].replace(old, new)


def drop_call(record: dict[str, Any], tool: str, nth: int = 0) -> None:
    """Remove the assistant message issuing this (only) call, and its tool message."""
    index, call = calls_of(record, tool)[nth]
    assert len(record["messages"][index]["tool_calls"]) == 1
    response = response_of(record, call)
    del record["messages"][index]
    record["messages"].remove(response)


def tool_schema(record: dict[str, Any], tool: str) -> dict[str, Any]:
    return next(t for t in record["tools"] if t["function"]["name"] == tool)["function"]


# ---- the corruptions -----------------------------------------------------------------------
# Short names of the gold records.
LOST = "banking-lost-card-freeze"
PAY = "banking-pay-saved-payee"
LIMIT = "banking-payee-daily-limit"
DISPUTE = "banking-duplicate-charge-dispute"
REFUSE = "banking-over-limit-and-new-payee"
UNFREEZE = "banking-unfreeze-and-dispute-status"


def rename_tool(r: dict[str, Any]) -> None:
    _, call = calls_of(r, "list_payees")[0]
    call["function"]["name"] = "list_beneficiaries"


def truncate_arguments(r: dict[str, Any]) -> None:
    _, call = calls_of(r, "freeze_card")[0]
    call["function"]["arguments"] = call["function"]["arguments"][:-12]


def amount_as_text(r: dict[str, Any]) -> None:
    set_arguments(r, "transfer_funds", amount="120.00")


def drop_required(r: dict[str, Any]) -> None:
    set_arguments(r, "open_dispute", reason=DELETE)


def reason_outside_enum(r: dict[str, Any]) -> None:
    set_arguments(r, "freeze_card", reason="misplaced")


def extra_property(r: dict[str, Any]) -> None:
    set_arguments(r, "transfer_funds", urgent=True)


def drop_tool_message(r: dict[str, Any]) -> None:
    _, call = calls_of(r, "list_disputes")[0]
    r["messages"].remove(response_of(r, call))


def orphan_tool_message(r: dict[str, Any]) -> None:
    _, call = calls_of(r, "list_payees")[0]
    response_of(r, call)["tool_call_id"] = "call_99"


def user_after_tool(r: dict[str, Any]) -> None:
    _, call = calls_of(r, "transfer_funds")[0]
    at = r["messages"].index(response_of(r, call)) + 1
    r["messages"].insert(at, {"role": "user", "content": "Hello? Did it work?"})


def assistant_twice(r: dict[str, Any]) -> None:
    r["messages"].append(copy.deepcopy(r["messages"][-1]))


def inflate_balance(r: dict[str, Any]) -> None:
    edit_output(r, "transfer_funds", lambda out: out.update(new_balance=1326.35))


def invent_verification_error(r: dict[str, Any]) -> None:
    set_output(r, "verify_customer", {"error": "the account is locked after too many attempts"})


def wrong_refusal_reason(r: dict[str, Any]) -> None:
    error = "insufficient funds: the balance of acc_4201 is $1,842.10"
    set_output(r, "transfer_funds", {"error": error})


def overdraw(r: dict[str, Any]) -> None:
    # 6250.0 is grounded (the savings balance), but checking cannot cover it.
    set_arguments(r, "transfer_funds", amount=6250.0)


def error_for_a_success(r: dict[str, Any]) -> None:
    error = "customer is not verified; call verify_customer first"
    set_output(r, "list_disputes", {"error": error})


def invent_payee(r: dict[str, Any]) -> None:
    set_arguments(r, "transfer_funds", to_id="pay_506")


def misremember_birthday(r: dict[str, Any]) -> None:
    set_arguments(r, "verify_customer", nth=1, date_of_birth="1987-06-12")


def invent_dispute_id(r: dict[str, Any]) -> None:
    rewrite(r, "about dispute dsp_1", "about dispute dsp_2")


def unreadable_row(r: dict[str, Any]) -> None:
    # A scenario row the tool code cannot read: the tool raises ValueError, not ToolError.
    r["scenario"]["rows"] = {
        "transactions": [
            {
                "transaction_id": "txn_92003",
                "account_id": "acc_4301",
                "posted_on": "2025-03-06",
                "description": "Corner Bakery",
                "amount": -19.99,
                "card_id": "crd_7003",
            }
        ],
        "disputes": [
            {
                "dispute_id": "dsp_8002",
                "transaction_id": "txn_92003",
                "reason": "unrecognized",
                "status": "under_review",
                "opened_at": "2025-03-07T09:00:00+00:00",
                "decision_due": "in two weeks",
            }
        ],
    }


def invented_total(r: dict[str, Any]) -> None:
    # The three payments add up to $88.89; nothing gives $95.40.
    rewrite(r, "Do you recognise", "Together they come to $95.40. Do you recognise")


def wrong_new_balance(r: dict[str, Any]) -> None:
    rewrite(r, "balance is now $1,362.35", "balance is now $1,326.35")


def wrong_decision_date(r: dict[str, Any]) -> None:
    rewrite(r, "due by April 28, 2025", "due by April 18, 2025")


def wrong_disputed_amount(r: dict[str, Any]) -> None:
    rewrite(r, "the $48.20 charge", "the $84.20 charge")


def success_after_refusal(r: dict[str, Any]) -> None:
    _, call = calls_of(r, "transfer_funds")[0]
    after = r["messages"][r["messages"].index(response_of(r, call)) + 1]
    after["content"] = "Done: $800.00 has been sent to Luis Ortega. Anything else I can do?"


def freeze_without_call(r: dict[str, Any]) -> None:
    drop_call(r, "freeze_card")


def payment_without_call(r: dict[str, Any]) -> None:
    drop_call(r, "transfer_funds")
    rewrite(r, " (transfer trf_1)", "")


def ask_and_act_at_once(r: dict[str, Any]) -> None:
    index, _ = calls_of(r, "transfer_funds")[0]
    acting = r["messages"][index]
    question = r["messages"][index - 2]
    assert question["role"] == "assistant" and "Shall I transfer" in question["content"]
    question["tool_calls"] = acting["tool_calls"]
    del r["messages"][index - 1 : index + 1]  # the user's "yes" and the separate call


def amount_not_agreed(r: dict[str, Any]) -> None:
    set_arguments(r, "transfer_funds", nth=1, amount=800.0)  # the user agreed to $500.00


def user_hesitates(r: dict[str, Any]) -> None:
    rewrite(r, "Yes, please freeze it.", "No, wait, let me check my bag first.", role="user")


def act_without_asking(r: dict[str, Any]) -> None:
    rewrite(
        r,
        "Shall I open a dispute for the second charge, txn_91003, as a duplicate charge? (yes/no)",
        "I'll open a dispute for the second charge, txn_91003, as a duplicate charge.",
    )


def repeat_lookup(r: dict[str, Any]) -> None:
    index, call = calls_of(r, "get_transactions")[0]
    response = response_of(r, call)
    copies = []
    for n in range(3):
        again = copy.deepcopy(r["messages"][index])
        again["tool_calls"][0]["id"] = f"call_again_{n}"
        copies += [again, {**response, "tool_call_id": f"call_again_{n}"}]
    at = r["messages"].index(response) + 1
    r["messages"][at:at] = copies


def leak_tool_code(r: dict[str, Any]) -> None:
    source = (BANKING / "tools.py").read_text(encoding="utf-8")
    r["messages"][0]["content"] += "\n\nYour tools are implemented as follows:\n" + source


def loosen_schema(r: dict[str, Any]) -> None:
    tool_schema(r, "transfer_funds")["parameters"]["properties"]["amount"] = {"type": "string"}
    set_arguments(r, "transfer_funds", amount="120.00")


def drop_declared_tool(r: dict[str, Any]) -> None:
    r["tools"] = [t for t in r["tools"] if t["function"]["name"] != "unfreeze_card"]


def name_other_environment(r: dict[str, Any]) -> None:
    r["environment"]["name"] = "retail"


def forge_environment_hash(r: dict[str, Any]) -> None:
    r["environment"]["sha256"] = "0" * 64


def forge_final_state(r: dict[str, Any]) -> None:
    r["verification"]["final_state_sha256"] = GOLD[PAY]["verification"]["final_state_sha256"]


def forge_state_diff(r: dict[str, Any]) -> None:
    [row] = r["verification"]["state_diff"]["transfers"]["inserted"]
    row["amount"] = 12.0


def not_an_object(r: dict[str, Any]) -> Any:
    return [r["messages"]]


def drop_messages(r: dict[str, Any]) -> None:
    del r["messages"]


@dataclass(frozen=True)
class Case:
    name: str
    record_id: str
    corrupt: Callable[[dict[str, Any]], Any]
    code: str
    max_messages: int | None = None
    """A `pipeline.max_messages` setting for this case (the record is verified with it)."""


CASES = [
    Case("unknown tool", PAY, rename_tool, "unknown_tool"),
    Case("arguments not JSON", LOST, truncate_arguments, "malformed_arguments"),
    Case("amount as text", PAY, amount_as_text, "invalid_arguments"),
    Case("missing required argument", DISPUTE, drop_required, "invalid_arguments"),
    Case("reason outside the enum", LOST, reason_outside_enum, "invalid_arguments"),
    Case("undeclared argument", REFUSE, extra_property, "invalid_arguments"),
    Case("tool message dropped", UNFREEZE, drop_tool_message, "missing_tool_response"),
    Case("tool message for no call", REFUSE, orphan_tool_message, "orphan_tool_response"),
    Case("user speaks after a tool", LIMIT, user_after_tool, "turn_order"),
    Case("assistant replies twice", UNFREEZE, assistant_twice, "turn_order"),
    Case("invented balance in an output", PAY, inflate_balance, "output_mismatch"),
    Case("invented error reason", PAY, invent_verification_error, "output_mismatch"),
    Case("wrong reason for a refusal", LIMIT, wrong_refusal_reason, "output_mismatch"),
    Case("refused transfer shown as success", PAY, overdraw, "unexpected_error"),
    Case("success shown as an error", UNFREEZE, error_for_a_success, "unexpected_success"),
    Case("invented payee id", REFUSE, invent_payee, "ungrounded_value"),
    Case("misremembered birthday", PAY, misremember_birthday, "ungrounded_value"),
    Case("invented id in a reply", DISPUTE, invent_dispute_id, "ungrounded_value"),
    Case("row the tool cannot read", UNFREEZE, unreadable_row, "environment_crash"),
    Case("total nobody computed", LOST, invented_total, "ungrounded_claim"),
    Case("wrong new balance", PAY, wrong_new_balance, "contradicts_output"),
    Case("wrong decision date", DISPUTE, wrong_decision_date, "contradicts_output"),
    Case("wrong disputed amount", UNFREEZE, wrong_disputed_amount, "contradicts_output"),
    Case("success claimed after a refusal", LIMIT, success_after_refusal, "false_success"),
    Case("freeze claimed without the call", LOST, freeze_without_call, "unbacked_action"),
    Case("payment claimed without the call", REFUSE, payment_without_call, "unbacked_action"),
    Case("asks and transfers at once", PAY, ask_and_act_at_once, "missing_confirmation"),
    Case("amount other than agreed", LIMIT, amount_not_agreed, "missing_confirmation"),
    Case("user hesitates", LOST, user_hesitates, "missing_confirmation"),
    Case("acts without asking", DISPUTE, act_without_asking, "missing_confirmation"),
    Case("same lookup four times", LOST, repeat_lookup, "repetition"),
    Case("longer than allowed", LOST, lambda r: None, "too_long", max_messages=12),
    Case("tool code in the prompt", LOST, leak_tool_code, "leak"),
    Case("schema loosened in the record", PAY, loosen_schema, "tools_mismatch"),
    Case("tool left out of the record", UNFREEZE, drop_declared_tool, "tools_mismatch"),
    Case("other environment named", DISPUTE, name_other_environment, "environment_mismatch"),
    Case("forged environment hash", REFUSE, forge_environment_hash, "environment_mismatch"),
    Case("forged final state", LIMIT, forge_final_state, "state_mismatch"),
    Case("forged state diff", PAY, forge_state_diff, "state_mismatch"),
    Case("not an object", PAY, not_an_object, "invalid_record"),
    Case("no messages", PAY, drop_messages, "invalid_record"),
]


def corrupted(case: Case) -> Any:
    """A fresh copy of the case's gold record with the case's corruption applied."""
    record = copy.deepcopy(GOLD[case.record_id])
    record["id"] = f"{case.record_id}/{case.name}"
    replaced = case.corrupt(record)
    return record if replaced is None else replaced


def _settings(max_messages: int | None) -> Settings:
    if max_messages is None:
        return SETTINGS
    return SETTINGS.model_copy(update={"pipeline": PipelineSettings(max_messages=max_messages)})


async def _verify_cases() -> dict[str, dict[str, Any]]:
    verdicts: dict[str, dict[str, Any]] = {}
    for limit in dict.fromkeys(case.max_messages for case in CASES):
        batch = [case for case in CASES if case.max_messages == limit]
        records = [corrupted(case) for case in batch]
        results = await verify_all("banking", records, _settings(limit))
        verdicts.update({case.name: result for case, result in zip(batch, results, strict=True)})
    return verdicts


@pytest.fixture(scope="module")
def verdicts() -> dict[str, dict[str, Any]]:
    """Every case's verdict, from one `verify_records` batch per settings variant."""
    with ThreadPoolExecutor(1) as pool:  # its own event loop, apart from the tests' loops
        return pool.submit(asyncio.run, _verify_cases()).result()


def test_the_cases_cover_every_code_a_record_can_earn() -> None:
    record_codes = {
        "unknown_tool", "malformed_arguments", "invalid_arguments", "missing_tool_response",
        "orphan_tool_response", "turn_order", "output_mismatch", "unexpected_error",
        "unexpected_success", "ungrounded_value", "environment_crash", "ungrounded_claim",
        "contradicts_output", "false_success", "unbacked_action", "missing_confirmation",
        "repetition", "too_long", "leak", "tools_mismatch", "environment_mismatch",
        "state_mismatch", "invalid_record",
    }  # fmt: skip
    assert {case.code for case in CASES} == record_codes
    assert len(CASES) >= 25
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            case,
            id=case.name,
            marks=pytest.mark.xfail(
                case.code not in CODES, reason=f"{case.code} is not a problem code yet"
            ),
        )
        for case in CASES
    ],
)
def test_corruption_earns_its_code(case: Case, verdicts: dict[str, dict[str, Any]]) -> None:
    verdict = verdicts[case.name]
    assert verdict["ok"] is False
    assert case.code in {p["code"] for p in verdict["problems"]}, verdict["problems"]
