"""Fixtures the app tests share: the transport each case runs on, and a browser.

Every chat (TCP) and files test that takes `transport` runs once per registered
transport (`synack.transport.names()`): the operating system's TCP and ours.
A test module may define its own `transport` fixture instead (the transport
contract suite does, to add its generic-paths variant).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from synack import transport as seam


@pytest.fixture(params=seam.names())
def transport(request: pytest.FixtureRequest) -> str:
    """The name of a transport, passed as ``transport=`` or ``--transport``."""
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium through Selenium (tests/browser.py), one per test module; mark the
    module `browser.needs_browser` so that it skips where there is none."""
    pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from browser import start_chromium

    driver = start_chromium(tmp_path_factory.mktemp("chromium"))
    try:
        yield driver
    finally:
        driver.quit()
