"""The demo run's report in a real headless Chromium, opened from file://.

What a reader relies on: the page works offline and quietly (no console errors, no
request beyond its own file), the funnel says what `gem-graph stats` says, a kept
trajectory shows its tool calls with real outputs and the rows each write changed, and
the filters show exactly what they name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import (
    console_errors,
    full_screenshot,
    open_report,
    requested_urls,
    resource_entries,
    visible_rows,
)
from report_helpers import DemoRun, gem

from gem_graph.report.synthetic import write_synthetic_run
from gem_graph.run.store import RunStore

By: Any = pytest.importorskip("selenium.webdriver.common.by", reason="selenium missing").By
Select: Any = pytest.importorskip(
    "selenium.webdriver.support.select", reason="selenium missing"
).Select
WebDriverWait: Any = pytest.importorskip(
    "selenium.webdriver.support.wait", reason="selenium missing"
).WebDriverWait

KEPT_WITH_WRITES = "library-renewals"


def test_the_page_makes_no_request_and_logs_no_error(
    browser: Any, demo_run: DemoRun, tmp_path: Path
) -> None:
    open_report(browser, demo_run.report)
    assert browser.title == f"gem-graph report: {demo_run.path.name}"
    # walk both views and every item, so every drawing path of viewer.js runs
    browser.find_element(By.CSS_SELECTOR, "nav a[data-view=viewer]").click()
    rows = browser.find_elements(By.CSS_SELECTOR, "#item-list .item-row")
    assert len(rows) == 8
    for row in rows:
        row.click()
    own = demo_run.report.resolve().as_uri()
    assert [u for u in requested_urls(browser) if u.split("#")[0] != own] == []
    assert resource_entries(browser) == []
    assert console_errors(browser) == []


def test_the_funnel_shows_the_numbers_gem_graph_stats_prints(
    browser: Any, demo_run: DemoRun, tmp_path: Path
) -> None:
    code, out, _ = gem("stats", demo_run.path, "--json")
    assert code == 0
    stats = json.loads(out)
    open_report(browser, demo_run.report)
    shown = {}
    for tr in browser.find_elements(By.CSS_SELECTOR, "#funnel tbody tr"):
        reached = int(tr.find_element(By.CSS_SELECTOR, ".reached").text)
        passed = int(tr.find_element(By.CSS_SELECTOR, ".passed").text)
        shown[tr.get_attribute("data-stage")] = (reached, passed)
    assert shown == {s["stage"]: (s["reached"], s["passed"]) for s in stats["stages"]}
    for key, value in stats["documents"].items():
        card = browser.find_element(By.CSS_SELECTOR, f".card[data-doc={key}] b")
        assert card.text == f"{value:,}"
    reasons = {
        (tr.get_attribute("data-stage"), tr.get_attribute("data-code")): int(
            tr.find_element(By.CSS_SELECTOR, "td.n").text
        )
        for tr in browser.find_elements(By.CSS_SELECTOR, "#reason-table tbody tr")
    }
    assert reasons == {(r["stage"], r["code"]): r["count"] for r in stats["top_rejects"]}
    full_screenshot(browser, tmp_path / "overview.png")
    assert (tmp_path / "overview.png").stat().st_size > 20_000


def _record(demo_run: DemoRun, doc_id: str) -> dict[str, Any]:
    with RunStore(demo_run.path) as store:
        return next(r for r in store.iter_records() if r["source"]["doc_id"] == doc_id)


def test_clicking_a_kept_trajectory_shows_its_calls_outputs_and_row_changes(
    browser: Any, demo_run: DemoRun, tmp_path: Path
) -> None:
    record = _record(demo_run, KEPT_WITH_WRITES)
    open_report(browser, demo_run.report, "viewer")
    row = next(
        r
        for r in browser.find_elements(By.CSS_SELECTOR, "#item-list .item-row")
        if r.find_element(By.CSS_SELECTOR, ".row-id").text == record["id"]
    )
    row.click()
    detail = browser.find_element(By.ID, "item-detail")
    assert detail.find_element(By.CSS_SELECTOR, ".item-head h2").text == record["id"]
    calls = detail.find_elements(By.CSS_SELECTOR, ".chat .tool-call")
    expected = record["verification"]["calls"]
    assert [c.get_attribute("data-tool") for c in calls] == [c["tool"] for c in expected]
    for box, result in zip(calls, expected, strict=True):
        output = box.find_element(By.CSS_SELECTOR, "pre.output").text
        if result["status"] == "ok":
            assert json.loads(output) == result["output"]  # the real output, pretty-printed
            assert "error" not in box.get_attribute("class")
        else:
            assert output == result["output"]
            assert "error" in box.get_attribute("class")
    # the rows each write changed sit under that call: pay_fine inserted the payment and
    # lowered the balance, renew_loan moved the due date
    by_tool: dict[str, list[str]] = {}
    for box in calls:
        heads = box.find_elements(By.CSS_SELECTOR, ".state-diff .diff-head")
        by_tool.setdefault(box.get_attribute("data-tool"), []).extend(h.text for h in heads)
    assert sorted(by_tool["pay_fine"]) == ["+ inserted · payments", "~ updated · members"]
    assert by_tool["renew_loan"] == ["~ updated · loans"]
    assert by_tool["find_member"] == [] and by_tool["list_loans"] == []
    changed = [c.text for c in detail.find_elements(By.CSS_SELECTOR, "td.changed")]
    assert "2025-03-12 → 2025-03-26" in changed and "12.5 → 7.5" in changed
    # the judge's verdicts, the environment and the source spans are there too
    rubrics = detail.find_elements(By.CSS_SELECTOR, ".judge .rubrics li")
    assert len(rubrics) == len(record["judge"]["rubrics"])
    tools = detail.find_elements(By.CSS_SELECTOR, ".environment .tool code")
    assert {t.text for t in tools} == {t["function"]["name"] for t in record["tools"]}
    key = next(
        b
        for b in detail.find_elements(By.CSS_SELECTOR, ".span-legend .span-key")
        if b.text == "tool renew_loan"
    )
    key.click()
    active = detail.find_elements(By.CSS_SELECTOR, ".source-text mark.active")
    start, end = record["provenance"]["spans"]["tools"]["renew_loan"]
    with RunStore(demo_run.path) as store:
        text = (store.document(KEPT_WITH_WRITES) or {})["text"]
    assert "".join(m.get_attribute("textContent") for m in active) == text[start:end]
    full_screenshot(browser, tmp_path / "trajectory.png")
    assert (tmp_path / "trajectory.png").stat().st_size > 20_000
    assert console_errors(browser) == []


def test_filtering_by_reject_code_shows_only_those_rejects(browser: Any, demo_run: DemoRun) -> None:
    open_report(browser, demo_run.report, "viewer")
    assert len(visible_rows(browser)) == 8
    Select(browser.find_element(By.ID, "filter-code")).select_by_value("irrelevant")
    rows = visible_rows(browser)
    assert sorted(r.find_element(By.CSS_SELECTOR, ".row-id").text for r in rows) == [
        "autumn-essay",
        "city-budget-news",
        "headphones-review",
    ]
    assert {r.get_attribute("data-code") for r in rows} == {"irrelevant"}
    assert browser.find_element(By.ID, "filter-count").text == "3 of 8 items"
    Select(browser.find_element(By.ID, "filter-code")).select_by_value("")
    Select(browser.find_element(By.ID, "filter-status")).select_by_value("kept")
    assert {r.get_attribute("data-status") for r in visible_rows(browser)} == {"kept"}
    assert len(visible_rows(browser)) == 3
    Select(browser.find_element(By.ID, "filter-status")).select_by_value("")
    browser.find_element(By.ID, "filter-text").send_keys("ending 4417")
    assert [r.find_element(By.CSS_SELECTOR, ".row-id").text for r in visible_rows(browser)] == [
        "card-freeze"
    ]


def test_a_reject_example_link_opens_that_reject_at_its_problems(
    browser: Any, demo_run: DemoRun
) -> None:
    open_report(browser, demo_run.report)
    link = browser.find_element(By.CSS_SELECTOR, "#reason-table tr[data-code=unknown_tool] a")
    assert link.text == "printer-queue"
    link.click()
    detail = browser.find_element(By.ID, "item-detail")
    assert detail.find_element(By.CSS_SELECTOR, ".item-head h2").text == "printer-queue"
    assert (
        "stopped at extract after 3 attempt(s)"
        in detail.find_element(By.CSS_SELECTOR, ".facts").text
    )
    where = [w.text for w in detail.find_elements(By.CSS_SELECTOR, ".problems .where")]
    assert where == [
        "workflows[0] › example_calls[0]",
        "workflows[0] › example_calls[1]",
        "workflows[0] › example_calls[2]",
    ]
    codes = [c.text for c in detail.find_elements(By.CSS_SELECTOR, ".problems .badge.code")]
    assert codes == ["unknown_tool", *["invalid_arguments"] * 3, "malformed_arguments"]


def test_an_item_has_an_address_and_the_back_button_returns_to_the_last_one(
    browser: Any, demo_run: DemoRun
) -> None:
    open_report(browser, demo_run.report, "viewer")
    rows = browser.find_elements(By.CSS_SELECTOR, "#item-list .item-row")
    ids = [r.find_element(By.CSS_SELECTOR, ".row-id").text for r in rows]
    rows[0].click()
    rows[4].click()
    heading = (By.CSS_SELECTOR, "#item-detail .item-head h2")
    assert browser.find_element(*heading).text == ids[4]
    assert browser.current_url.endswith("#item-4")
    browser.back()  # a same-page history step: the view follows on `popstate`
    WebDriverWait(browser, 5).until(lambda d: d.find_element(*heading).text == ids[0])
    open_report(browser, demo_run.report, "item-2")  # a link to one item opens it
    assert browser.find_element(*heading).text == ids[2]
    assert browser.find_element(By.ID, "viewer").is_displayed()
    assert not browser.find_element(By.ID, "overview").is_displayed()


def test_the_comparison_page_shows_both_runs_offline(
    browser: Any, demo_run: DemoRun, tmp_path: Path
) -> None:
    out = tmp_path / "compare.html"
    code, stdout, _ = gem("compare", demo_run.path, demo_run.path, "--html", "-o", out)
    assert code == 0
    open_report(browser, out)
    rows = browser.find_elements(By.CSS_SELECTOR, "#compare-table tbody tr")
    kept = next(r for r in rows if r.get_attribute("data-label").startswith("kept"))
    a, b = (kept.find_element(By.CSS_SELECTOR, f"td.{side}").text for side in "ab")
    assert a == b and a in stdout
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.chart")) == 4
    own = out.resolve().as_uri()
    assert [u for u in requested_urls(browser) if u.split("#")[0] != own] == []
    assert console_errors(browser) == []


def test_a_sampled_report_says_so_and_draws_every_embedded_item(
    browser: Any, tmp_path: Path
) -> None:
    run = write_synthetic_run(tmp_path / "run", records=300, rejects=100)
    code, _, _ = gem("report", run, "--max-items", "30")
    assert code == 0
    open_report(browser, run / "report.html", "viewer")
    note = browser.find_element(By.ID, "sample-note").text
    assert note.startswith("Showing 30 of 400 items (15 of 300 kept, 15 of 100 rejected)")
    rows = browser.find_elements(By.CSS_SELECTOR, "#item-list .item-row")
    assert len(rows) == 30
    for row in rows:
        row.click()
        assert browser.find_elements(By.CSS_SELECTOR, "#item-detail .item-head h2")
    assert console_errors(browser) == []
