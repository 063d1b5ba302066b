"""Shared fixtures for the report tests: one demo run and one headless Chromium per session.

The browser is Debian's `chromium` driven by its `chromedriver` through Selenium. Without
them the browser tests skip and say why; with `GEM_REQUIRE_BROWSER=1` (set by `.ci/run`
once it installed them) a missing browser is a failure instead, so CI cannot skip them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from report_helpers import DemoRun, gem

from gem_graph.sandbox import probe

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
DRIVER_PATHS = ("chromedriver", "/usr/lib/chromium/chromedriver", "/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """`gem-graph demo` once for the session: a real run folder with its report."""
    status = probe()["tiers"].get("standard")
    if status is not True:
        pytest.skip(f"the demo needs the standard sandbox tier: {status}")
    path = tmp_path_factory.mktemp("report-demo") / "run"
    code, stdout, stderr = gem("demo", "-o", path)
    assert code == 0, stderr
    return DemoRun(path, stdout)


def find_browser() -> tuple[str, str] | str:
    """(chromium binary, chromedriver) or the reason there is none."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    binary = next((p for n in CHROMIUM_NAMES if (p := shutil.which(n))), None)
    driver = next((p for n in DRIVER_PATHS if (p := shutil.which(n))), None)
    if binary is None:
        return "no Chromium found (apt-get install chromium chromium-driver)"
    if driver is None:
        return "no chromedriver found (apt-get install chromium-driver)"
    return binary, driver


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the whole session, logging console and network."""
    found = find_browser()
    if isinstance(found, str):
        if os.environ.get("GEM_REQUIRE_BROWSER"):
            pytest.fail(f"GEM_REQUIRE_BROWSER is set but {found}")
        pytest.skip(found)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = found
    profile = tempfile.mkdtemp(prefix="gem-report-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
