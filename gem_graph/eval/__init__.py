"""Evaluating agents on the tasks gem-graph exports, and an environment API for RL.

- `task`: `EvalTask`, `read_tasks` (untrusted task files, bad lines kept as `BadTask`);
- `catalog`: finding and checking a task's environment (`EnvironmentCatalog`);
- `environment`: `TaskEnvironment` with `reset(task)` and `step(message)`, Gymnasium-style;
- `tools`: `environment_tools(task, env)`, LangChain tools executing in the sandbox;
- `agents`: `GoldAgent` (replays the reference) and `ChatModelAgent` (any tool-calling model);
- `user`: `ScriptedUser` and `LLMUser` (plays the goal, ends with `STOP`);
- `facts` / `reward`: required facts and the 0/1 reward with its reason;
- `store` / `metrics` / `runner`: the resumable store, pass^k, and `run_eval`.

Submodules load on first use, so importing `gem_graph.eval.facts` (the `tasks` export
does) does not start the sandbox machinery.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EvalTask": "task",
    "BadTask": "task",
    "read_tasks": "task",
    "EnvironmentCatalog": "catalog",
    "TaskError": "catalog",
    "TaskEnvironment": "environment",
    "EpisodeLimits": "environment",
    "environment_tools": "tools",
    "GoldAgent": "agents",
    "ChatModelAgent": "agents",
    "AgentTurn": "agents",
    "ScriptedUser": "user",
    "LLMUser": "user",
    "STOP": "user",
    "Reward": "reward",
    "score": "reward",
    "EvalStore": "store",
    "pass_hat_k": "metrics",
    "summarize": "metrics",
    "EvalConfig": "runner",
    "run_eval": "runner",
    "run_episode": "runner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gem_graph.eval' has no attribute {name!r}")
    return getattr(importlib.import_module(f"gem_graph.eval.{module}"), name)
