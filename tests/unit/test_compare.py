"""Run comparison on two small synthetic runs: every number checked by hand."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from gem_graph.cli import main
from gem_graph.compare import compare_runs, summarize_run
from gem_graph.run.store import RunStore


def dialogue(calls: list[str]) -> list[dict[str, Any]]:
    """system, user, then one assistant call + tool answer per name, then a closing turn."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
    ]
    for index, name in enumerate(calls, start=1):
        call = {
            "id": f"c{index}",
            "type": "function",
            "function": {"name": name, "arguments": "{}"},
        }
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        messages.append({"role": "tool", "tool_call_id": f"c{index}", "content": "{}"})
    messages.append({"role": "assistant", "content": "done"})
    return messages


def record(
    doc_id: str, calls: list[str], mode: str, judge: dict[str, bool], usage: dict[str, int]
) -> dict[str, Any]:
    return {
        "id": f"{doc_id}#x",
        "source": {"doc_id": doc_id, "text_sha256": "0" * 64, "labels": {}, "meta": {}},
        "messages": dialogue(calls),
        "judge": {"rubrics": {k: {"passed": v, "reason": ""} for k, v in judge.items()}},
        "usage": {stage: {"calls": n} for stage, n in usage.items()},
        "provenance": {"mode": mode},
    }


def reject(doc_id: str, stage: str, code: str, failed: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "doc_id": doc_id,
        "stage": stage,
        "code": code,
        "problems": [{"code": code, "message": "", "where": w} for w in failed],
    }


OK = {"R1": True, "R2": True, "R3": True}

# Pipeline: 5 documents; 1 filtered out, 1 lost at ground, 1 failed R2 at judge, 2 kept.
PIPELINE = {
    "records": [
        record("d1", ["a", "b", "a"], "pipeline", OK, {"ground": 1, "refine": 1}),  # 9 messages
        record("d2", ["a", "b", "c", "d", "e"], "pipeline", OK, {"ground": 2}),  # 13 messages
    ],
    "rejects": [
        reject("d3", "filter", "irrelevant"),
        reject("d4", "ground", "output_mismatch"),
        reject("d5", "judge", "judge_failed", ("R2",)),
    ],
    "usage": [
        {"stage": "filter", "calls": 5, "input_tokens": 500, "output_tokens": 50, "seconds": 5.0},
        {"stage": "ground", "calls": 7, "input_tokens": 7000, "output_tokens": 3000, "seconds": 30},
        {"stage": "judge", "calls": 3, "input_tokens": 1500, "output_tokens": 150, "seconds": 3.0},
    ],
}
# Synthesizer: the same 5 documents; 2 fail the check, 3 kept.
SYNTH = {
    "records": [
        record("d1", ["a", "b"], "synthesizer", OK, {"synthesizer": 1}),  # 7 messages
        record("d2", ["a"], "synthesizer", {"R1": False, "R2": True, "R3": True}, {}),  # 5
        record("d3", ["a", "b", "c"], "synthesizer", OK, {"synthesizer": 3}),  # 9
    ],
    "rejects": [
        reject("d4", "synthesizer", "invalid_output"),
        reject("d5", "synthesizer", "transport"),
    ],
    "usage": [
        {
            "stage": "synthesizer",
            "calls": 6,
            "input_tokens": 6000,
            "output_tokens": 6000,
            "seconds": 24.0,
        },
        {"stage": "judge", "calls": 3, "input_tokens": 900, "output_tokens": 90, "seconds": 3.0},
    ],
}


def summaries() -> tuple[dict[str, Any], dict[str, Any]]:
    a = summarize_run(**PIPELINE, wall_seconds=20.0, name="pipe")  # type: ignore[arg-type]
    b = summarize_run(**SYNTH, wall_seconds=6.0, name="synth")  # type: ignore[arg-type]
    return a, b


def test_yield_and_funnel_per_stage() -> None:
    a, b = summaries()
    assert (a["mode"], b["mode"]) == ("pipeline", "synthesizer")
    assert (a["documents"], a["records"], a["yield"]) == (5, 2, 0.4)
    assert a["funnel"]["filter"] == {"reached": 5, "passed": 4, "rate": 0.8}
    assert a["funnel"]["extract"]["rate"] == 1.0
    assert a["funnel"]["ground"] == {"reached": 4, "passed": 3, "rate": 0.75}
    assert a["funnel"]["judge"] == {"reached": 3, "passed": 2, "rate": pytest.approx(2 / 3)}
    assert list(b["funnel"]) == ["intake", "synthesizer", "judge"]
    assert b["funnel"]["synthesizer"] == {"reached": 5, "passed": 3, "rate": 0.6}
    assert b["yield"] == 0.6


