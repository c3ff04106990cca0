"""The web chat in a real browser: Debian's headless Chromium (Selenium, Debian's
chromedriver) joins `synack chat serve --web` and talks with a terminal user, a real
`synack chat join` reading its stdin: messages in the room and private messages both
ways, markup shown as text. The page is saved as tests/artifacts/chat-web.png."""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aiohttp", reason="the web chat needs aiohttp (the web extra)")
pytest.importorskip("selenium.webdriver", reason="selenium is not installed")

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from browser import T, needs_browser, screenshot
from cliproc import Served

pytestmark = [pytest.mark.slow, needs_browser]

XSS = "<img src=x onerror=\"document.title='pwned'\"><script>window.pwned=1</script>"


class Terminal:
    """`synack chat join` with its stdin and stdout in the test's hands, as scripted."""

    def __init__(self, address: str, nick: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "synack", "chat", "join", address, "--nick", nick],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.lines: list[str] = []
        self._pending = b""

    def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def wait_for(self, text: str) -> str:
        """The first line printed (now or later, within T) that contains `text`."""
        stdout = self.proc.stdout
        assert stdout is not None
        deadline = time.monotonic() + T
        with selectors.DefaultSelector() as sel:
            sel.register(stdout, selectors.EVENT_READ)
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(timeout=left):
                    raise AssertionError(f"no line with {text!r} within {T} s: {self.lines}")
                chunk = os.read(stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError(f"the client ended before {text!r}: {self.lines}")
                self._pending += chunk
                *done, self._pending = self._pending.split(b"\n")
                self.lines += [d.decode() for d in done]

    def quit(self) -> int:
        """End of input: the client quits as /quit does."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(timeout=T)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=T)


@pytest.fixture
def chat(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A chat server with its web listener: (chat address, page URL)."""
    args = ("chat", "serve", "--port", "0", "--web", "127.0.0.1:0")
    with Served(*args, log=tmp_path / "serve.log") as served:
        web = served.line()
        assert "web chat on http://" in web, web
        yield served.address, web.split(" on ", 1)[1].split()[0]


def _wait(driver: Any, condition: Any, what: str) -> Any:
    return WebDriverWait(driver, T, poll_frequency=0.05).until(condition, message=what)


def _log(driver: Any, op: str) -> list[str]:
    return [li.text for li in driver.find_elements(By.CSS_SELECTOR, f"#log li[data-op='{op}']")]


def _members(driver: Any) -> list[str]:
    return [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#members li")]


def _type(driver: Any, line: str) -> None:
    box = driver.find_element(By.ID, "line")
    box.send_keys(line)
    driver.find_element(By.ID, "send").click()


def test_a_browser_and_a_terminal_user_talk_in_a_room_and_in_private(
    browser: Any, chat: tuple[str, str]
) -> None:
    address, url = chat
    bob = Terminal(address, "bob")
    try:
        bob.wait_for("* you are bob in #lobby")
        driver = browser
        driver.get(url)
        driver.find_element(By.ID, "nick").send_keys("alice")
        driver.find_element(By.ID, "join").click()
        _wait(
            driver,
            lambda d: d.find_element(By.ID, "status").get_attribute("data-state") == "joined",
            "the browser to join",
        )
        assert _members(driver) == ["alice", "bob"]
        assert not driver.find_element(By.ID, "login").is_displayed()
        assert driver.find_element(By.ID, "line").is_displayed()
        bob.wait_for("* alice joined #lobby")

        # The room, both ways; markup in a message is shown as the characters typed.
        _type(driver, "hello from chromium " + XSS)
        assert bob.wait_for("<alice> hello from chromium") == f"<alice> hello from chromium {XSS}"
        bob.type("hi alice, from the terminal")
        _wait(driver, lambda d: "<bob> hi alice, from the terminal" in _log(d, "msg"), "bob's line")
        assert f"<alice> hello from chromium {XSS}" in _log(driver, "msg")  # its own, echoed

        # Private messages, both ways, and the sender's confirmation.
        bob.type(f"/msg alice a secret {XSS}")
        _wait(driver, lambda d: f"*bob* a secret {XSS}" in _log(d, "private"), "bob's /msg")
        _type(driver, "/msg bob psst, from the browser")
        assert bob.wait_for("*alice*") == "*alice* psst, from the browser"
        _wait(driver, lambda d: "\u2192 bob: psst, from the browser" in _log(d, "sent"), "sent")

        # Nothing that was sent ran or became an element.
        assert driver.find_elements(By.CSS_SELECTOR, "#log img, #log script") == []
        assert driver.execute_script("return window.pwned") is None
        assert driver.title == "synack chat"

        _type(driver, "/who")
        _wait(driver, lambda d: "* in #lobby: alice, bob" in _log(d, "users"), "/who's answer")
        driver.set_window_size(960, 560)  # the size README's picture is shown at
        screenshot(driver, "chat-web")
        driver.set_window_size(1280, 1000)

        assert bob.quit() == 0
        _wait(driver, lambda d: _members(d) == ["alice"], "bob to leave the member list")
        assert any(line.startswith("* bob left #lobby") for line in _log(driver, "notice"))
    finally:
        bob.kill()


def test_a_refused_nickname_is_said_on_the_form(browser: Any, chat: tuple[str, str]) -> None:
    address, url = chat
    bob = Terminal(address, "bob")
    try:
        bob.wait_for("* you are bob in #lobby")
        driver = browser
        driver.get(url)
        driver.find_element(By.ID, "nick").send_keys("B0B")  # looks like bob
        driver.find_element(By.ID, "join").click()
        _wait(
            driver,
            lambda d: "too similar" in d.find_element(By.ID, "login-error").text,
            "the refusal",
        )
        assert not driver.find_element(By.ID, "chat").is_displayed()
        nick = driver.find_element(By.ID, "nick")
        nick.clear()
        nick.send_keys("alice")
        driver.find_element(By.ID, "join").click()
        _wait(driver, lambda d: _members(d) == ["alice", "bob"], "the second try to join")
    finally:
        bob.kill()


def test_an_idle_page_stays_by_pinging(browser: Any, tmp_path: Path) -> None:
    args = ("chat", "serve", "--port", "0", "--web", "127.0.0.1:0", "--idle-timeout", "3")
    with Served(*args, log=tmp_path / "serve.log") as served:
        url = served.line().split(" on ", 1)[1].split()[0]
        driver = browser
        driver.get(url)
        # Count what the page sends, as the server would see it.
        driver.execute_script(
            "window.sent = [];"
            "const send = WebSocket.prototype.send;"
            "WebSocket.prototype.send = function (data) { window.sent.push(data); "
            "return send.call(this, data); };"
        )
        driver.find_element(By.ID, "nick").send_keys("idler")
        driver.find_element(By.ID, "join").click()

        def pings(d: Any) -> int:
            sent = d.execute_script("return window.sent")
            return sum('"op":"ping"' in m for m in sent)

        # Four pings, one a second: past the 3 s idle timeout, and still in the chat.
        _wait(driver, lambda d: pings(d) >= 4, "the page's pings")
        assert driver.find_element(By.ID, "status").get_attribute("data-state") == "joined"
        assert _log(driver, "error") == []
