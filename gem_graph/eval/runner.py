"""Evaluate an agent on tasks: every (task, trial) an isolated episode, results stored as
they end, many episodes at once under one sandbox.

An episode's outcome is one of three: `scored` (reward 1 or 0, with the reason), a
`bad_task` (the task cannot be played: unknown environment, corrupt state), or `failed`
(the sandbox machinery, a hung user simulator or an endpoint's transport failed; no
reward, retried on resume). The agent's own mistakes are scored: an exception it raises is
0 `agent_error`, its slowness 0 `time_budget`. An exception in one episode never reaches
the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gem_graph.eval.agents import Agent
from gem_graph.eval.catalog import EnvironmentCatalog, TaskError
from gem_graph.eval.environment import EpisodeLimits, TaskEnvironment, check_deadline
from gem_graph.eval.metrics import summarize
from gem_graph.eval.reward import zero
from gem_graph.eval.store import EvalStore
from gem_graph.eval.task import BadTask, EvalTask
from gem_graph.eval.user import ScriptedUser, UserSimulator
from gem_graph.sandbox import Sandbox, SandboxUnavailable
from gem_graph.settings import SandboxSettings

AgentFactory = Callable[[int], Agent]
UserFactory = Callable[[int], UserSimulator]
SANDBOX_GRACE_S = 30.0
"""Added to the time budget for the sandbox's own episode deadline: the runner's budget
ends an episode first, with a `time_budget` reason, before the sandbox kills it."""


@dataclass
class EvalConfig:
    """What to run: trials, concurrency, caps, where environments are, sandbox settings."""

    trials: int = 1
    concurrency: int = 4
    limits: EpisodeLimits = field(default_factory=EpisodeLimits)
    environment_roots: list[Path] = field(default_factory=list)
    sandbox: SandboxSettings = field(default_factory=SandboxSettings)


def sandbox_settings_for(base: SandboxSettings, limits: EpisodeLimits) -> SandboxSettings:
    """The sandbox settings with an episode deadline that fits a whole conversation."""
    wanted = max(base.episode_timeout_s, limits.time_budget_s + SANDBOX_GRACE_S)
    return base.model_copy(update={"episode_timeout_s": wanted})


async def run_episode(
    env: TaskEnvironment, agent: Agent, task: EvalTask, trial: int = 0
) -> dict[str, Any]:
    """Play one task to its end; returns the result row (never raises for one episode's
    failure, except `SandboxUnavailable`, which stops everything; a sandbox whose episode
    deadline is shorter than the time budget raises `ValueError` up front)."""
    from gem_graph.sandbox import SandboxInfrastructureError

    check_deadline(env.sandbox, env.limits)

    base: dict[str, Any] = {
        "task_id": task.id,
        "trial": trial,
        "environment": task.environment.name,
    }
    try:
        async with asyncio.timeout(env.limits.time_budget_s):
            await env.reset(task)
            while not env.done:
                try:
                    with env.waiting_on("agent"):
                        turn = await agent.act(task, list(env.messages))
                except Exception as exc:
                    if is_transport_error(exc):
                        raise
                    await env.truncate(zero("agent_error", f"{type(exc).__name__}: {exc}"[:500]))
                    break
                env.add_tokens(turn.tokens)
                await env.step(turn.message)
    except TaskError as exc:
        await env.close()
        return {
            **base,
            "status": "bad_task",
            "reward": None,
            "reason": exc.code,
            "detail": exc.reason,
        }
    except TimeoutError:
        if env.done and env.result is not None:  # it had ended (closing timed out): keep it
            await env.close()
        elif _agents_time(env):
            await env.truncate(zero("time_budget", f"over {env.limits.time_budget_s}s"))
        else:  # the sandbox or the user simulator did not answer: not the agent's doing
            who = env.waiting or "the episode's start"
            await env.close()
            return {
                **base,
                "status": "failed",
                "reward": None,
                "reason": "infrastructure",
                "detail": f"timed out waiting on {who} ({env.limits.time_budget_s}s budget)",
                "messages": env.messages,
            }
    except SandboxUnavailable:
        await env.close()
        raise
    except SandboxInfrastructureError as exc:
        await env.close()
        return {
            **base,
            "status": "failed",
            "reward": None,
            "reason": "infrastructure",
            "detail": str(exc)[:500],
        }
    except Exception as exc:  # the agent's or user's endpoint transport, or our own bug
        await env.close()
        return {
            **base,
            "status": "failed",
            "reward": None,
            "reason": type(exc).__name__,
            "detail": str(exc)[:500],
            "messages": env.messages,
        }
    reward = env.result
    assert reward is not None
    info = env.info()
    return {
        **base,
        "status": "scored",
        "reward": reward.reward,
        "reason": reward.reason,
        "detail": reward.detail,
        "missing_facts": reward.missing_facts,
        "final_state_sha256": info.pop("final_state_sha256", None),
        "state_diff": info.pop("state_diff", None),
        "info": {k: v for k, v in info.items() if k != "reward"},
        "messages": env.messages,
    }


def _agents_time(env: TaskEnvironment) -> bool:
    """Whether a timeout is the agent's: it was being waited on, or it took most of the
    budget (a slow agent cut during a quick tool call). A sandbox or user simulator that
    hung is not."""
    if env.waiting == "agent":
        return True
    others = env.waited.get("sandbox", 0.0) + env.waited.get("user", 0.0)
    return env.waiting is not None and env.waited.get("agent", 0.0) > others


def is_transport_error(exc: BaseException) -> bool:
    """An endpoint's transport failing (connection, timeout, rate limit, 5xx): `failed` and
    retried, not the agent's 0. Anything else an agent raises is its own `agent_error`."""
    from gem_graph.llm import is_retryable

    try:
        import httpx
    except ImportError:  # pragma: no cover - httpx comes with openai
        transport: tuple[type[BaseException], ...] = (ConnectionError,)
    else:
        transport = (ConnectionError, httpx.TransportError)
    return isinstance(exc, transport) or is_retryable(exc)


