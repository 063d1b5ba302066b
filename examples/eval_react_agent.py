"""Evaluate a LangGraph prebuilt agent on the demo's tasks through `environment_tools`.

    python examples/eval_react_agent.py                 # gold replay agent, offline
    OPENAI_BASE_URL=... GEM_MODEL=my-model python examples/eval_react_agent.py --model

Runs the offline demo into a temporary folder, exports its tasks, then plays each task:
the agent's tool calls execute in the sandbox against the task's initial state, a
scripted user says the reference's user turns, and the reward is 1 when the final state is
the expected one and every required fact was told.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from gem_graph.demo import demo_settings, run_demo
from gem_graph.eval import (
    EnvironmentCatalog,
    EvalTask,
    GoldAgent,
    TaskEnvironment,
    environment_tools,
    read_tasks,
    run_episode,
)
from gem_graph.eval.frameworks import run_graph_episode
from gem_graph.export import export_run
from gem_graph.sandbox import Sandbox
from gem_graph.settings import SandboxSettings


async def main(use_model: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "demo"
        await run_demo(run_dir, settings=demo_settings())
        export_run(run_dir, "tasks", run_dir / "tasks.jsonl")
        tasks = [t for t in read_tasks(run_dir / "tasks.jsonl") if isinstance(t, EvalTask)]
        catalog = EnvironmentCatalog([run_dir / "environments"])
        async with Sandbox(SandboxSettings(episode_timeout_s=600)) as sandbox:
            for task in tasks:
                env = TaskEnvironment(sandbox, catalog)
                if use_model:
                    from langgraph.prebuilt import create_react_agent

                    from gem_graph.llm import make_chat_model

                    await env.reset(task)
                    agent = create_react_agent(make_chat_model(), environment_tools(task, env))
                    info = await run_graph_episode(env, agent, task)
                    reward = info["reward"]
                else:
                    result = await run_episode(env, GoldAgent(), task)
                    reward = {"reward": result["reward"], "reason": result["reason"]}
                print(f"{task.id}: reward {reward['reward']} ({reward['reason']})")


if __name__ == "__main__":
    asyncio.run(main("--model" in sys.argv[1:]))
