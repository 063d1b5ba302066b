"""Every static check of one dialogue, before or without execution.

Public API:
- `DialogueContext`: what the checks may know besides the messages and tools: the
  scenario clock, which tools only read, which need the user's confirmation, the policy,
  the tool source code (to catch leaks into the prompt) and the length limits.
- `check_dialogue(messages, tools, context) -> list[ProblemDict]`: structure, turn order,
  arguments and grounding, and the checks that depend on the context.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gem_graph.checks.claims import check_claims
from gem_graph.checks.consent import check_consent
from gem_graph.checks.grounding import check_grounding
from gem_graph.checks.hygiene import check_hygiene
from gem_graph.checks.problems import ProblemDict
from gem_graph.checks.trajectory import check_trajectory


@dataclass(frozen=True)
class DialogueContext:
    """Facts about the environment and scenario that the dialogue checks rely on.

    `read_only_tools` is None when unknown (no environment yet): checks that need to tell
    write tools apart then skip what they cannot decide.
    """

    scenario_now: str | None = None
    read_only_tools: frozenset[str] | None = None
    confirm_before: frozenset[str] = field(default_factory=frozenset)
    policy: str = ""
    tool_sources: str | None = None
    max_messages: int = 200
    max_identical_calls: int = 3


def check_dialogue(
    messages: Any, tools: Any, context: DialogueContext | None = None
) -> list[ProblemDict]:
    """All static problems of `messages` using `tools`; no I/O, no model calls."""
    context = context or DialogueContext()
    return [
        *check_trajectory(messages, tools),
        *check_grounding(messages, tools, scenario_now=context.scenario_now),
        *check_consent(messages, context.confirm_before),
        *check_claims(
            messages,
            tools,
            scenario_now=context.scenario_now,
            read_only_tools=context.read_only_tools,
            policy=context.policy,
        ),
        *check_hygiene(
            messages,
            max_messages=context.max_messages,
            max_identical_calls=context.max_identical_calls,
            tool_sources=context.tool_sources,
        ),
    ]
