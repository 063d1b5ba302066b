"""The CLI end to end on the offline demo: demo, stats, export, distill, compare, and
a synthesizer-mode run through the runner (scripted replies; sandbox and checks real)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gem_graph.sandbox import probe

pytestmark = pytest.mark.skipif(
    probe()["tiers"].get("standard") is not True,
    reason=f"standard sandbox tier unavailable: {probe()['tiers'].get('standard')}",
)


def gem(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gem_graph.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("demo") / "run"
    done = gem("demo", "-o", run_dir)
    assert done.returncode == 0, done.stderr
    assert "SCRIPTED" in done.stdout and "no model was called" in done.stdout
    assert "documents  8 (kept 3, rejected 5, failed 0)" in done.stdout
    return run_dir


def test_demo_twice_resumes_without_redoing_work(demo_run):
    again = gem("demo", "-o", demo_run)
    assert again.returncode == 0, again.stderr
    stats = gem("stats", demo_run, "--json")
    summary = json.loads(stats.stdout)
    assert summary["documents"]["total"] == 8


@pytest.mark.parametrize("fmt", ["openai", "sharegpt", "hermes", "tasks", "records"])
def test_export_writes_one_row_per_kept_trajectory(demo_run, tmp_path, fmt):
    out = tmp_path / f"{fmt}.jsonl"
    done = gem("export", demo_run, "--format", fmt, "-o", out)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3


@pytest.mark.parametrize("fmt", ["records", "openai"])
def test_verify_accepts_its_own_records_and_openai_exports(demo_run, tmp_path, fmt):
    out = tmp_path / f"{fmt}.jsonl"
    assert gem("export", demo_run, "--format", fmt, "-o", out).returncode == 0
    natives = tmp_path / "records.jsonl"
    if fmt != "records":
        assert gem("export", demo_run, "--format", "records", "-o", natives).returncode == 0
    environments = [
        json.loads(line)["environment"]["name"] for line in natives.read_text().splitlines()
    ]
    rows = out.read_text().splitlines()
    assert len(rows) == len(environments) == 3
    for row, environment in zip(rows, environments, strict=True):
        one = tmp_path / "one.jsonl"
        one.write_text(row + "\n")
        done = gem("verify", "--env", demo_run / "environments" / environment, one)
        verdict = json.loads(done.stdout)
        assert done.returncode == 0, verdict["problems"]
        assert verdict["ok"] and verdict["id"] == json.loads(row)["id"]
        # The verdict's final state is the one the run recorded.
        native = next(
            json.loads(line)
            for line in natives.read_text().splitlines()
            if json.loads(line)["id"] == verdict["id"]
        )
        assert verdict["final_state_sha256"] == native["verification"]["final_state_sha256"]


def test_distill_then_compare_a_run_with_itself(demo_run, tmp_path):
    done = gem("distill", demo_run, "-o", tmp_path / "data", "--val-fraction", "0.34")
    assert done.returncode == 0, done.stderr
    train = (tmp_path / "data" / "train.openai.jsonl").read_text().splitlines()
    validation = (tmp_path / "data" / "validation.openai.jsonl").read_text().splitlines()
    assert len(train) + len(validation) == 3
    compared = gem("compare", demo_run, demo_run)
    assert compared.returncode == 0, compared.stderr
    assert "kept" in compared.stdout.lower()


async def test_synthesizer_mode_runs_through_the_runner(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "graph"))
    from test_synthesizer_graph import TEXT, answer, gold

    from gem_graph.run.runner import RunOptions, run_corpus
    from gem_graph.run.store import RunStore
    from gem_graph.settings import PipelineSettings, Settings
    from gem_graph.testing.scripted import ScriptedChatModel, table_responder

    model = ScriptedChatModel(responder=table_responder({("synthesizer", "shop"): answer(gold(1))}))
    settings = Settings(pipeline=PipelineSettings(mode="synthesizer", judge=False))
    options = RunOptions(run_dir=tmp_path / "run", progress=False, preflight=False)
    summary = await run_corpus(
        [{"id": "shop", "text": TEXT}], llm=model, settings=settings, options=options
    )
    assert summary.kept == 1
    [record] = RunStore(tmp_path / "run").iter_records()
    assert record["provenance"]["mode"] == "synthesizer"
    assert record["verification"]["deterministic"] is True
    funnel = RunStore(tmp_path / "run").summary()
    assert "synthesizer" in json.dumps(funnel)
