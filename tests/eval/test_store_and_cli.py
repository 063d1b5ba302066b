"""Task ids, pass^k, the resumable store and `gem-graph eval`'s guards."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from eval_agents import DemoTasks

from gem_graph.cli import main
from gem_graph.eval.agents import GoldAgent
from gem_graph.eval.facts import required_facts
from gem_graph.eval.metrics import summarize
from gem_graph.eval.runner import EvalConfig, run_eval
from gem_graph.eval.store import EvalStore
from gem_graph.eval.summary_table import print_summary
from gem_graph.eval.task import BadTask, EvalTask, read_tasks

TASK = {"environment": {"name": "e"}, "tools": [], "instruction": "hi",
        "expected_final_state_sha256": "0" * 64}  # fmt: skip


def test_repeated_and_fallback_ids_never_collide(tmp_path: Path):
    lines = [
        json.dumps({**TASK, "id": "a"}),
        "{not json",  # line 2: its fallback id must not take the real task line-2's
        json.dumps({**TASK, "id": "line-2"}),
        json.dumps({**TASK, "id": "a"}),  # a repeat
        json.dumps({**TASK, "id": "a#dup-line-4"}),  # a real id shaped like a repeat's
        json.dumps({"id": "a", "tools": "bad"}),  # a bad line naming a taken id
    ]
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(lines) + "\n")
    items = read_tasks(path)
    ids = [item.id for item in items]
    assert len(set(ids)) == len(ids) == 6
    tasks = {item.id for item in items if isinstance(item, EvalTask)}
    assert tasks == {"a", "line-2", "a#dup-line-4"}  # real tasks keep their ids
    assert all(isinstance(items[i], BadTask) for i in (1, 3, 5))
    assert "duplicate id 'a'" in items[3].reason  # type: ignore[union-attr]
    assert [item.id for item in read_tasks(path)] == ids  # stable across reads (resume)


def test_a_read_only_dialogue_requires_what_was_looked_up_and_told():
    call = {"id": "c1", "type": "function", "function": {"name": "get_order",
            "arguments": json.dumps({"order_id": "ord_5002"})}}  # fmt: skip
    messages = [
        {"role": "user", "content": "What's the refund for order ord_5002?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"refund": 72.0, "tracking": "T-88"}'},
        {"role": "assistant", "content": "Your refund is $72.00, tracking T-88."},
    ]
    assert [f["value"] for f in required_facts(messages, {})] == [72.0, "T-88"]
    # with writes, only the written values count, as before
    diff = {"orders": {"inserted": [], "updated": [{"after": {"tracking": "T-88"}}]}}
    assert [f["value"] for f in required_facts(messages, diff)] == ["T-88"]


def test_pass_hat_k_is_over_the_same_complete_tasks_for_every_k():
    rows = [
        {"task_id": t, "trial": i, "status": "scored", "reward": r, "environment": "e"}
        for t, i, r in [("a", 0, 1.0), ("a", 1, 1.0), ("b", 0, 0.0)]
    ]
    summary = summarize(rows, 2)
    assert summary["complete_tasks"] == 1 and summary["tasks"] == 2
    assert summary["pass_hat"] == {"1": 1.0, "2": 1.0}
    assert summary["pass_hat"]["2"] <= summary["pass_hat"]["1"]


def test_task_ids_are_printed_as_text_not_markup(capsys: pytest.CaptureFixture[str]):
    rows = [
        {"task_id": "evil[/bold]", "trial": 0, "status": "bad_task", "reason": "invalid_task",
         "detail": "[link=http://x]click[/link]", "environment": "env[/]"},
        {"task_id": "t", "trial": 0, "status": "scored", "reward": 1.0, "reason": "ok",
         "environment": "env[/red]"},
    ]  # fmt: skip
    print_summary(summarize(rows, 1), "out")
    printed = capsys.readouterr().out
    assert "bad task evil[/bold]: invalid_task: [link=http://x]click[/link]" in printed
    assert "env[/red]" in printed


def test_output_that_is_a_file_is_a_usage_error(
    demo_tasks: DemoTasks, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    target = tmp_path / "a-file"
    target.write_text("x")
    code = main(["eval", str(demo_tasks.tasks_file), "--agent", "gold", "-o", str(target)])
    assert code == 2
    assert "not a folder" in capsys.readouterr().err


async def test_the_summary_counts_only_the_current_runs_tasks(
    demo_tasks: DemoTasks, tmp_path: Path
):
    tasks = read_tasks(demo_tasks.tasks_file)
    config = EvalConfig(environment_roots=[demo_tasks.environments])
    out = tmp_path / "ev"
    await run_eval(tasks, make_agent=lambda t: GoldAgent(), out_dir=out, config=config)
    summary = await run_eval(
        tasks[:1], make_agent=lambda t: GoldAgent(), out_dir=out, config=config
    )
    assert summary["tasks"] == 1 and summary["episodes"] == 1


def _gold(tasks: Path, out: Path, *extra: str) -> int:
    return main(["eval", str(tasks), "--agent", "gold", "-o", str(out), *extra])


def test_a_rerun_with_another_tasks_file_is_refused(
    demo_tasks: DemoTasks, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    out = tmp_path / "ev"
    assert _gold(demo_tasks.tasks_file, out) == 0
    other = tmp_path / "tasks.jsonl"
    other.write_text(demo_tasks.tasks_file.read_text().splitlines()[0] + "\n")
    capsys.readouterr()
    assert _gold(other, out) == 2
    assert "tasks_sha256" in capsys.readouterr().err
    with EvalStore(out) as store:
        config: dict[str, Any] = store.results()[0]["config"]
    assert {"tasks_sha256", "environment_roots"} <= set(config)


def test_a_rerun_with_the_right_environments_plays_the_unknown_ones(
    demo_tasks: DemoTasks, tmp_path: Path
):
    here = tmp_path / "elsewhere"
    here.mkdir()
    tasks = here / "tasks.jsonl"
    shutil.copy(demo_tasks.tasks_file, tasks)
    out = tmp_path / "ev"
    assert _gold(tasks, out) == 1  # no environments beside the file
    with EvalStore(out) as store:
        assert {r["reason"] for r in store.results()} == {"unknown_environment"}
    assert _gold(tasks, out, "--environments", str(demo_tasks.environments)) == 0
    with EvalStore(out) as store:
        assert {(r["status"], r["reward"]) for r in store.results()} == {("scored", 1.0)}
