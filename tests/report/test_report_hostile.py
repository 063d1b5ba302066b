"""Hostile text in a run is shown as text, never run: in the HTML and in a real browser.

A copy of the demo run gets markup-shaped text in a source text, a tool output (in the
dialogue and in the verified result), a model reply, a judge reason, the user goal, the
environment's policy and a tool description, a reject reason and a reject code. The
report must hold it escaped (no element of it parses), the page must run nothing of it,
and the reader must still see it verbatim.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import console_errors, open_report
from report_helpers import DemoRun, copy_run, gem

HOSTILE = (
    '<script>window.pwned=1;document.title="pwned"</script></textarea></script>'
    '<img src=x onerror="window.pwned=2"><a href="javascript:window.pwned=3">click me</a>'
    "<!-- \u2028 -->"
)
HOSTILE_CODE = '"><script>window.pwned=4</script>'
KEPT = "library-renewals"
REJECT = "printer-queue"


def _poison(run: Path) -> None:
    manifest_path = run / "environments" / f"env_{KEPT}" / "environment.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["policy"] = f"Policy {HOSTILE}"
    manifest["tools"][0]["function"]["description"] = f"Tool description {HOSTILE}"
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    conn = sqlite3.connect(run / "run.sqlite")
    with conn:
        text = conn.execute("SELECT text FROM documents WHERE id = ?", [KEPT]).fetchone()[0]
        conn.execute("UPDATE documents SET text = ? WHERE id = ?", [text + HOSTILE, KEPT])
        rid, raw = conn.execute("SELECT id, json FROM records WHERE doc_id = ?", [KEPT]).fetchone()
        record = json.loads(raw)
        messages = record["messages"]
        reply = next(m for m in messages if m["role"] == "assistant" and m.get("content"))
        reply["content"] = f"Model reply {HOSTILE}"
        result = next(c for c in record["verification"]["calls"] if c["status"] == "ok")
        result["output"] = {"note": f"Tool output {HOSTILE}"}
        answer = next(m for m in messages if m.get("tool_call_id") == result["call_id"])
        answer["content"] = json.dumps(result["output"])
        record["judge"]["rubrics"]["R1"]["reason"] = f"Judge reason {HOSTILE}"
        record["user_goal"] = {
            "persona": f"Persona {HOSTILE}",
            "wants": "to renew",
            "known_facts": [f"Fact {HOSTILE}"],
            "accepts": [],
            "refuses": [],
        }
        conn.execute("UPDATE records SET json = ? WHERE id = ?", [json.dumps(record), rid])
        raw = conn.execute("SELECT json FROM rejects WHERE doc_id = ?", [REJECT]).fetchone()[0]
        reject = json.loads(raw)
        reject["reason"] = f"Reject reason {HOSTILE}"
        reject["code"] = HOSTILE_CODE
        reject["problems"][0]["message"] = f"Problem {HOSTILE}"
        conn.execute(
            "UPDATE rejects SET json = ?, code = ?, reason = ? WHERE doc_id = ?",
            [json.dumps(reject), HOSTILE_CODE, reject["reason"], REJECT],
        )
    conn.close()


@pytest.fixture(scope="module")
def hostile_report(demo_run: DemoRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = copy_run(demo_run.path, tmp_path_factory.mktemp("hostile") / "run")
    _poison(run)
    out = run / "hostile.html"
    code, _, err = gem("report", run, "-o", out)
    assert code == 0, err
    return out


def test_the_html_holds_no_markup_from_the_data(hostile_report: Path) -> None:
    html = hostile_report.read_text(encoding="utf-8")
    assert html.lower().count("<script") == 2  # the JSON block and viewer.js, nothing else
    assert html.lower().count("</script") == 2
    for fragment in ("<script>window", "</textarea>", "<img src=x", 'href="javascript:', "<!--"):
        assert fragment not in html
    # the JSON block still carries the text exactly
    start = html.index('id="gem-data">') + len('id="gem-data">')
    data = json.loads(html[start : html.index("</script>", start)])
    assert HOSTILE in data["sources"][KEPT]["segments"][-1]["text"]


def test_the_browser_runs_nothing_and_shows_the_text_verbatim(
    browser: Any, hostile_report: Path
) -> None:
    from selenium.webdriver.common.by import By  # the browser fixture skips without it

    open_report(browser, hostile_report)
    title = browser.title
    assert "pwned" not in title
    seen: list[str] = []
    browser.find_element(By.CSS_SELECTOR, "nav a[data-view=viewer]").click()
    for row in browser.find_elements(By.CSS_SELECTOR, "#item-list .item-row"):
        row.click()
        for details in browser.find_elements(By.CSS_SELECTOR, "#item-detail details"):
            browser.execute_script("arguments[0].open = true", details)
        seen.append(browser.find_element(By.ID, "item-detail").get_attribute("textContent"))
    state = browser.execute_script(
        "return {pwned: typeof window.pwned, title: document.title,"
        " scripts: document.scripts.length,"
        " injected: document.querySelectorAll("
        "'img, textarea, iframe, a[href^=\"javascript\"]').length}"
    )
    assert state == {"pwned": "undefined", "title": title, "scripts": 2, "injected": 0}
    everything = "\n".join(seen)
    for label in (
        "Model reply ",
        "Judge reason ",
        "Persona ",
        "Fact ",
        "Reject reason ",
        "Problem ",
    ):
        assert label + HOSTILE in everything, label
    # a tool output is shown as the JSON it is, pretty-printed
    assert json.dumps(f"Tool output {HOSTILE}", ensure_ascii=False) in everything
    assert HOSTILE in everything  # the source text, as text
    # the hostile code is an ordinary option of the code filter, and its row in the overview
    options = browser.find_elements(By.CSS_SELECTOR, "#filter-code option")
    assert HOSTILE_CODE in [o.get_attribute("value") for o in options]
    browser.find_element(By.CSS_SELECTOR, "nav a[data-view=overview]").click()
    codes = [
        tr.get_attribute("data-code")
        for tr in browser.find_elements(By.CSS_SELECTOR, "#reason-table tbody tr")
    ]
    assert HOSTILE_CODE in codes
    assert console_errors(browser) == []
