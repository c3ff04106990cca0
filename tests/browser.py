"""Debian's headless Chromium, driven by Selenium through Debian's chromedriver (shared by
the browser tests of `synack view` and of the web chat). scripts/system-deps installs
chromium and chromium-driver; where either is missing, the tests that need a browser skip
with one line saying so. Screenshots go to tests/artifacts/ (or $SYNACK_ARTIFACTS)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

ARTIFACTS = Path(os.environ.get("SYNACK_ARTIFACTS") or Path(__file__).parent / "artifacts")
T = 60.0  # the bound on a page load or a wait for what a page shows
# No network of its own: no updates, no sync, no QUIC probes; a throwaway profile.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
)


def _find(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name) or (name if os.path.isfile(name) else None)
        if found:
            return found
    return None


CHROMIUM = _find("chromium", "/usr/bin/chromium", "chromium-browser")
CHROMEDRIVER = _find("chromedriver", "/usr/bin/chromedriver")

needs_browser = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="no chromium/chromedriver (scripts/system-deps installs them as root with apt-get)",
)


def start_chromium(profile: Path) -> Any:
    """A headless Chromium with a throwaway `profile`, driven through Debian's chromedriver
    (never a browser or driver that Selenium would fetch for itself)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    assert CHROMIUM is not None and CHROMEDRIVER is not None
    options = Options()
    options.binary_location = CHROMIUM
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={profile}")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium must not look for drivers online
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(T)
    return driver


def screenshot(driver: Any, name: str) -> Path:
    """Save what the page shows as ARTIFACTS/NAME.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path
