"""Debian's Chromium driven by Playwright, for the browser tests.

Playwright's own browser download cannot work here, so the tests launch the system Chromium
by its path (`make test` installs it with apt when it is missing and the user is root). When
Playwright or Chromium is missing the tests are skipped, and the reason says what to install.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
"""Without the background-networking flags Chromium's own connections are refused by a closed network."""

SCREENSHOTS_ENV = "PERPSIM_SCREENSHOTS"
"""Set to a directory to keep the tests' screenshots there too."""


def chromium_path() -> str:
    """The system Chromium's path, or a pytest skip that says how to get it."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed: pip install 'perpsim[browser]' (make setup installs it)")
    found = os.environ.get("PERPSIM_CHROMIUM") or next((p for p in CHROMIUM_PATHS if os.access(p, os.X_OK)), None)
    if not found:
        pytest.skip("Chromium is not installed: apt-get install chromium (make test does it when run as root)")
    return found


@contextmanager
def browser_page(width: int = 1440, height: int = 900) -> Iterator[Any]:
    """A fresh page of a headless system Chromium at the given viewport."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


def keep_screenshot(path: Path) -> None:
    """Copy a screenshot to $PERPSIM_SCREENSHOTS when it is set."""
    target = os.environ.get(SCREENSHOTS_ENV)
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)
