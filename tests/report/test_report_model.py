"""The report without a browser: numbers over the whole run, the sample, the row diff
attribution, safe JSON in the page, spans, drafts, and the commands that write pages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from report_helpers import DemoRun, gem

from gem_graph.compare import compare_runs, format_value, load_run_summary
from gem_graph.report import build_report
from gem_graph.report.draft import annotate
from gem_graph.report.render import script_json
from gem_graph.report.sampling import allocate, spread
from gem_graph.report.sources import source_view
from gem_graph.report.statediff import attribute, flatten
from gem_graph.report.synthetic import REJECTS, write_synthetic_run
from gem_graph.run.store import RunStore


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_run(
        tmp_path_factory.mktemp("synthetic") / "run", records=600, rejects=240
    )


def test_statistics_cover_the_whole_run_and_the_viewer_a_spread_sample(synthetic_run: Path) -> None:
    model = build_report(synthetic_run, max_items=40)
    with RunStore(synthetic_run) as store:
        summary = store.summary()
        records = list(store.iter_records())
    assert model["funnel"]["rows"] == [
        {**row, "rejected": row["reached"] - row["passed"], "rate": row["passed"] / row["reached"]}
        for row in summary["stages"]
    ]
    messages = next(d for d in model["shape"] if d["field"] == "messages")
    assert messages["n"] == 600
    assert messages["max"] == max(r["stats"]["messages"] for r in records)
    assert sum(r["count"] for r in model["reasons"]["rows"]) == 240
    viewer = model["viewer"]
    kept = [i for i in viewer["items"] if i["kind"] == "kept"]
    rejected = [i for i in viewer["items"] if i["kind"] != "kept"]
    assert (len(kept), len(rejected)) == (20, 20)
    # every environment and every reject reason is represented, evenly
    envs = [i["env"] for i in kept]
    assert sorted(set(envs)) == [f"env_shop_{k}" for k in range(6)]
    assert max(envs.count(e) for e in envs) - min(envs.count(e) for e in envs) <= 1
    reasons = [(i["stage"], i["code"]) for i in rejected]
    assert set(reasons) == {(stage, code) for stage, code, _ in REJECTS}
    assert viewer["sample"]["note"].startswith("Showing 40 of 840 items (20 of 600 kept")
    # each reason's example links point at embedded items of that reason
    for row in model["reasons"]["rows"]:
        for example in row["examples"]:
            item = viewer["items"][example["index"]]
            assert (item["doc_id"], item["code"]) == (example["doc_id"], row["code"])


def test_the_report_command_writes_one_offline_page_and_says_what_it_shows(
    synthetic_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "r.html"
    code, stdout, _ = gem("report", synthetic_run, "-o", out, "--max-items", "12")
    assert code == 0
    assert f"Report: {out}" in stdout and "Showing 12 of 840 items" in stdout
    html = out.read_text(encoding="utf-8")
    assert "Showing 12 of 840 items" in html
    for remote in ("http://", "https://", "src=", '<link rel="stylesheet', "@import", "url("):
        assert remote not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<svg" in html and "default-src &#39;none&#39;" in html  # the CSP meta tag


def test_the_report_command_refuses_a_folder_without_a_run(tmp_path: Path) -> None:
    code, _, err = gem("report", tmp_path)
    assert code == 2
    assert "run.sqlite is missing" in err
    assert not (tmp_path / "report.html").exists()


@pytest.mark.parametrize("command", ["report", "compare"])
def test_an_unwritable_output_is_one_line_not_a_traceback(
    synthetic_run: Path, tmp_path: Path, command: str
) -> None:
    args = [synthetic_run] if command == "report" else [synthetic_run, synthetic_run, "--html"]
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for target in (tmp_path, blocker / "page.html"):  # a folder; a parent that is a file
        code, _, err = gem(command, *args, "-o", target)
        assert code == 2, err
        assert err.startswith("gem-graph: error: cannot write ") and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1


def test_compare_html_shows_the_terminal_table_rows(synthetic_run: Path, tmp_path: Path) -> None:
    other = write_synthetic_run(tmp_path / "b", records=100, rejects=100, seed=3)
    out = tmp_path / "cmp.html"
    code, stdout, _ = gem("compare", synthetic_run, other, "--html", "-o", out)
    assert code == 0 and f"Comparison page: {out}" in stdout.replace("\n", "")
    html = out.read_text(encoding="utf-8")
    comparison = compare_runs(load_run_summary(synthetic_run), load_run_summary(other))
    for row in comparison.rows:
        cells = f'<td>{row.label}</td><td class="a">{format_value(row.a, row.kind)}</td>'
        assert cells.replace("&", "&amp;") in html, row.label
    assert "different numbers of documents" in html


def test_each_changed_row_goes_under_the_write_call_that_names_it() -> None:
    rows = flatten(
        {
            "members": {
                "updated": [
                    {"key": {"member_id": "m_1"}, "before": {"fine": 12.5}, "after": {"fine": 7.5}}
                ]
            },
            "loans": {
                "updated": [
                    {
                        "key": {"loan_id": "L-1"},
                        "before": {"due": "03-12"},
                        "after": {"due": "03-26"},
                    }
                ]
            },
            "payments": {"inserted": [{"payment_id": "pay_1", "member_id": "m_1", "amount": 5}]},
            "audit": {"inserted": [{"note": "nobody names this"}]},
        }
    )
    owned, loose = attribute(
        rows,
        [
            {
                "call_id": "pay",
                "arguments": {"member_id": "m_1", "amount": 5},
                "output": {"payment_id": "pay_1", "fine": 7.5},
            },
            {
                "call_id": "renew",
                "arguments": {"member_id": "m_1", "loan_id": "L-1"},
                "output": {"loan_id": "L-1", "due": "03-26"},
            },
        ],
    )
    assert sorted(r["table"] for r in owned["pay"]) == ["members", "payments"]
    assert [r["table"] for r in owned["renew"]] == ["loans"]
    assert [r["table"] for r in loose] == ["audit"]


def test_page_json_cannot_close_its_script_element_and_reads_back_the_same() -> None:
    value = {"t": "</script><script>x()</script><!-- & \u2028\u2029 >"}
    text = str(script_json(value))
    assert "<" not in text and ">" not in text and "&" not in text
    assert "\u2028" not in text and "\u2029" not in text
    assert json.loads(text) == value


def test_source_spans_are_highlighted_and_bad_ones_dropped() -> None:
    text = "0123456789"
    spans = {
        "tools": {"a": [2, 5], "bad": [7, 3], "out": [8, 99], "bool": [True, 4]},
        "rules": [{"rule": "r", "span": [4, 6]}],
    }
    view = source_view(text, spans)
    assert [(e["label"], e["span"]) for e in view["entries"]] == [
        ("a", [2, 5]),
        ("bad", None),
        ("out", [8, 10]),
        ("bool", None),
        ("r", [4, 6]),
    ]
    assert "".join(s["text"] for s in view["segments"]) == text
    covered = {s["text"]: s["ids"] for s in view["segments"]}
    assert covered["4"] == [0, 4] and covered["23"] == [0] and covered["89"] == [2]


def test_a_problem_is_pinned_to_its_line_in_a_draft() -> None:
    draft = {"workflows": [{"name": "w", "example_calls": [{"tool": "a"}, {"tool": "login"}]}]}
    problems = [
        {"where": "workflows[0].example_calls[1].arguments.x"},  # deeper than the draft
        {"where": "R3"},
    ]
    view = annotate(draft, problems)
    flagged = [line["text"].strip() for line in view["lines"] if line["problems"]]
    assert flagged == ["{"] and view["unplaced"] == [1]
    line = next(i for i, x in enumerate(view["lines"]) if x["problems"])
    assert view["lines"][line + 1]["text"].strip() == '"tool": "login"'


def test_the_budget_is_split_evenly_and_spread_through_each_group() -> None:
    assert allocate([1, 10, 10], 9) == [1, 4, 4]
    assert allocate([3, 0, 50], 100) == [3, 0, 50]
    assert allocate([5, 5], 0) == [0, 0]
    assert spread(10, 2) == [2, 7]
    assert spread(3, 5) == [0, 1, 2]


def test_open_hands_the_written_page_to_the_default_browser(
    synthetic_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import webbrowser

    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url, *a, **k: opened.append(url) or True)
    out = tmp_path / "page.html"
    code, _, _ = gem("report", synthetic_run, "-o", out, "--max-items", "4", "--open")
    assert code == 0
    assert opened == [out.resolve().as_uri()]


def test_the_demo_prints_where_its_report_is(demo_run: DemoRun) -> None:
    line = next(x for x in demo_run.stdout.splitlines() if x.startswith("Report: "))
    assert str(demo_run.report) in line
    assert demo_run.report.stat().st_size > 10_000


def test_the_demo_overview_counts_repairs_rejects_cost_and_verdicts(demo_run: DemoRun) -> None:
    model = build_report(demo_run.path)
    attempts = {row["stage"]: row for row in model["attempts"]["rows"]}
    # the demo's scripted first drafts that the loops repaired (see tests/integration/test_demo)
    assert {s: attempts[s]["repaired"] for s in ("extract", "implement", "ground")} == {
        "extract": 1,
        "implement": 1,
        "ground": 2,
    }
    assert {s: attempts[s]["rejected"] for s in ("filter", "extract", "judge")} == {
        "filter": 3,
        "extract": 1,
        "judge": 1,
    }
    assert attempts["extract"]["calls"] == [
        {"calls": 1, "documents": 3},
        {"calls": 2, "documents": 1},
        {"calls": 3, "documents": 1},
    ]
    total = next(row for row in model["cost"]["rows"] if row["stage"] == "total")
    assert total["per_kept"]["calls"] == pytest.approx(total["calls"] / 3)
    judge = {row["rubric"]: (row["passed"], row["judged"]) for row in model["judge"]["rows"]}
    assert judge == {"R1": (4, 4), "R2": (4, 4), "R3": (3, 4), "R4": (4, 4)}
    assert model["shift"]["groups"]["refined"]["n"] == 3
    meta = {row["label"]: row["value"] for row in model["meta"]["rows"]}
    assert meta["model"] == "scripted-demo" and meta["sandbox isolation"] == "standard"
    assert len(meta["settings fingerprint"]) == 64
