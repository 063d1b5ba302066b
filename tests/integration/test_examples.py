"""The example scripts run offline and say what they did; the Studio graphs import."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gem_graph.sandbox import probe

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    probe()["tiers"].get("standard") is not True,
    reason=f"standard sandbox tier unavailable: {probe()['tiers'].get('standard')}",
)


def run_example(name: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_embed_as_subgraph_runs_the_gem_graph_inside_a_host_graph():
    out = run_example("embed_as_subgraph.py")
    assert "no model was called" in out
    assert "kept ['shop-returns#" in out
    assert "rejected []" in out


def test_async_batch_synthesizes_the_demo_corpus_concurrently():
    out = run_example("async_batch.py")
    assert "no model was called" in out
    kept = [line for line in out.splitlines() if line.strip().startswith("kept")]
    rejected = [line for line in out.splitlines() if line.strip().startswith("rejected")]
    assert len(kept) == 3 and len(rejected) == 5
    assert "executed tool calls" in kept[0]


def test_langgraph_json_points_at_graphs_that_load(monkeypatch):
    config = json.loads((ROOT / "langgraph.json").read_text())
    monkeypatch.setenv("GEM_SCRIPTED", "1")
    for name, target in config["graphs"].items():
        path, attr = target.split(":")
        spec = importlib.util.spec_from_file_location(f"studio_{name}", ROOT / path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        graph = getattr(module, attr)
        assert graph.name == name
        assert graph.checkpointer is None
