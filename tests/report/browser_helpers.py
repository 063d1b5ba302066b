"""Opening a report in the session's Chromium and reading what it did: console and network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def open_report(driver: Any, path: Path, fragment: str = "") -> None:
    """Load `path` from file:// (after draining the logs of whatever ran before)."""
    driver.get_log("browser")
    driver.get_log("performance")
    driver.get("about:blank")
    driver.get(path.resolve().as_uri() + (f"#{fragment}" if fragment else ""))


def console_errors(driver: Any) -> list[dict[str, Any]]:
    """Console messages at level SEVERE (errors, CSP violations, failed loads)."""
    return [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]


BROWSER_OWN = ("chrome:", "chrome-untrusted:", "devtools:", "about:", "data:")
"""Schemes that never leave the browser (its own pages, inline data)."""


def requested_urls(driver: Any) -> list[str]:
    """Every URL asked of the network stack since the logs were drained (performance log),
    but the browser's own pages and inline `data:`."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            url = str(message["params"]["request"]["url"])
            if not url.startswith(BROWSER_OWN):
                urls.append(url)
    return urls


def resource_entries(driver: Any) -> list[str]:
    """Resources the page loaded, as the page itself saw them (`performance.getEntries`)."""
    names: list[str] = driver.execute_script(
        "return performance.getEntriesByType('resource').map(function (e) { return e.name; })"
    )
    return names


def visible_rows(driver: Any) -> list[Any]:
    """The viewer's list rows not hidden by the filters."""
    from selenium.webdriver.common.by import By

    return [
        r for r in driver.find_elements(By.CSS_SELECTOR, "#item-list .item-row") if r.is_displayed()
    ]


def full_screenshot(driver: Any, path: Path, height: int | None = None) -> Path:
    """A screenshot of the whole page (window grown to the page's height, then restored)."""
    page = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(int(height or page), 6000))
    try:
        driver.save_screenshot(str(path))
    finally:
        driver.set_window_size(1400, 1000)
    return path
