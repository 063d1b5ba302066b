"""Comparing written tool outputs with real call results."""

from __future__ import annotations

import json

import pytest

from gem_graph.checks.execution import compare_call, tool_message_content


def ok(result: object) -> dict:
    return {"status": "ok", "result": result}


def refused(message: str) -> dict:
    return {"status": "tool_error", "error": message}


def codes(problems: list) -> list[str]:
    return [p["code"] for p in problems]


def test_tool_message_content_follows_the_contract() -> None:
    assert tool_message_content(ok({"name": "Zoë", "n": 2})) == '{"name": "Zoë", "n": 2}'
    assert json.loads(tool_message_content(refused("order is shipped"))) == {
        "error": "order is shipped"
    }
    with pytest.raises(ValueError):
        tool_message_content({"status": "timeout"})


def test_equal_json_passes_whatever_the_formatting() -> None:
    written = '{\n  "total": 137.50, "items": [1, 2]\n}'
    assert compare_call(written, ok({"items": [1, 2], "total": 137.5}), "m[3]") == []


def test_different_values_are_an_output_mismatch_quoting_the_real_output() -> None:
    problems = compare_call('{"status": "refunded"}', ok({"status": "requested"}), "m[3]")
    assert codes(problems) == ["output_mismatch"]
    assert '{"status": "requested"}' in problems[0]["message"]
    assert problems[0]["where"] == "m[3]"


def test_booleans_are_not_numbers() -> None:
    assert codes(compare_call('{"in_stock": 1}', ok({"in_stock": True}), "w")) == [
        "output_mismatch"
    ]


def test_long_real_outputs_are_truncated_in_the_feedback() -> None:
    problems = compare_call("[]", ok(["x" * 50] * 100), "w")
    assert len(problems[0]["message"]) < 1000


def test_shown_error_but_real_success_is_unexpected_success() -> None:
    problems = compare_call('{"error": "not found"}', ok({"id": "a1"}), "w")
    assert codes(problems) == ["unexpected_success"]
    assert "a1" in problems[0]["message"]


def test_shown_success_but_real_refusal_is_unexpected_error() -> None:
    problems = compare_call('{"status": "cancelled"}', refused("only pending orders"), "w")
    assert codes(problems) == ["unexpected_error"]
    assert "only pending orders" in problems[0]["message"]


def test_a_written_error_must_give_the_real_reason() -> None:
    [found] = compare_call('{"error": "nope"}', refused("order not found"), "w")
    assert found["code"] == "output_mismatch" and "order not found" in found["message"]


def test_error_reasons_compare_without_case_or_spacing() -> None:
    assert compare_call('{"error": "Order  not   FOUND "}', refused("order not found"), "w") == []


def test_a_written_string_that_is_not_json_compares_as_a_string() -> None:
    assert compare_call("pong", ok("pong"), "w") == []
    assert codes(compare_call("pong", ok("ping"), "w")) == ["output_mismatch"]


def test_a_missing_written_output_is_left_to_the_structural_checks() -> None:
    assert compare_call(None, ok(1), "w") == []


def test_a_crash_in_tool_code_is_an_environment_crash() -> None:
    real = {"status": "error", "error_type": "KeyError", "error": "'qty'"}
    problems = compare_call('{"ok": true}', real, "w")
    assert codes(problems) == ["environment_crash"]
    assert "KeyError" in problems[0]["message"]


@pytest.mark.parametrize(
    "status", ["timeout", "cpu_limit", "memory", "output_limit", "crashed", "protocol_error"]
)
def test_sandbox_stops_are_violations(status: str) -> None:
    problems = compare_call("{}", {"status": status, "error": "limit hit"}, "w")
    assert codes(problems) == ["sandbox_violation"]
    assert status in problems[0]["message"]
