"""What the judge is told about the mechanical checks: what ran, and what was exempt."""

from __future__ import annotations

from typing import Any

from gem_graph.settings import PipelineSettings, Settings
from gem_graph.stages.judge import rule_findings


def state(**extra: Any) -> dict[str, Any]:
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": "a"},
    ]
    return {
        "trajectory": {"messages": messages, "patterns": ["clarification", "multi_hop"]},
        "blueprint": {"tools": [], "rules": [], "confirm_before": ["cancel_order"]},
        **extra,
    }


def test_findings_without_execution_say_what_was_not_checked():
    text = rule_findings(state())
    assert "- Consent for cancel_order:" in text
    assert "Execution: none" in text
    assert "claimed writes were not checked (no environment)" in text
    assert "Exempt: booleans and null" in text
    assert "every argument value appears earlier" not in text
    assert "clarification, multi_hop; only their names and number were checked" in text


def test_findings_with_an_environment_use_its_consent_list_and_the_settings():
    environment = {"manifest": {"confirm_before": [], "policy": "p"}}
    verification = {"calls": [{"call_id": "c1"}, {"call_id": "c2"}]}
    settings = Settings(pipeline=PipelineSettings(max_messages=77, max_identical_calls=2))
    text = rule_findings(state(environment=environment, verification=verification), settings)
    assert "- Consent: no tool is marked as needing agreement; nothing was checked." in text
    assert "all 2 tool calls were executed" in text
    assert "no write is claimed without a successful call of it" in text
    assert "at most 77 messages, no run of more than 2 identical calls" in text
