"""`gem-graph verify --env ENV_DIR RECORDS.jsonl`, run as a real subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import gem_graph
from gem_graph.resources import data_dir

PACKAGE_ROOT = Path(gem_graph.__file__).resolve().parent.parent

RETAIL = data_dir("environments") / "retail"


def run_verify(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "gem_graph.cli", "verify", *map(str, args)]
    env = {**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)}
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False, env=env
    )


def gold_records() -> list[dict[str, Any]]:
    lines = (RETAIL / "trajectories.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def results(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_gold_records_verify_and_exit_zero() -> None:
    done = run_verify("--env", RETAIL, RETAIL / "trajectories.jsonl")
    assert done.returncode == 0, done.stderr
    printed = results(done.stdout)
    expected = gold_records()
    assert [r["id"] for r in printed] == [r["id"] for r in expected]
    for line, record in zip(printed, expected, strict=True):
        assert set(line) == {"id", "ok", "problems", "final_state_sha256"}
        assert line["ok"] is True and line["problems"] == []
        assert line["final_state_sha256"] == record["verification"]["final_state_sha256"]


def test_minimal_third_party_records_with_unknown_fields(tmp_path: Path) -> None:
    record = gold_records()[0]
    minimal = {"messages": record["messages"], "vendor_score": 0.93, "meta": {"x": 1}}
    path = write_lines(tmp_path / "third_party.jsonl", [json.dumps(minimal)])
    done = run_verify("--env", RETAIL, path)
    assert done.returncode == 0, done.stderr
    [line] = results(done.stdout)
    assert line["id"] is None and line["ok"] is True
    assert line["final_state_sha256"] == record["verification"]["final_state_sha256"]


def test_a_bad_record_exits_one_and_reports_each_line(tmp_path: Path) -> None:
    good, broken = gold_records()[0], json.loads(json.dumps(gold_records()[0]))
    broken["id"] = "broken"
    tool_message = next(m for m in broken["messages"] if m["role"] == "tool")
    tool_message["content"] = json.dumps({"customer_id": "cus_9999", "name": "Nobody"})
    lines = [json.dumps(good), "this is not json", "[1, 2]", json.dumps(broken)]
    done = run_verify("--env", RETAIL, write_lines(tmp_path / "mixed.jsonl", lines))
    assert done.returncode == 1, done.stderr
    printed = results(done.stdout)
    assert [r["ok"] for r in printed] == [True, False, False, False]
    assert printed[3]["id"] == "broken"
    assert "output_mismatch" in {p["code"] for p in printed[3]["problems"]}
    assert "line 2" in printed[1]["problems"][0]["message"]


def test_unreadable_records_path_exits_two_without_traceback(tmp_path: Path) -> None:
    done = run_verify("--env", RETAIL, tmp_path / "missing.jsonl")
    assert done.returncode == 2
    assert "missing.jsonl" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""


def test_bad_environment_directory_exits_two_without_traceback(tmp_path: Path) -> None:
    records = write_lines(tmp_path / "r.jsonl", [json.dumps(gold_records()[0])])
    shutil.copytree(RETAIL, tmp_path / "env")
    (tmp_path / "env" / "environment.json").write_text("{oops", encoding="utf-8")
    done = run_verify("--env", tmp_path / "env", records)
    assert done.returncode == 2
    assert "environment.json" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_tier_none_without_opt_in_refuses_to_run() -> None:
    done = run_verify("--tier", "none", "--env", RETAIL, RETAIL / "trajectories.jsonl")
    assert done.returncode == 2
    assert "allow_unsafe_none" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""


def test_hostile_lines_get_one_verdict_each_in_ascii(tmp_path: Path) -> None:
    good = gold_records()[0]
    renamed = {**good, "id": "zoë-✓"}
    lines = [
        json.dumps(good).encode(),
        b'{"id": "bad\xff", "messages": []}',  # invalid UTF-8
        b'{"id": 1, "id": 2, "messages": []}',  # duplicate key
        b'{"id": "\\ud800", "messages": []}',  # lone surrogate
        b"[" * 100_000,  # deep nesting
        b'{"messages": [], "x": NaN}',
        json.dumps(renamed, ensure_ascii=False).encode(),
    ]
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    done = run_verify("--env", RETAIL, path)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout.isascii()
    printed = results(done.stdout)
    assert [r["ok"] for r in printed] == [True, False, False, False, False, False, True]
    assert printed[-1]["id"] == "zoë-✓"
    for number, result in enumerate(printed[1:6], start=2):
        assert result["id"] is None
        [only] = result["problems"]
        assert only["code"] == "invalid_record" and f"line {number}" in only["message"]


def test_explain_prints_each_problem_with_its_message_index(tmp_path: Path) -> None:
    record = gold_records()[0]
    record["environment"] = {**record["environment"], "name": "bank"}
    record["messages"][-1]["content"] += " Your refund reference is RF-42424."
    done = run_verify("--env", RETAIL, write_lines(tmp_path / "r.jsonl", [json.dumps(record)]),
                      "--explain")  # fmt: skip
    assert done.returncode == 1, done.stderr
    last = len(record["messages"]) - 1
    assert f"message {last} [ungrounded_value] at messages[{last}]" in done.stdout
    assert "RF-42424" in done.stdout
    assert "record [environment_mismatch] at environment.name" in done.stdout
