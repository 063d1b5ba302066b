"""Shared fixtures: the offline demo's kept records exported as tasks, once per session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from eval_agents import DemoTasks

from gem_graph.demo import demo_settings, run_demo
from gem_graph.eval.catalog import EnvironmentCatalog
from gem_graph.eval.task import EvalTask, read_tasks
from gem_graph.export import export_run
from gem_graph.sandbox import Sandbox, probe
from gem_graph.settings import SandboxSettings


@pytest.fixture(scope="session")
def demo_tasks(tmp_path_factory: pytest.TempPathFactory) -> DemoTasks:
    status = probe()["tiers"].get("standard")
    if status is not True:
        pytest.skip(f"standard sandbox tier unavailable: {status}")
    run_dir = tmp_path_factory.mktemp("eval-demo") / "run"
    asyncio.run(run_demo(run_dir, settings=demo_settings("standard")))
    tasks_file = run_dir / "tasks.jsonl"
    export_run(run_dir, "tasks", tasks_file)
    tasks = {t.id: t for t in read_tasks(tasks_file) if isinstance(t, EvalTask)}
    assert len(tasks) == 3
    return DemoTasks(run_dir, tasks_file, tasks)


@pytest.fixture
def catalog(demo_tasks: DemoTasks) -> EnvironmentCatalog:
    return EnvironmentCatalog([demo_tasks.environments])


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(SandboxSettings(episode_timeout_s=400)) as box:
        yield box
