"""`synack view` in a real browser: Debian's headless Chromium, driven by Selenium through
Debian's chromedriver, plays the `handshake` and `retransmit` lessons and the test reads
what the page shows. A screenshot of each is saved under tests/artifacts/ (or
$SYNACK_ARTIFACTS). scripts/system-deps installs chromium and chromium-driver; where
neither can be found, the tests skip with one line saying so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aiohttp", reason="synack view needs aiohttp (the view extra)")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from browser import T, needs_browser, screenshot  # noqa: E402
from cliproc import Served  # noqa: E402

pytestmark = [pytest.mark.slow, needs_browser]


@pytest.fixture(scope="module")
def view(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base address of a `synack view` in a subprocess."""
    log = tmp_path_factory.mktemp("view") / "view.log"
    with Served("view", "--port", "0", "--lang", "en", log=log) as served:
        yield served.address


def _run(view: str, name: str) -> dict[str, Any]:
    """The run the page is given, as the server's JSON API gives it."""
    with urllib.request.urlopen(f"{view}api/lesson/{name}?lang=en", timeout=T) as reply:
        data: dict[str, Any] = json.load(reply)
    return data


def _wait(driver: Any, condition: Any, what: str) -> Any:
    return WebDriverWait(driver, T, poll_frequency=0.05).until(condition, message=what)


def _count(driver: Any, css: str) -> int:
    return len(driver.find_elements(By.CSS_SELECTOR, css))


def _states(driver: Any, end: str) -> list[str]:
    return [
        el.get_attribute("data-state")
        for el in driver.find_elements(By.CSS_SELECTOR, f"#ladder text.state[data-end='{end}']")
    ]


def _done(driver: Any) -> bool:
    status = driver.find_element(By.ID, "status").get_attribute("data-state")
    return bool(status == "done")


def test_handshake_grows_arrow_by_arrow_with_pause_step_and_replay(browser: Any, view: str) -> None:
    driver = browser
    driver.get(f"{view}?lesson=handshake&speed=2")
    _wait(driver, lambda d: _count(d, "#ladder g.arrow") >= 1, "the first arrow")
    driver.find_element(By.ID, "play").click()  # pause
    paused_at = _count(driver, "#ladder g.arrow")
    assert paused_at < 3
    assert driver.find_element(By.ID, "status").get_attribute("data-state") == "paused"
    for _ in range(40):  # step by step until the next arrow appears
        if _count(driver, "#ladder g.arrow") > paused_at:
            break
        driver.find_element(By.ID, "step").click()
    assert _count(driver, "#ladder g.arrow") == paused_at + 1
    driver.find_element(By.CSS_SELECTOR, "#speed option[value='0']").click()  # max speed
    driver.find_element(By.ID, "play").click()
    _wait(driver, _done, "the lesson to end")

    arrows = driver.find_elements(By.CSS_SELECTOR, "#ladder g.arrow")
    assert [a.get_attribute("data-label") for a in arrows] == ["SYN", "SYN+ACK", "ACK"]
    assert [a.get_attribute("data-src") for a in arrows] == ["client", "server", "client"]
    assert _count(driver, "#ladder g.arrow.pending") == 0  # each one arrived
    assert _states(driver, "client") == ["CLOSED", "SYN_SENT", "ESTABLISHED"]
    assert _states(driver, "server") == ["LISTEN", "SYN_RCVD", "ESTABLISHED"]
    badges = driver.find_elements(By.CSS_SELECTOR, ".badge")
    assert [b.text for b in badges] == ["ESTABLISHED", "ESTABLISHED"]
    cwnd = driver.find_element(By.ID, "plot-cwnd")
    assert int(cwnd.get_attribute("data-points")) > 0
    assert _count(driver, "#plot-cwnd polyline.series") == 2  # one line per end
    assert driver.find_element(By.ID, "verdict").get_attribute("data-passed") == "true"
    assert _count(driver, "#narration li") >= 5
    screenshot(driver, "view-handshake")

    driver.find_element(By.ID, "replay").click()
    _wait(driver, _done, "the replay to end")
    assert _count(driver, "#ladder g.arrow") == 3


def test_retransmit_shows_the_losses_the_timers_and_the_give_up(browser: Any, view: str) -> None:
    run = _run(view, "retransmit")
    segments = [r for r in run["records"] if r["kind"] == "segment" and not r["background"]]
    sent = [r for r in segments if r["event"] == "sent"]
    lost = [r for r in segments if r["event"] == "lost"]
    timers = [r for r in run["records"] if r["kind"] == "timer"]
    assert len(lost) >= 2 and timers

    driver = browser
    driver.get(f"{view}?lesson=retransmit&speed=0")
    _wait(driver, _done, "the lesson to end")
    assert _count(driver, "#ladder g.arrow") == len(sent)
    assert _count(driver, "#ladder g.arrow.lost") == len(lost)
    assert _count(driver, "#ladder .lost-marker") == len(lost)
    assert _count(driver, "#ladder text.timer") == len(timers)
    assert _count(driver, "#ladder g.arrow.retransmission") >= len(lost) - 1
    assert _states(driver, "client")[-1] == "CLOSED"  # it gave up
    assert int(driver.find_element(By.ID, "plot-cwnd").get_attribute("data-points")) > 0
    assert int(driver.find_element(By.ID, "plot-rtt").get_attribute("data-points")) > 0
    assert _count(driver, "#ladder .section") == 1
    assert driver.find_element(By.ID, "verdict").get_attribute("data-passed") == "true"
    screenshot(driver, "view-retransmit")


def test_a_live_trace_from_another_process_is_drawn(browser: Any, tmp_path: Path) -> None:
    from test_view import TRANSFER

    trace = tmp_path / "live.jsonl"
    with Served("view", "--port", "0", "--follow", str(trace), log=tmp_path / "v.log") as served:
        driver = browser
        driver.get(served.address)
        _wait(driver, lambda d: "following" in d.find_element(By.ID, "status").text, "follow")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNACK_")}
        env["SYNACK_TRACE_JSON"] = str(trace)
        subprocess.run([sys.executable, "-c", TRANSFER], env=env, check=True, timeout=T)
        _wait(driver, lambda d: _count(d, "#ladder g.arrow[data-label*='PSH']") >= 2, "data")
        labels = [
            a.get_attribute("data-label")
            for a in driver.find_elements(By.CSS_SELECTOR, "#ladder g.arrow")
        ]
        assert labels[:3] == ["SYN", "SYN+ACK", "ACK"]
        assert "ESTABLISHED" in _states(driver, "client")
        assert int(driver.find_element(By.ID, "plot-cwnd").get_attribute("data-points")) > 0
        screenshot(driver, "view-live")