def _bad(item: BadTask, trial: int) -> dict[str, Any]:
    return {
        "task_id": item.id,
        "trial": trial,
        "environment": item.environment,
        "status": "bad_task",
        "reward": None,
        "reason": item.code,
        "detail": item.reason,
    }


async def run_eval(
    tasks: Iterable[EvalTask | BadTask],
    *,
    make_agent: AgentFactory,
    out_dir: str | Path,
    config: EvalConfig,
    make_user: UserFactory | None = None,
    describe: dict[str, Any] | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    sandbox: Sandbox | None = None,
) -> dict[str, Any]:
    """Run every (task, trial) not already in `out_dir`'s store; returns the summary.

    `describe` (agent, user, models, seeds, prompt versions, caps) is stored once and with
    every result; a resume with a different one raises `ConfigMismatch`. `progress` is
    called with each new result.
    """
    make_user = make_user or (lambda trial: ScriptedUser())
    items = list(tasks)
    catalog = EnvironmentCatalog(config.environment_roots)
    settings = sandbox_settings_for(config.sandbox, config.limits)
    described = dict(describe or {})
    described.setdefault("limits", config.limits.model_dump())
    described.setdefault("trials", config.trials)
    described.setdefault(
        "environment_roots", [str(Path(root).resolve()) for root in config.environment_roots]
    )
    if sandbox is not None:
        check_deadline(sandbox, config.limits)
    with EvalStore(out_dir) as store:
        store.bind_config(described)
        done = store.done()
        box = sandbox or Sandbox(settings)
        todo = iter(
            [(item, trial) for item in items for trial in range(config.trials)
             if (item.id, trial) not in done]
        )  # fmt: skip

        async def worker() -> None:
            for item, trial in todo:  # shared: each pair is taken by exactly one worker
                await one(item, trial)

        async def one(item: EvalTask | BadTask, trial: int) -> None:
            if isinstance(item, BadTask):
                result = _bad(item, trial)
            else:
                env = TaskEnvironment(box, catalog, user=make_user(trial), limits=config.limits)
                result = await run_episode(env, make_agent(trial), item, trial)
            result["config"] = described
            if isinstance(described.get("seed"), int):
                result["seed"] = described["seed"] + trial  # trial t plays with seed + t
            store.put(result)
            if progress is not None:
                progress(result)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(max(1, config.concurrency)):
                    group.create_task(worker())
        except BaseExceptionGroup as failed:  # SandboxUnavailable: the tier cannot apply
            raise failed.exceptions[0] from None
        finally:
            if sandbox is None:
                await box.aclose()
        wanted = {(item.id, trial) for item in items for trial in range(config.trials)}
        rows = [r for r in store.results() if (r["task_id"], r["trial"]) in wanted]
        return summarize(rows, config.trials)


def pending_count(tasks: list[EvalTask | BadTask], out_dir: str | Path, trials: int) -> int:
    """How many episodes a run of `tasks` would still play (for a progress bar's total)."""
    path = Path(out_dir)
    if not path.is_dir():
        return len(tasks) * trials
    with EvalStore(path) as store:
        done = store.done()
    return sum(1 for t in tasks for trial in range(trials) if (t.id, trial) not in done)