def test_verification_rates_leave_out_transport_failures() -> None:
    a, b = summaries()
    # pipeline: 4 dialogues checked (d3 filtered), 1 failed
    assert a["verification_pass_rate"] == 0.75
    # synthesizer: d5 never got an answer, so 4 checked, 1 failed
    assert b["verification_pass_rate"] == 0.75
    assert a["first_try_rate"] == 0.5  # d2 needed two ground drafts
    assert b["first_try_rate"] == pytest.approx(2 / 3)


def test_trajectory_shape_and_judge_rates() -> None:
    a, b = summaries()
    assert a["shape"]["messages"] == {"mean": 11.0, "median": 11.0}
    assert a["shape"]["distinct_tools"] == {"mean": 3.5, "median": 3.5}
    assert a["shape"]["tool_calls"] == {"mean": 4.0, "median": 4.0}
    assert b["shape"]["messages"] == {"mean": 7.0, "median": 7.0}
    assert b["shape"]["tool_calls"]["mean"] == 2.0
    assert a["judge"] == {"R1": 1.0, "R2": pytest.approx(2 / 3), "R3": 1.0}
    assert b["judge"] == {"R1": pytest.approx(2 / 3), "R2": 1.0, "R3": 1.0}


def test_cost_per_kept_trajectory_and_ratios() -> None:
    a, b = summaries()
    assert a["per_kept"]["calls"] == 7.5  # 15 calls / 2 kept
    assert b["per_kept"]["calls"] == 3.0  # 9 calls / 3 kept
    assert a["per_kept"]["tokens"] == 6100.0
    assert b["per_kept"]["tokens"] == 4330.0
    assert a["per_kept"]["wall_seconds"] == 10.0
    assert b["per_kept"]["wall_seconds"] == 2.0
    comparison = compare_runs(a, b)
    calls = comparison.row("model calls per kept")
    assert (calls.a, calls.b, calls.ratio) == (7.5, 3.0, 0.4)
    assert comparison.row("passed ground").b is None  # the synthesizer has no ground stage
    assert comparison.row("passed synthesizer").a is None
    assert comparison.row("judge R2 pass rate").a == pytest.approx(2 / 3)
    assert comparison.row("messages per trajectory (median)").b == 7.0


def test_the_table_shows_both_runs() -> None:
    comparison = compare_runs(*summaries())
    console = Console(file=io.StringIO(), width=140)
    console.print(comparison.table())
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "A: pipe (pipeline)" in text and "B: synth (synthesizer)" in text
    line = next(line for line in text.splitlines() if "model calls per kept" in line)
    assert "7.50" in line and "3.00" in line and "0.40×" in line
    line = next(line for line in text.splitlines() if "yield" in line)
    assert "40.0%" in line and "60.0%" in line


def _store(run_dir: Path, data: dict[str, Any]) -> None:
    with RunStore(run_dir, create=True) as store:
        session = store.start_session("f")
        by_doc: dict[str, Any] = {}
        for rec in data["records"]:
            by_doc.setdefault(rec["source"]["doc_id"], {"records": [], "reject": None})
            by_doc[rec["source"]["doc_id"]]["records"].append(rec)
        for rej in data["rejects"]:
            by_doc[rej["doc_id"]] = {"records": [], "reject": {**rej, "reason": rej["code"]}}
        for index, (doc_id, out) in enumerate(sorted(by_doc.items())):
            row = data["usage"][index] if index < len(data["usage"]) else None
            usage = {row["stage"]: row} if row else {}
            store.save_document(
                {"id": doc_id, "text": "t"},
                status="kept" if out["records"] else "rejected",
                stage=out["reject"]["stage"] if out["reject"] else "emit",
                records=out["records"],
                reject=out["reject"],
                usage=usage,
                started_at=time.time(),
                finished_at=time.time(),
                settings_fingerprint="f",
            )
        store.finish_session(session, processed=len(by_doc), stopped_reason=None)


def test_compare_command_reads_two_run_folders(tmp_path: Path, capsys) -> None:
    _store(tmp_path / "pipe", PIPELINE)
    _store(tmp_path / "synth", SYNTH)
    assert main(["compare", str(tmp_path / "pipe"), str(tmp_path / "synth")]) == 0
    out = capsys.readouterr().out
    assert "pipe (pipeline)" in out and "synth (synthesizer)" in out
    line = next(line for line in out.splitlines() if "model calls per kept" in line)
    assert "7.50" in line and "3.00" in line
    assert json.dumps(None) not in line


def test_compare_command_reports_a_missing_run(tmp_path: Path) -> None:
    assert main(["compare", str(tmp_path / "nope"), str(tmp_path / "nope2")]) == 2
