"""Dialogue statistics and the behaviour-pattern quota."""

from __future__ import annotations

import json

import pytest

from gem_graph.checks.stats import check_patterns, is_tool_error, trajectory_stats


def codes(problems):
    return sorted({p["code"] for p in problems})


def with_failed_lookup(messages):
    """Make get_order fail first (wrong id), then succeed on a retry."""
    failed = json.loads(json.dumps(messages[4:6]))
    failed[0]["tool_calls"][0]["id"] = "call_0"
    failed[0]["tool_calls"][0]["function"]["arguments"] = '{"order_id": "ORD-1O01"}'
    failed[1]["tool_call_id"] = "call_0"
    failed[1]["content"] = '{"error": "Order ORD-1O01 not found."}'
    return messages[:4] + failed + messages[4:]


def test_stats_of_the_retail_dialogue(retail_messages):
    stats = trajectory_stats(retail_messages, ["multi_hop", "clarification", "multi_hop"])
    assert stats == {
        "messages": 13,
        "user_turns": 3,
        "assistant_turns": 6,
        "tool_calls": 3,
        "distinct_tools": 3,
        "tool_errors": 0,
        "errors_recovered": 0,
        "patterns": ["clarification", "multi_hop"],
    }


def test_recovered_error_is_counted(retail_messages):
    stats = trajectory_stats(with_failed_lookup(retail_messages))
    assert stats["tool_calls"] == 4
    assert stats["distinct_tools"] == 3
    assert stats["tool_errors"] == 1
    assert stats["errors_recovered"] == 1


def test_error_without_later_success_is_not_recovered(retail_messages):
    messages = with_failed_lookup(retail_messages)
    messages[7]["content"] = '{"error": "Service unavailable."}'  # the retry fails too
    stats = trajectory_stats(messages)
    assert stats["tool_errors"] == 2
    assert stats["errors_recovered"] == 0


def test_success_of_another_tool_does_not_recover(retail_messages):
    retail_messages[5]["content"] = '{"error": "Order not found."}'
    stats = trajectory_stats(retail_messages)
    assert stats["tool_errors"] == 1
    assert stats["errors_recovered"] == 0


@pytest.mark.parametrize(
    "messages", [None, "x", [None, 3, {"role": "tool", "content": 5}, {"role": {"x": 1}}]]
)
def test_stats_of_garbage_never_raise(messages):
    stats = trajectory_stats(messages, "not a list")
    assert stats["tool_calls"] == 0
    assert stats["patterns"] == []


def test_is_tool_error():
    assert is_tool_error('{"error": "nope"}')
    assert not is_tool_error('{"status": "ok"}')
    assert not is_tool_error('["error"]')
    assert not is_tool_error("error")
    assert not is_tool_error(None)


def test_patterns_quota_met():
    patterns = ["clarification", "multi_hop", "error_recovery", "multi_hop"]
    assert check_patterns(patterns, 3) == []


def test_too_few_distinct_patterns():
    problems = check_patterns(["clarification", "clarification"], 3)
    assert codes(problems) == ["pattern_quota"]
    assert "2 distinct" not in problems[0]["message"]
    assert "1 distinct" in problems[0]["message"]


def test_pattern_at_most_twice():
    problems = check_patterns(["multi_hop"] * 3 + ["clarification", "error_recovery"], 3)
    assert codes(problems) == ["pattern_quota"]
    assert "'multi_hop'" in problems[0]["message"]


@pytest.mark.parametrize("bad", ["teleport", None, 3])
def test_unknown_patterns(bad):
    problems = check_patterns(["clarification", "multi_hop", "error_recovery", bad], 3)
    assert codes(problems) == ["pattern_quota"]


@pytest.mark.parametrize("patterns", [None, "multi_hop", {"multi_hop": 1}])
def test_patterns_must_be_a_list(patterns):
    assert codes(check_patterns(patterns, 0)) == ["pattern_quota"]


def test_zero_minimum_allows_none():
    assert check_patterns([], 0) == []
