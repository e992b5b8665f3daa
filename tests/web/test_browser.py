"""The viewer in a real browser: headless Debian Chromium driven by Playwright, both backends.

Clicks from the bot list to a transcript, follows a user's link, checks that the page ran no
script and loaded nothing from elsewhere, and searches when the store can search. With
``CONVOSTORE_SCREENSHOTS=DIR`` the pages are also saved as PNG files (docs/operations.md's).
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from convostore import BotConfig, BotStore
from convostore.web import create_app
from tests.conftest import ConfigFactory
from tests.web.test_viewer import HOSTILE_NAME, _fill

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(make_config: ConfigFactory) -> Iterator[str]:
    """The viewer of a filled store, served by uvicorn in a thread; yields its base URL."""
    config: BotConfig = make_config("sage")
    asyncio.run(_fill(config))
    port = _free_port()
    uv = uvicorn.Server(
        uvicorn.Config(create_app([config]), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the viewer did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


def test_click_from_bot_list_to_transcript_and_search(server: str) -> None:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (.ci/run installs it)")
    shots = os.environ.get("CONVOSTORE_SCREENSHOTS")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 760})
            problems: list[str] = []
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}"))
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            # Any script that ran (an injected one) would show up here.
            page.add_init_script("window.__ran = 0;")

            page.goto(server + "/")
            assert page.title() == "Bots · convostore"
            if shots:
                page.screenshot(path=f"{shots}/viewer-bots.png", full_page=True)
            page.click("a.bot >> text=sage")
            page.wait_for_selector("h1 >> text=sage")
            assert page.locator("a.channel").count() == 3
            assert page.locator(f"a.channel >> text={HOSTILE_NAME}").count() == 1
            if shots:
                page.screenshot(path=f"{shots}/viewer-channels.png", full_page=True)
            page.click("a.channel >> text=general")
            page.wait_for_selector("a.session")
            if shots:
                page.screenshot(path=f"{shots}/viewer-sessions.png", full_page=True)
            page.click("a.session")
            page.wait_for_selector("article.message")
            assert page.locator("article.message").count() == 100
            assert page.locator("article.message .content").first.inner_text() == "line 0"
            if shots:
                page.screenshot(path=f"{shots}/viewer-transcript.png")
            page.click("a[rel=next]")
            page.wait_for_selector("text=page 2")
            assert page.locator("article.message").count() == 21
            assert page.locator("text=reply to 5003").count() == 1

            page.click("a.who >> nth=0")
            page.wait_for_selector("text=a private word")
            if shots:
                page.screenshot(path=f"{shots}/viewer-user.png")

            page.goto(server + "/bot?bot=sage")
            page.click(f"a.channel >> text={HOSTILE_NAME}")
            page.click("a.session")
            content = page.locator("article.message .content").first.inner_text()
            assert content.startswith('"><img src=x onerror=alert(1)> {{ 7*7 }}')
            assert page.evaluate("window.__ran") == 0
            assert page.locator("img").count() == 0

            if hasattr(BotStore, "search"):
                page.fill("input[name=q]", "private")
                page.click("form.search button")
                page.wait_for_selector("article.message")
                assert "a private word" in page.locator("section.transcript").inner_text()
                if shots:
                    page.screenshot(path=f"{shots}/viewer-search.png")
            else:
                assert page.locator("form.search").count() == 0

            assert not problems, problems
            assert all(url.startswith(server) for url in requests), requests
        finally:
            browser.close()
