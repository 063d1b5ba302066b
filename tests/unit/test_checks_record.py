"""A record's claims about itself must match the environment and the replay."""

from __future__ import annotations

from typing import Any

from gem_graph.checks.record import check_record_claims

TOOLS = [
    {"type": "function", "function": {"name": "b", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "a", "parameters": {"type": "object"}}},
]
REF = {"name": "shop", "sha256": "e" * 64}
DIFF = {"orders": {"inserted": [{"id": 1}], "updated": [], "deleted": []}}


def codes(record: dict[str, Any], sha: str | None = "f" * 64) -> list[str]:
    found = check_record_claims(
        record, environment_ref=REF, tools=TOOLS, final_state_sha256=sha, state_diff=DIFF
    )
    return [p["code"] for p in found]


def test_a_record_that_claims_nothing_or_the_truth_passes() -> None:
    assert codes({"messages": []}) == []
    honest = {
        "tools": list(reversed(TOOLS)),  # order carries no meaning
        "environment": dict(REF),
        "verification": {"final_state_sha256": "f" * 64, "state_diff": DIFF},
    }
    assert codes(honest) == []


def test_edited_tools_are_a_mismatch() -> None:
    loose = [TOOLS[0], {"type": "function", "function": {"name": "a", "parameters": {}}}]
    assert codes({"tools": loose}) == ["tools_mismatch"]


def test_a_forged_environment_name_or_hash_is_a_mismatch() -> None:
    assert codes({"environment": {"name": "bank", "sha256": REF["sha256"]}}) == [
        "environment_mismatch"
    ]
    assert codes({"environment": {"name": "shop", "sha256": "0" * 64}}) == ["environment_mismatch"]
    assert codes({"environment": "shop"}) == ["invalid_record"]


def test_a_forged_final_state_or_diff_is_a_state_mismatch() -> None:
    assert codes({"verification": {"final_state_sha256": "0" * 64}}) == ["state_mismatch"]
    assert codes({"verification": {"state_diff": {}}}) == ["state_mismatch"]


def test_the_state_is_not_judged_when_the_replay_did_not_finish() -> None:
    assert codes({"verification": {"final_state_sha256": "0" * 64}}, sha=None) == []
