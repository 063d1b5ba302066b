"""The gold check: a kept record's task must be passable by its own reference.

Two levels. `gold_problems(record)` is pure and cheap: the reference replay ran cleanly
and deterministically, and the dialogue has the shape the scripted user and gold agent can
play (it opens with a user turn). `play_gold(record, environment, sandbox)` is the real
thing: the record exported as a task, played in a fresh sandbox episode by the gold agent
and the scripted user, and scored as any agent would be. The document graphs run it before
emitting a record, so a task its own gold cannot pass never reaches the data. Nor does
a task an agent passes by doing nothing (no call, no fact told: the expected final state
is the initial one and nothing is required): a `trivial_task` reject.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gem_graph.contracts import Reject
    from gem_graph.environment import Environment
    from gem_graph.eval.reward import Reward
    from gem_graph.eval.task import EvalTask
    from gem_graph.sandbox import Sandbox

GOLD_MAX_TURNS = 10_000
"""The gold check plays the whole reference: the eval's turn cap is for agents."""


def gold_problems(record: Mapping[str, Any]) -> list[str]:
    """Why the record's own reference could not pass as a task (empty when it can)."""
    problems: list[str] = []
    verification = record.get("verification") or {}
    if verification.get("deterministic") is False:
        problems.append("the reference replay was not deterministic")
    for entry in verification.get("calls") or []:
        if isinstance(entry, dict) and entry.get("status") not in ("ok", "tool_error"):
            problems.append(
                f"the reference call to {entry.get('tool')!r} ended {entry.get('status')!r}"
            )
            break
    messages = record.get("messages") or []
    first = next((m for m in messages if isinstance(m, dict) and m.get("role") != "system"), None)
    if first is None or first.get("role") != "user":
        problems.append("the dialogue does not open with a user turn")
    return problems


class _OneEnvironment:
    """A catalog holding the single environment a record was made in."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment

    def get(self, task: EvalTask) -> Environment:
        return self.environment


async def play_gold(
    record: Mapping[str, Any], environment: Environment, sandbox: Sandbox
) -> Reward:
    """Export `record` as a task and play it with the gold agent; the score it got.

    Raises `ExportError` when the record cannot be a task at all, and lets sandbox
    infrastructure errors propagate (the caller retries or fails the document).
    """
    reward, _ = await _play(record, environment, sandbox)
    return reward


async def _play(
    record: Mapping[str, Any], environment: Environment, sandbox: Sandbox
) -> tuple[Reward, bool]:
    """The gold's score, and whether an agent doing nothing would score 1 too."""
    from gem_graph.eval.agents import GoldAgent
    from gem_graph.eval.environment import EpisodeLimits, TaskEnvironment
    from gem_graph.eval.reward import score, zero
    from gem_graph.eval.task import EvalTask
    from gem_graph.export.tasks import to_task

    task = EvalTask.model_validate(to_task(dict(record)))
    budget = float(getattr(sandbox.settings, "episode_timeout_s", 3600))  # its own deadline
    limits = EpisodeLimits(max_turns=GOLD_MAX_TURNS, time_budget_s=budget)
    env = TaskEnvironment(sandbox, _OneEnvironment(environment), limits=limits)
    agent = GoldAgent()
    try:
        await env.reset(task)
        idle = [*env.messages, {"role": "assistant", "content": "OK."}]
        trivial = score(task, await env.state_sha256(), idle).reward >= 1.0
        while not env.done:
            turn = await agent.act(task, list(env.messages))
            await env.step(turn.message)
    finally:
        await env.close()
    return env.result or zero("environment_crash", "the gold episode did not end"), trivial


async def gold_reject(
    state: dict[str, Any], record: Mapping[str, Any], environment: Environment, sandbox: Sandbox
) -> Reject | None:
    """At emit time: None when the record's gold scores 1.0, else the document's reject
    (`gold_failed`, at the stage it reached). Records made without execution pass."""
    from gem_graph.contracts import make_reject
    from gem_graph.export.dialogue import ExportError
    from gem_graph.sandbox import retry_infrastructure
    from gem_graph.usage import summarize_usage

    if not record.get("verification"):
        return None
    problems = gold_problems(record)
    code = "gold_failed"
    if not problems:
        try:
            reward, trivial = await retry_infrastructure(
                lambda: _play(record, environment, sandbox)
            )
        except ExportError as exc:
            problems.append(f"the record cannot be a task: {exc}")
        else:
            if reward.reward < 1.0:
                problems.append(f"its gold replay scored 0 ({reward.reason}: {reward.detail})")
            elif trivial:
                code = "trivial_task"
    if not problems and code == "gold_failed":
        return None
    reason = "the task's own gold cannot pass it: " + "; ".join(problems)
    if code == "trivial_task":
        reason = (
            "an agent doing nothing passes the task: the expected final state is the "
            "initial one and no fact must be told"
        )
    return make_reject(
        state["document"]["id"],
        str(state.get("stage") or "judge"),
        code,
        reason,
        attempts=int((state.get("attempts") or {}).get(state.get("stage"), 0)),
        usage=summarize_usage(list(state.get("usage", []))),
    )
