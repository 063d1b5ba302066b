"""`run_eval` and `gem-graph eval`: isolation, bad tasks, resume, pass^k, exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eval_agents import CrashingAgent, DemoTasks

from gem_graph.cli import main
from gem_graph.eval.agents import GoldAgent
from gem_graph.eval.metrics import pass_hat_k, summarize
from gem_graph.eval.runner import EvalConfig, pending_count, run_eval
from gem_graph.eval.store import ConfigMismatch, EvalStore
from gem_graph.eval.task import EvalTask, read_tasks


def test_pass_hat_k_follows_tau_bench():
    # task A: 2 of 4 trials pass; task B: 4 of 4
    assert pass_hat_k([2, 4], [4, 4], 1) == pytest.approx((0.5 + 1.0) / 2)
    assert pass_hat_k([2, 4], [4, 4], 2) == pytest.approx((1 / 6 + 1.0) / 2)
    assert pass_hat_k([2, 4], [4, 4], 4) == pytest.approx((0.0 + 1.0) / 2)
    assert pass_hat_k([1], [1], 2) is None
    rows = [
        {"task_id": "a", "status": "scored", "reward": r, "reason": "ok", "environment": "e"}
        for r in (1.0, 0.0)
    ]
    summary = summarize(rows, 2)
    assert summary["pass_hat"] == {"1": 0.5, "2": 0.0}
    assert summary["environments"]["e"]["tasks"] == 1


def broken_tasks(demo: DemoTasks, folder: Path) -> Path:
    """The demo tasks plus an unknown environment, a corrupt state and an unreadable line."""
    lines = demo.tasks_file.read_text().splitlines()
    unknown = json.loads(lines[0])
    unknown.update(id="unknown-env", environment={"name": "env_nowhere", "sha256": None})
    corrupt = json.loads(lines[0])
    corrupt.update(id="corrupt-state", scenario={"now": None, "rows": {"no_such_table": [{}]}})
    path = folder / "tasks.jsonl"
    body = [*lines, json.dumps(unknown), json.dumps(corrupt), "{not json"]
    path.write_text("\n".join(body) + "\n")
    return path


async def test_bad_tasks_and_a_crashing_episode_do_not_touch_the_others(
    demo_tasks: DemoTasks, tmp_path: Path
):
    tasks = read_tasks(broken_tasks(demo_tasks, tmp_path))
    crash_id = demo_tasks.task("clinic-booking").id

    def agent(trial: int) -> Any:
        return _PerTask({crash_id: CrashingAgent()}, GoldAgent())

    config = EvalConfig(concurrency=8, environment_roots=[demo_tasks.environments])
    summary = await run_eval(tasks, make_agent=agent, out_dir=tmp_path / "ev", config=config)
    with EvalStore(tmp_path / "ev") as store:
        by_id = {r["task_id"]: r for r in store.results()}
    assert by_id[crash_id]["status"] == "failed"
    assert "went away" in by_id[crash_id]["detail"]
    assert by_id["unknown-env"]["reason"] == "unknown_environment"
    assert by_id["corrupt-state"]["reason"] == "invalid_state"
    assert by_id["line-6"]["reason"] == "invalid_task"  # an unreadable line's fallback id
    others = [r for r in by_id.values() if r["status"] == "scored"]
    assert len(others) == 2 and all(r["reward"] == 1.0 for r in others)
    assert summary["failed"] == 1 and len(summary["bad_tasks"]) == 3
    # resume: only the failed episode is played again, now with a working agent
    summary = await run_eval(
        tasks, make_agent=lambda t: GoldAgent(), out_dir=tmp_path / "ev", config=config
    )
    assert summary["failed"] == 0 and summary["pass_hat"]["1"] == 1.0


class _PerTask:
    name = "per-task"

    def __init__(self, special: dict[str, Any], default: Any) -> None:
        self.special, self.default = special, default

    async def act(self, task: EvalTask, messages: list[dict[str, Any]]) -> Any:
        return await self.special.get(task.id, self.default).act(task, messages)

    def describe(self) -> dict[str, Any]:
        return {"kind": "per-task"}


async def test_a_resume_with_another_configuration_is_refused(
    demo_tasks: DemoTasks, tmp_path: Path
):
    tasks = read_tasks(demo_tasks.tasks_file)[:1]
    config = EvalConfig(environment_roots=[demo_tasks.environments])
    out = tmp_path / "ev"
    await run_eval(
        tasks,
        make_agent=lambda t: GoldAgent(),
        out_dir=out,
        config=config,
        describe={"agent": "gold"},
    )
    with pytest.raises(ConfigMismatch, match="agent"):
        await run_eval(
            tasks,
            make_agent=lambda t: GoldAgent(),
            out_dir=out,
            config=config,
            describe={"agent": "other"},
        )


def test_cli_gold_exits_zero_with_pass_hat_k_per_environment(
    demo_tasks: DemoTasks, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    out = tmp_path / "ev"
    code = main(
        ["eval", str(demo_tasks.tasks_file), "--agent", "gold", "--trials", "2", "-o", str(out)]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "pass^2" in printed and "env_library-renewals" in printed
    with EvalStore(out) as store:
        results = store.results()
    assert len(results) == 6
    assert all(r["config"]["agent"] == {"kind": "gold"} for r in results)
    assert {r["trial"] for r in results} == {0, 1}
    # a second run resumes: nothing left to play (no episode replayed), same answer
    assert pending_count(read_tasks(demo_tasks.tasks_file), out, 2) == 0
    assert (
        main(
            ["eval", str(demo_tasks.tasks_file), "--agent", "gold", "--trials", "2", "-o", str(out)]
        )
        == 0
    )
    with EvalStore(out) as store:
        assert store.results() == results  # untouched: same rows, same timings


def test_cli_gold_exits_one_when_a_task_is_bad(demo_tasks: DemoTasks, tmp_path: Path, capsys):
    tasks = broken_tasks(demo_tasks, tmp_path)
    code = main(
        [
            "eval",
            str(tasks),
            "--agent",
            "gold",
            "-o",
            str(tmp_path / "ev"),
            "--environments",
            str(demo_tasks.environments),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 1
    assert "bad task unknown-env: unknown_environment" in printed
